"""The Quality tab: which sampler, at how many steps, gives the best images, over thousands of samples,
with 95% intervals. It reads sweep results (the shipped sweep of the embedded model, ``--quality DIR``
or an uploaded ``sweep.json``) and samples nothing, so it never waits for the model queue."""

from __future__ import annotations

import csv
import tempfile
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from dit_demo.app import ids
from dit_demo.app.errors import user_errors
from dit_demo.app.quality_plots import curve_chart, pareto_chart
from dit_demo.lab.quality import answers
from dit_demo.lab.quality.answers import COSTS, METRICS, QualityData, value_text
from dit_demo.lab.quality.cell_metrics import METHOD

INTRO = (
    "Quality over many samples per cell (a **sweep**: `python -m dit_demo.sweep`), each metric with its "
    f"95% interval ({METHOD}). Two cells are told apart only when the 95% interval of their paired "
    "difference excludes 0. Upload your own `sweep.json` to see it the same way."
)
NO_METRIC = (
    "This sweep has no quality metric (its model has no evaluator here): the table shows NFE and time. "
    "Attach the ADM evaluator's numbers to a cell with `python -m dit_demo.sweep annotate DIR CELL FILE`."
)
UNITS = {"nfe": "NFE", "seconds": "s of wall time"}
LISTED = 8  # cells that tie with the best, listed with their numbers; the rest are named after them


@dataclass
class QualityTab:
    state: gr.State
    cell: gr.Dropdown
    inputs: list  # what ``views`` reads
    outputs: list  # what it fills


def describe(data: QualityData | None) -> str:
    if data is None:
        return "No quality data is loaded: upload a `sweep.json`, or start the app with `--quality DIR`."
    parts = []
    for model in data.models():
        cells = [c for c in data.cells if c["model"] == model]
        samples = {c.get("samples") for c in cells}
        each = f", {samples.pop()} samples each" if len(samples) == 1 and None not in samples else ""
        parts.append(f"**{model}**: {len(cells)} cells{each}")
    return f"{'; '.join(parts)}, from {', '.join(data.sources)}."


def views(data: QualityData | None, metric: str, kind: str, budget) -> tuple:
    """Everything the tab shows for this data: curves, front, best at budget, table, cell choices."""
    if data is None:
        return describe(data), None, gr.Plot(value=None), None, "", None, gr.Dropdown(choices=[], value=None)
    headers, rows = answers.table(data)
    table = {"headers": headers, "data": rows}
    cells = gr.Dropdown(choices=[data.name(c) for c in data.cells], value=None)
    if not data.metrics():
        return describe(data), None, gr.Plot(value=None, visible=False), None, NO_METRIC, table, cells
    metric = metric if metric in data.metrics() else data.metrics()[0]
    second = "accuracy" if "accuracy" in data.metrics() and metric != "accuracy" else None
    return (
        describe(data),
        curve_chart(data, metric),
        gr.Plot(value=curve_chart(data, second) if second else None, visible=second is not None),
        pareto_chart(data, metric, kind),
        best_text(data, metric, kind, budget),
        table,
        cells,
    )


def best_text(data: QualityData, metric: str, kind: str, budget) -> str:
    """The best cell within ``budget`` on a line of its own, then the cells it cannot be told from,
    closest first; a budget that is not a number of 0 or more gets a line saying so."""
    try:
        limit = answers.check_budget(budget, UNITS[kind])
    except ValueError as exc:
        return f"**{exc}**"
    best, ties, tested = answers.best_at_budget(data.cells, limit, metric, kind)
    if best is None:
        return f"No cell costs {limit:g} {UNITS[kind]} or less."
    several = data.several_models()
    text = f"**Best {METRICS[metric][0]} within {limit:g} {UNITS[kind]}: {_cell_text(best, metric, several)}**"
    if not (best.get("bootstrap") or {}).get(metric):
        return text + "\n\nThis data has no bootstrap replicates, so no cell can be told apart from it."
    within = [c for c in data.cells if answers.value(c, metric) is not None and answers.within_budget(c, limit, kind)]
    apart = answers.untested(best, within, metric)
    lines = [text, *untested_lines(apart)]
    if not ties:
        others = "within the budget" if tested else "that the test compares with it"
        end = [f"Every other cell {others} is distinguishable from it."] if len(apart) < len(within) - 1 else []
        return "\n\n".join([*lines, *end])
    ties = sorted(ties, key=lambda c: answers.value(c, metric), reverse=not METRICS[metric][1])
    listed = [f"- {_cell_text(c, metric, several)}" for c in ties[:LISTED]]
    if len(ties) > LISTED:
        rest = ", ".join(
            f"{c['sampler']} @ {c['steps']}" + (f" on {c['model']}" if several else "") for c in ties[LISTED:]
        )
        listed.append(f"- and {len(ties) - LISTED} more (sampler @ steps): {rest}")
    return "\n".join(
        ["\n\n".join(lines), "", f"Not distinguishable from it ({len(ties)} cells, closest first):", "", *listed]
    )


def untested_lines(untested: list[tuple[dict, str]]) -> list[str]:
    """One sentence per model and reason for the cells the paired test cannot compare with the best."""
    groups: dict[tuple[str, str], int] = {}
    for cell, why in untested:
        groups[cell["model"], why] = groups.get((cell["model"], why), 0) + 1
    return [
        f"{_cells(count)} of {model} {'has' if count == 1 else 'have'} no bootstrap replicates, so the paired "
        "test cannot tell them apart from it."
        if why == "no replicates"
        else f"The paired test does not compare it with {_cells(count)} of {model} within the budget: their "
        f"samples are not paired with its sample by sample ({why}), so they are neither told apart from it nor "
        "called alike."
        for (model, why), count in groups.items()
    ]


def _cells(count: int) -> str:
    return "1 cell" if count == 1 else f"{count} cells"


def _cell_text(cell: dict, metric: str, several: bool = False) -> str:
    model = f" on {cell['model']}" if several else ""
    return f"{cell['sampler']} @ {cell['steps']} steps ({cell['nfe']} NFE){model}: {value_text(cell, metric)}"


def cell_view(data: QualityData | None, name: str | None):
    """The chosen cell's strip of first samples and its numbers."""
    if data is None or not name:
        return None, ""
    cell = data.find(name)
    if cell is None:
        return None, ""
    numbers = "; ".join(
        f"{METRICS[m][0]} {value_text(cell, m)}" for m in data.metrics() if answers.value(cell, m) is not None
    )
    strip = data.strips.get(name)
    shown = str(strip) if strip is not None and Path(strip).is_file() else None
    note = "" if shown else " (no samples kept for this cell)"
    return shown, f"**{name}**{note}: {numbers}"


def table_csv(data: QualityData | None) -> str:
    if data is None:
        raise ValueError("No quality data is loaded yet.")
    headers, rows = answers.table(data)
    path = Path(tempfile.mkdtemp()) / "quality.csv"
    with path.open("w", newline="") as f:
        csv.writer(f).writerows([headers, *rows])
    return str(path)


def build_quality_tab(data: QualityData | None) -> QualityTab:
    gr.Markdown(INTRO)
    source = gr.Markdown(describe(data), elem_id=ids.Q_SOURCE)
    choices = [(label, key) for key, (label, _) in METRICS.items()]
    with gr.Row():
        metric = gr.Dropdown(choices, value="frechet", label="Metric", elem_id=ids.Q_METRIC)
        kind = gr.Radio([(label, key) for key, label in COSTS.items()], value="nfe", label="Cost", elem_id=ids.Q_COST)
        # no ``minimum``: Gradio would refuse a negative number before ``best_text`` (an HTTP error for an
        # event outside the queue, the old line left standing); ``best_text`` says what is allowed instead
        budget = gr.Number(25, label="Budget (in that cost)", elem_id=ids.Q_BUDGET)
    best = gr.Markdown(elem_id=ids.Q_BEST)
    with gr.Row():
        curve = gr.Plot(label="Metric against NFE", elem_id=ids.Q_CURVE)
        second = gr.Plot(label="Class accuracy against NFE", elem_id=ids.Q_ACCURACY)
    front = gr.Plot(label="Pareto front", elem_id=ids.Q_PARETO)
    table = gr.Dataframe(
        label="Every cell (click a header to sort, a row to see its samples)",
        interactive=False,
        elem_id=ids.Q_TABLE,
        max_height=100_000,  # every row on the page: no second scroll box inside it
    )
    with gr.Row():
        cell = gr.Dropdown([], label="Cell", elem_id=ids.Q_CELL, scale=2)
        upload = gr.File(label="Your sweep.json", file_types=[".json"], elem_id=ids.Q_UPLOAD, scale=2)
        download = gr.DownloadButton("Table as CSV", elem_id=ids.Q_CSV, scale=1)
    details = gr.Markdown(elem_id=ids.Q_DETAILS)
    strip = gr.Image(label="Its first samples", interactive=False, elem_id=ids.Q_STRIP, type="filepath")
    state = gr.State(data)
    shown = [source, curve, second, front, best, table, cell]
    for control in (metric, kind, budget):
        control.change(views, [state, metric, kind, budget], shown, api_visibility="private", queue=False)
    table.select(_picked, [state, table], cell, api_visibility="private", queue=False)
    shown_cell = cell.change(cell_view, [state, cell], [strip, details], api_visibility="private", queue=False)
    # the chosen cell's samples come into view, whether a table row (above them) or Compare (another tab) chose it
    shown_cell.then(None, js=f"() => document.getElementById('{ids.Q_DETAILS}').scrollIntoView({{block: 'start'}})")
    # through the queue, so a refusal reaches the page as a message (each event is its own queue: a
    # comparison running does not hold these up)
    download.click(user_errors(table_csv), state, download, api_visibility="private")
    uploaded = upload.upload(user_errors(_read_upload), upload, state, api_visibility="private")
    uploaded.success(views, [state, metric, kind, budget], shown, api_visibility="private", queue=False)
    # the drop zone is ready for the next file; the source line names the one shown
    uploaded.then(lambda: None, None, upload, api_visibility="private", queue=False)
    return QualityTab(state, cell, [state, metric, kind, budget], shown)


def _read_upload(file) -> QualityData:
    path = getattr(file, "path", file)
    if not path:
        raise ValueError("Drop a sweep.json (the file `python -m dit_demo.sweep` writes next to its cells).")
    return answers.load([path])


def _picked(data: QualityData | None, table, event: gr.SelectData):
    """The clicked row's cell (its first column), also when the table was sorted by a header."""
    row = getattr(event, "row_value", None)
    if not row:
        rows = table.values.tolist() if hasattr(table, "values") else (table or {}).get("data", [])
        row = rows[event.index[0]] if rows and event.index is not None else None
    if data is None or not row:
        return gr.skip()
    return data.name({"cell": row[0], "model": row[1]}) if data.several_models() else row[0]
