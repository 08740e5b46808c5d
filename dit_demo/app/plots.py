"""The Compare tab's two plots. Series that coincide (DDIM and Euler are the same update, most
samplers visit the same noise levels) are drawn once and named together, instead of one line
hiding another; colours come from a palette whose neighbours are far apart."""

from __future__ import annotations

import math

import gradio as gr
import pandas as pd

import samplers
from dit_demo.lab.compare import Comparison

# Tableau 10: adjacent colours stay distinguishable, also for the common colour-vision deficiencies
PALETTE = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"]


def merge_identical(series: dict[str, list[tuple[float, float]]], tolerance: float = 0.002) -> dict[str, list]:
    """Series whose points coincide within ``tolerance`` of the plot's y range (closer than a line's
    width: one would hide the other) become one, named "A = B"."""
    ys = [y for points in series.values() for _, y in points]
    slack = tolerance * ((max(ys) - min(ys)) if ys else 0.0) or 1e-12
    merged: list[tuple[list[str], list]] = []
    for name, points in series.items():
        for names, kept in merged:
            if len(kept) == len(points) and all(
                kx == px and abs(ky - py) <= slack for (kx, ky), (px, py) in zip(kept, points)
            ):
                names.append(name)
                break
        else:
            merged.append(([name], list(points)))
    return {" = ".join(names): points for names, points in merged}


def _plot(series: dict[str, list], x: str, y: str, what: str) -> gr.LinePlot:
    merged = merge_identical(series)
    rows = [{x: px, y: py, "series": name} for name, points in merged.items() for px, py in points]
    same = [name for name in merged if " = " in name]
    caption = f"Identical {what}, drawn as one line: " + "; ".join(same) + "." if same else None
    colors = {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(merged)}
    return gr.LinePlot(pd.DataFrame(rows, columns=[x, y, "series"]), color_map=colors, caption=caption)


def comparison_plots(comparison: Comparison) -> tuple[gr.LinePlot, gr.LinePlot]:
    """(distance to the reference against NFE, mean over seeds) and (the noise levels each sampler visits)."""
    spec = comparison.spec
    distances: dict[str, list] = {}
    for (preset, cfg, sampler, _), cells in comparison.series():
        name = _series_name(spec, preset, cfg, sampler)
        mean = sum(c.distance for c in cells) / len(cells)
        distances.setdefault(name, []).append((float(cells[0].nfe), mean))
    longest = max(spec.steps)  # one schedule per sampler at its longest run stays readable
    schedules: dict[str, list] = {}
    for c in comparison.cells:
        if (
            c.steps == longest
            and c.seed == spec.seed
            and c.preset == spec.presets[0]
            and c.cfg_scale == spec.cfg_scales[0]
        ):
            name = f"{samplers.get(c.sampler).label} {c.steps}"
            schedules[name] = [(float(i), math.log10(max(s, 1e-6))) for i, s in enumerate(c.sigmas)]
    return (
        _plot(distances, "nfe", "distance", "distances"),
        _plot(schedules, "step", "log10_sigma", "schedules"),
    )


def _series_name(spec, preset: str, cfg: float, sampler: str) -> str:
    name = samplers.get(sampler).label
    if len(spec.cfg_scales) > 1:
        name += f", cfg {cfg:g}"
    if len(spec.presets) > 1:
        name += f" ({preset})"
    return name
