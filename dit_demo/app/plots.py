"""The Compare tab's two plots, as Vega-Lite charts made with Altair: every update is a whole new chart,
so new series names never meet an old colour domain, legends are never cut, and the distance axis
can be logarithmic. Series that coincide (DDIM and Euler are the same update, most samplers visit the
same noise levels) are drawn once and named together, instead of one line hiding another; colours
come from a palette whose neighbours are far apart."""

from __future__ import annotations

import math

import altair as alt
import pandas as pd

import samplers
from dit_demo.lab.compare.comparison import Comparison
from dit_demo.lab.specs.model_axis import model_label

# Tableau 10: adjacent colours stay distinguishable, also for the common colour-vision deficiencies
PALETTE = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"]
AXES = ("linear", "log")
# Gradio fits only its own plots to their box: an Altair chart keeps the width it is given, which
# leaves half of a 1400 px page to each of the two plots
CHART_WIDTH = 500
# mid-grey text reads on the light and on the dark page alike
TEXT = "#888888"
# Gradio floats the plot's label and its menu button over the chart's top edge: the chart starts below
# them, so its title (the notes a reader needs, such as what a log axis leaves out) is never hidden
BELOW_LABEL = {"top": 32, "left": 5, "right": 5, "bottom": 5}


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


def chart(series: dict[str, list], x_title: str, y_title: str, log_y: bool = False) -> alt.Chart:
    """One line per series (identical ones merged), named in a legend below the plot that is never cut.
    On a log axis points at 0 (the reference's distance to itself) cannot be drawn and are left out."""
    merged = merge_identical(series)
    rows = [{"x": x, "y": y, "series": name} for name, points in merged.items() for x, y in points]
    frame = pd.DataFrame(rows, columns=["x", "y", "series"])
    notes = (
        [f"Identical, drawn as one line: {'; '.join(n for n in merged if ' = ' in n)}."]
        if any(" = " in n for n in merged)
        else []
    )
    if log_y and (frame["y"] <= 0).any():
        frame = frame[frame["y"] > 0]
        notes.append("Points at 0 (the reference itself) are not drawn on a log axis.")
    names = list(merged)
    colour = alt.Color(
        "series:N",
        scale=alt.Scale(domain=names, range=[PALETTE[i % len(PALETTE)] for i in range(len(names))]),
        legend=alt.Legend(title=None, orient="bottom", direction="vertical", labelLimit=0, labelColor=TEXT),
    )
    style = {"labelColor": TEXT, "titleColor": TEXT, "gridOpacity": 0.3}
    axis = alt.Axis(**style)
    return (
        alt.Chart(frame)
        .mark_line(point=True)
        .encode(
            # "~g": whole numbers without decimals, also when every point sits at one x (one step count)
            x=alt.X("x:Q", title=x_title, axis=alt.Axis(**style, format="~g")),
            y=alt.Y("y:Q", title=y_title, axis=axis, scale=alt.Scale(type="log") if log_y else alt.Scale(zero=False)),
            color=colour,
            tooltip=[alt.Tooltip("series:N"), alt.Tooltip("x:Q", title=x_title), alt.Tooltip("y:Q", title=y_title)],
        )
        .properties(
            # the plot's own label names it: the chart's title says only what to know when reading it
            title=alt.TitleParams(notes or "", color=TEXT, fontSize=11, fontWeight="normal"),
            width=CHART_WIDTH,
            height=260,
            background="transparent",
            padding=BELOW_LABEL,
        )
        .configure_view(stroke=None)
    )


def plot_series(comparison: Comparison) -> dict[str, dict[str, list]]:
    """The two plots' data: distance to the reference against NFE (mean over seeds) per series, and
    the noise levels each sampler visits at its longest run."""
    spec = comparison.spec
    distances: dict[str, list] = {}
    for (model, preset, cfg, sampler, _), cells in comparison.series():
        name = _series_name(spec, preset, cfg, sampler, model)
        mean = sum(c.distance for c in cells) / len(cells)
        distances.setdefault(name, []).append((float(cells[0].nfe), mean))
    longest = max(spec.steps)  # one schedule per sampler at its longest run stays readable
    schedules: dict[str, list] = {}
    for c in comparison.cells:
        first = c.seed == spec.seed and c.preset == spec.presets[0] and c.cfg_scale == spec.cfg_scales[0]
        if c.steps == longest and first:
            name = f"{samplers.get(c.sampler).label} {c.steps}"
            name += f" on {model_label(c.model)}" if len(spec.models) > 1 else ""
            schedules[name] = [(float(i), math.log10(max(s, 1e-6))) for i, s in enumerate(c.sigmas)]
    return {"distances": distances, "schedules": schedules}


def comparison_plots(series: dict[str, dict[str, list]], axis: str = "linear") -> tuple[alt.Chart, alt.Chart]:
    """(distance to the reference against NFE, on a linear or log axis) and (noise levels visited)."""
    return (
        chart(
            series.get("distances", {}),
            "model evaluations (NFE)",
            "latent RMSE to reference" + (" (log)" if axis == "log" else ""),
            log_y=axis == "log",
        ),
        chart(series.get("schedules", {}), "model evaluation", "log10 sigma"),
    )


def _series_name(spec, preset: str, cfg: float, sampler: str, model: str = "") -> str:
    name = samplers.get(sampler).label
    if len(spec.models) > 1:
        name += f" on {model_label(model)}"
    if len(spec.cfg_scales) > 1:
        name += f", cfg {cfg:g}"
    if len(spec.presets) > 1:
        name += f" ({preset})"
    return name
