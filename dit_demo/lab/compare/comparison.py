"""A finished comparison: its cells (image, latents, cost, noise levels, distance to the reference)
and the tables made from them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

import samplers
from dit_demo.lab.outputs.records import ImageRecord
from dit_demo.lab.specs.compare_spec import ComparisonSpec
from dit_demo.lab.specs.model_axis import left_out, model_label
from dit_demo.runtime.levers import LaneLevers


@dataclass(kw_only=True)
class Cell:
    sampler: str
    steps: int
    cfg_scale: float
    image: Image.Image
    latents: torch.Tensor
    nfe: int
    seconds: float
    timesteps: list[float]
    sigmas: list[float]
    seed: int = 0
    preset: str = "exact"
    model: str = ""  # its model on a model axis (as the spec names it); "": the loaded model
    levers: LaneLevers = LaneLevers()  # the lane levers it ran with (its preset's and the spec's)
    distance: float = float("nan")  # latent RMSE to the reference of its cfg and seed
    pixel_distance: float = float("nan")  # pixel RMSE to that reference, [0, 1] units
    record: ImageRecord  # what the cell's own PNG carries
    is_reference: bool = False

    @property
    def row_label(self) -> str:
        return samplers.get(self.sampler).label

    def caption(self) -> str:
        return f"{self.row_label} | {self.steps} steps | seed {self.seed} | NFE {self.nfe} | {self.seconds:.2f}s"


@dataclass(kw_only=True)
class Comparison:
    spec: ComparisonSpec
    class_id: int
    class_name: str
    cells: list[Cell]
    reference: list[Cell]  # one per (model, cfg scale, seed), in that order
    seconds: float
    grid: Image.Image | None = None
    difference: Image.Image | None = None  # |cell - reference| per cell, same layout as ``grid``
    model_hash: str | None = None  # a short hash of the model's weights (``DiTBundle.extras["weights"]``)
    family: str | None = None  # the model's family (its parameterization's), which its PNG records

    def series(self) -> list[tuple[tuple[str, str, float, str, int], list[Cell]]]:
        """Cells grouped over seeds: ((model, preset, cfg, sampler, steps), cells), in grid order."""
        groups: dict[tuple, list[Cell]] = {}
        for c in self.cells:
            groups.setdefault((c.model, c.preset, c.cfg_scale, c.sampler, c.steps), []).append(c)
        return list(groups.items())

    def left_out(self) -> str:
        """The sampler x model pairs a model axis leaves out, and why, in one line ("" when none)."""
        lines = left_out(self.spec.samplers, self.spec.models, self.spec.families)
        return f"Left out: {'; '.join(lines)}." if lines else ""

    def table(self) -> list[dict]:
        """One row per (model, sampler, steps, cfg, preset): distances first (the mean over seeds, and their
        spread when there are several), then cost. Headers are for people; the sampler's id is in
        the Reproduce tab and the PNG."""
        spec = self.spec
        rows = []
        for (model, preset_name, cfg, sampler, steps), cells in self.series():
            latent = np.array([c.distance for c in cells])
            pixel = np.array([c.pixel_distance for c in cells])
            row = {"Model": model_label(model)} if len(spec.models) > 1 else {}
            row.update({"Sampler": samplers.get(sampler).label, "Steps": steps})
            row["Latent RMSE to reference"] = round(float(latent.mean()), 4)
            if spec.seeds > 1:
                row["± (sd over seeds)"] = round(float(latent.std(ddof=1)), 4)
            row["Pixel RMSE to reference"] = round(float(pixel.mean()), 4)
            if spec.seeds > 1:
                row["Pixel ± (sd)"] = round(float(pixel.std(ddof=1)), 4)
            row.update({"NFE": cells[0].nfe, "Time (s)": round(float(np.mean([c.seconds for c in cells])), 3)})
            row["CFG"] = cfg
            if len(spec.presets) > 1:
                row["Preset"] = preset_name
            row["Reference"] = "reference" if any(c.is_reference for c in cells) else ""
            rows.append(row)
        return rows

    def cell_parameters(self, cell: Cell) -> dict:
        """What one cell's own PNG carries: enough for Reproduce to make it again in the Generate tab."""
        return cell.record.to_dict()

    def markdown_table(self) -> str:
        rows = self.table()
        headers = list(rows[0])
        lines = ["| " + " | ".join(headers) + " |", "|---|" + "---:|" * (len(headers) - 1)]
        for row in rows:
            lines.append("| " + " | ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in row.values()) + " |")
        return "\n".join(lines)
