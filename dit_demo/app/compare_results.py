"""The Compare tab's results: live strip, status line, the grid (images or differences), the zip, the
table and two plots, and what a finished comparison puts in each."""

from __future__ import annotations

import os
from dataclasses import dataclass

import gradio as gr
import pandas as pd

import samplers
from dit_demo.app import ids
from dit_demo.app.outputs import file_name, save_output, save_zip
from dit_demo.app.plots import AXES, comparison_plots, plot_series
from dit_demo.lab.compare.comparison import Comparison
from dit_demo.lab.compare.grids import comparison_grid, difference_grid
from dit_demo.lab.outputs.grid import DARK
from dit_demo.lab.outputs.records import ComparisonRecord
from dit_demo.lab.specs.model_axis import model_label


@dataclass(kw_only=True)
class CompareResults:
    preview: gr.Gallery
    summary: gr.Markdown
    view: gr.Radio
    grid: gr.Image
    dark: gr.Image
    kept: gr.State  # the finished comparison's grid files and plot data, for the two toggles
    download: gr.DownloadButton
    table: gr.Dataframe
    axis: gr.Radio
    dist_plot: gr.Plot
    sigma_plot: gr.Plot
    quality_note: gr.Markdown  # the cells that the Quality tab's sweeps also hold, with their numbers there
    quality_cell: gr.Dropdown
    quality_open: gr.Button

    def outputs(self) -> list:
        """What /compare writes, in its order (the State is not part of the API's answer)."""
        return [self.preview, self.grid, self.kept, self.download, self.table, self.dist_plot, self.sigma_plot,
                self.summary]  # fmt: skip


def build_compare_results(column) -> CompareResults:
    """The live strip, status and grid in ``column`` (the tab's right-hand one), then the table and the
    plots in full-width rows below the tab's row."""
    with column:
        top = _build_live_and_grid()
    return CompareResults(**top, **_build_table_and_plots())


def _build_live_and_grid() -> dict:
    preview = gr.Gallery(label="Live: where each cell is heading", columns=6, height=260, elem_id=ids.CMP_PREVIEW)
    summary = gr.Markdown(elem_id=ids.CMP_STATUS)
    view = gr.Radio(
        [("images", "images"), ("difference to the reference", "difference")],
        value="images",
        label="Show",
        elem_id=ids.CMP_VIEW,
    )
    grid = gr.Image(
        label="Grid (PNG with the comparison spec)",
        type="filepath",
        format="png",
        elem_id=ids.CMP_GRID,
        buttons=["download", "fullscreen"],
        interactive=False,  # an output (read by the refusal line too, which would make it an upload box)
    )
    # the dark copy of what the grid shows: never displayed itself, the page script draws it over the grid
    # in dark mode (the grid's own download button keeps the white file)
    dark = gr.Image(
        type="filepath", format="png", elem_id=ids.CMP_GRID_DARK, show_label=False, buttons=[], interactive=False
    )
    kept = gr.State({})
    download = gr.DownloadButton("Download all (zip)", elem_id=ids.CMP_ZIP, interactive=False)
    return dict(preview=preview, summary=summary, view=view, grid=grid, dark=dark, kept=kept, download=download)


def _build_table_and_plots() -> dict:
    with gr.Row():
        table = gr.Dataframe(
            label="Per cell: distance to the reference, NFE, time (scroll sideways on a narrow screen)",
            elem_id=ids.CMP_TABLE,
            visible=False,  # until there is a comparison: an empty table only shows placeholder headers
            max_height=100_000,  # every row on the page: no second scroll box inside it
            wrap=True,
        )
    with gr.Row():
        axis = gr.Radio(list(AXES), value="linear", label="Distance axis", elem_id=ids.CMP_AXIS, scale=0)
    with gr.Row():
        dist_plot = gr.Plot(label="Distance to the reference vs NFE", elem_id=ids.CMP_DISTANCE_PLOT)
        sigma_plot = gr.Plot(label="Noise levels visited", elem_id=ids.CMP_SIGMA_PLOT)
    note = gr.Markdown(elem_id=ids.CMP_QUALITY)
    with gr.Row():
        cell = gr.Dropdown([], label="Cell in the Quality tab", visible=False, elem_id=ids.CMP_QUALITY_CELL, scale=3)
        show = gr.Button("Open it in Quality", visible=False, elem_id=ids.CMP_QUALITY_OPEN, scale=1)
    return dict(
        table=table,
        axis=axis,
        dist_plot=dist_plot,
        sigma_plot=sigma_plot,
        quality_note=note,
        quality_cell=cell,
        quality_open=show,
    )


def wire_compare_results(results: CompareResults, event) -> None:
    """The toggles, and the zip and table offered once there is a comparison (not in /compare's answer,
    which stays plain values)."""
    offered = lambda: (gr.DownloadButton(interactive=True), gr.Dataframe(visible=True))  # noqa: E731
    event.success(offered, None, [results.download, results.table], api_visibility="private")
    view, kept, grid, axis = results.view, results.kept, results.grid, results.axis
    event.success(_dark_copy, [view, kept], results.dark, api_visibility="private")
    view.change(_shown, [view, kept], [grid, results.dark], api_visibility="private")
    axis.change(_replot, [axis, kept], [results.dist_plot, results.sigma_plot], api_visibility="private")


def _dark_copy(view: str, kept: dict):
    return kept.get(f"{view}-dark", gr.skip())


def _shown(view: str, kept: dict):
    if view not in kept:
        return gr.skip(), gr.skip()
    return kept[view], kept.get(f"{view}-dark")


def _replot(axis: str, kept: dict):
    if not kept.get("plots"):
        return gr.skip(), gr.skip()
    return comparison_plots(kept["plots"], axis)


def comparison_outputs(
    model_name: str, comparison: Comparison, view: str = "images", axis: str = "linear", note: str = ""
):
    """The outputs from a finished comparison, but the strip: the grid shown (images or differences),
    what the toggles keep, the zip, table, two plots and the summary (``note`` ends it)."""
    spec = comparison.spec
    parameters = ComparisonRecord(model_name, spec, comparison.model_hash, comparison.family).to_dict()
    stem = file_name(comparison.class_name, "compare", "-".join(spec.samplers), f"seed{spec.seed}")[: -len(".png")]
    files = {
        "images": save_output(comparison.grid, parameters, f"{stem}.png"),
        "difference": save_output(comparison.difference, parameters, f"{stem}_difference.png"),
    }
    zip_path = save_zip(
        f"{stem}.zip",
        {
            **{os.path.basename(path): path for path in files.values()},
            **{_cell_name(comparison, c): (c.image, comparison.cell_parameters(c)) for c in comparison.cells},
        },
    )
    summary = (
        f"**{comparison.class_name}** (class {comparison.class_id}): {len(comparison.cells)} cells, "
        f"{sum(c.nfe for c in comparison.cells)} NFE in {comparison.seconds:.2f}s (lock-step batched). "
        + _reference_text(comparison)
    )
    summary = " ".join(part for part in (summary, comparison.left_out(), note) if part)
    series = plot_series(comparison)
    # dark copies for a dark page (shown over the white files, which stay what is downloaded and zipped)
    dark = {
        "images-dark": save_output(comparison_grid(comparison, DARK), parameters, f"{stem}_dark.png"),
        "difference-dark": save_output(difference_grid(comparison, DARK), parameters, f"{stem}_difference_dark.png"),
    }
    # (sampler, steps, cfg, speed preset, mean distance to the reference, model name as its records and sweeps
    # say it) of each series: what the Quality tab's sweeps may hold (a sweep cell's numbers are those of the
    # levers it ran with)
    cells = [
        (s, n, cfg, preset, sum(c.distance for c in group) / len(group), group[0].record.model)
        for (_, preset, cfg, s, n), group in comparison.series()
    ]
    return (
        files.get(view, files["images"]),
        {**files, **dark, "plots": series, "cells": cells},
        zip_path,
        pd.DataFrame(comparison.table()),
        *comparison_plots(series, axis if axis in AXES else "linear"),
        summary,
    )


def _reference_text(comparison: Comparison) -> str:
    if len(comparison.spec.models) > 1:  # one reference per model: the same noise makes another image on each
        per_cfg_seed = len(comparison.spec.cfg_scales) * comparison.spec.seeds
        each = [
            f"{samplers.get(r.sampler).label} @ {r.steps} steps on {model_label(r.model)}"
            for r in comparison.reference[::per_cfg_seed]
        ]
        return f"Each model against its own reference: {'; '.join(each)}."
    ref = comparison.reference[0]
    text = f"Reference: {samplers.get(ref.sampler).label} @ {ref.steps} steps"
    if len(comparison.spec.presets) > 1:
        text += f", {ref.preset} preset"
    if comparison.spec.seeds > 1:
        text += f", one per seed; distances are the mean (and sd) over {comparison.spec.seeds} seeds"
    return text + "."


def _cell_name(comparison: Comparison, cell) -> str:
    return file_name(
        comparison.class_name,
        cell.sampler,
        cell.steps,
        f"cfg{cell.cfg_scale:g}",
        f"seed{cell.seed}",
        cell.preset if len(comparison.spec.presets) > 1 else "",
        model_label(cell.model) if len(comparison.spec.models) > 1 else "",
    )
