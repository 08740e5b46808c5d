"""From Compare to Quality: a finished comparison's cells that the Quality tab's sweeps also hold (same
sampler, steps and cfg) show their numbers over many samples next to their distance on this one seed,
and a button opens the Quality tab on that row."""

from __future__ import annotations

import gradio as gr

from dit_demo.app.compare_results import CompareResults
from dit_demo.app.quality_tab import QualityTab, value_text
from dit_demo.lab import quality
from dit_demo.lab.quality import QualityData

SHOWN = ("frechet", "accuracy", "fid")


def matches(kept: dict, data: QualityData | None) -> list[tuple[tuple, dict]]:
    """((sampler, steps, cfg, distance), sweep cell) for every comparison series the sweeps hold."""
    if data is None:
        return []
    found = []
    for sampler, steps, cfg, distance in kept.get("cells", []):
        for cell in data.cells:
            same_cfg = cell.get("cfg") is None or abs(float(cell["cfg"]) - float(cfg)) < 1e-9
            if cell["sampler"] == sampler and int(cell["steps"]) == int(steps) and same_cfg:
                found.append(((sampler, steps, cfg, distance), cell))
                break
    return found


def link(kept: dict, data: QualityData | None):
    """The note, the cell chooser and its button, for the comparison just finished."""
    found = matches(kept or {}, data)
    if not found:
        hidden = gr.update(visible=False)
        return "", hidden, hidden
    lines = [f"**Also in the Quality tab's sweeps** ({data.model}; 95% intervals over each cell's samples):"]
    for (sampler, steps, cfg, distance), cell in found:
        numbers = ", ".join(
            f"{quality.METRICS[m][0]} {value_text(cell, m)}" for m in SHOWN if quality.value(cell, m) is not None
        )
        lines.append(
            f"- {sampler} @ {steps} steps, cfg {cfg:g}: latent RMSE to the reference {distance:.4f} here; {numbers}"
        )
    names = [cell["cell"] for _, cell in found]
    return "\n".join(lines), gr.Dropdown(choices=names, value=names[0], visible=True), gr.Button(visible=True)


def wire_quality_link(results: CompareResults, event, quality_tab: QualityTab, tabs: gr.Tabs) -> None:
    outputs = [results.quality_note, results.quality_cell, results.quality_open]
    event.success(link, [results.kept, quality_tab.state], outputs, api_visibility="private")
    results.quality_open.click(
        lambda name: (gr.Tabs(selected="quality"), name),
        results.quality_cell,
        [tabs, quality_tab.cell],
        api_visibility="private",
    )
