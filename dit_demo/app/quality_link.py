"""From Compare to Quality: a finished comparison's cells that the Quality tab's sweeps also hold (same
sampler, steps and cfg) show their numbers over many samples next to their distance on this one seed,
and a button opens the Quality tab on that row. A cell's numbers are those of the sweep cell of its own
speed preset; where the sweeps have none, the line says so and whose numbers it shows instead. Where the
sweeps are of several models, each cell is matched with its own model's sweep where one is loaded (by the
name its records carry), else each model holding the cell gets its line, named."""

from __future__ import annotations

import gradio as gr

from dit_demo.app.compare_results import CompareResults
from dit_demo.app.quality_tab import QualityTab
from dit_demo.lab.quality import answers
from dit_demo.lab.quality.answers import QualityData, value_text

SHOWN = ("frechet", "accuracy", "fid")


def matches(kept: dict, data: QualityData | None) -> list[tuple[tuple, dict, bool]]:
    """((sampler, steps, cfg, preset, distance[, model]), sweep cell, whether that cell ran with the same preset)
    for every comparison series and model the sweeps hold it for: the cell of its preset where there is one.
    A series that names its model (a sixth value) is matched with that model's sweep where one is loaded;
    with every model's that holds it otherwise (a folder's model may be a sweep's under another name)."""
    if data is None:
        return []
    found = []
    for sampler, steps, cfg, preset, distance, *named in kept.get("cells", []):
        own = [m for m in data.models() if named and m == named[0]]
        for model in own or data.models():
            held = [c for c in data.cells if c["model"] == model and _same_key(c, sampler, steps, cfg)]
            same = [c for c in held if answers.preset_of(c) == preset]
            if held:
                found.append(((sampler, steps, cfg, preset, distance, *named), (same or held)[0], bool(same)))
    return found


def _same_key(cell: dict, sampler: str, steps: int, cfg: float) -> bool:
    return cell["sampler"] == sampler and int(cell["steps"]) == int(steps) and _same_cfg(cell, cfg)


def _same_cfg(cell: dict, cfg: float) -> bool:
    return cell.get("cfg") is None or abs(float(cell["cfg"]) - float(cfg)) < 1e-9


def link(kept: dict, data: QualityData | None):
    """The note, the cell chooser and its button, for the comparison just finished."""
    found = matches(kept or {}, data)
    if not found:
        hidden = gr.update(visible=False)
        return "", hidden, hidden
    lines = [f"**Also in the Quality tab's sweeps** ({data.model}; 95% intervals over each cell's samples):"]
    for (sampler, steps, cfg, preset, distance, *named), cell, same in found:
        numbers = ", ".join(
            f"{answers.METRICS[m][0]} {value_text(cell, m)}" for m in SHOWN if answers.value(cell, m) is not None
        )
        here = f"- {sampler} @ {steps} steps, cfg {cfg:g}, {preset} preset: latent RMSE to the reference {distance:.4f} here"
        if not same:
            numbers = f"the sweeps have no {preset}-preset cell for it, these numbers are {_ran_with(cell)}: {numbers}"
        lines.append(f"{here}; {numbers}{_whose(cell, named, data.several_models())}")
    names = list(dict.fromkeys(data.name(cell) for _, cell, _ in found))  # a sweep cell shown for two presets: once
    return "\n".join(lines), gr.Dropdown(choices=names, value=names[0], visible=True), gr.Button(visible=True)


def _whose(cell: dict, named: list[str], several: bool) -> str:
    """Whose sweep a line's numbers are from: said with several models, and always when it is not the model
    the comparison's cell ran on."""
    other = bool(named) and named[0] != cell["model"]
    if not (several or other):
        return ""
    return f" ({cell['model']}'s sweep" + (f"; this cell ran on {named[0]})" if other else ")")


def _ran_with(cell: dict) -> str:
    """What a sweep cell of another preset ran with."""
    if answers.preset_of(cell) is not None:
        return f"with the {answers.preset_of(cell)} preset"
    if cell.get("levers"):
        return f"with other levers ({cell['levers']})"
    return "with speed levers the sweep does not record"


def wire_quality_link(results: CompareResults, event, quality_tab: QualityTab, tabs: gr.Tabs) -> None:
    outputs = [results.quality_note, results.quality_cell, results.quality_open]
    event.success(link, [results.kept, quality_tab.state], outputs, api_visibility="private")
    results.quality_open.click(
        lambda name: (gr.Tabs(selected="quality"), name),
        results.quality_cell,
        [tabs, quality_tab.cell],
        api_visibility="private",
    )
