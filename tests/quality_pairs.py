"""Constructed sweeps of a second model for the Quality tab's tests: the shipped DiT sweep's cells, renamed
to a SiT's samplers, their Frechet distances moved (with their replicates), everything else kept."""

from __future__ import annotations

import json
from pathlib import Path

from dit_demo.lab.quality import answers

SIT = "embedded SiT (constructed)"
DIT = json.loads((answers.SHIPPED / "sweep.json").read_text())["spec"]["model"]
RENAMED = {"euler": "sit_ode_euler", "heun": "sit_ode_heun"}  # DiT sampler -> the SiT sampler its cells become


def sit_cells(scale: float = 0.8) -> list[dict]:
    """The shipped Euler and Heun cells as a SiT's: Frechet distance and its replicates times ``scale``
    (a paired difference of (1 - scale) x the DiT's), every other metric and its replicates as they are."""
    shipped = json.loads((answers.SHIPPED / "sweep.json").read_text())["cells"]
    cells = []
    for cell in shipped:
        if cell["sampler"] not in RENAMED:
            continue
        sampler = RENAMED[cell["sampler"]]
        moved = {"frechet": cell["frechet"] * scale, "frechet_ci": [b * scale for b in cell["frechet_ci"]]}
        reps = {**cell["bootstrap"], "frechet": [r * scale for r in cell["bootstrap"]["frechet"]]}
        cells.append({**cell, **moved, "cell": cell["cell"].replace(cell["sampler"], sampler, 1), "sampler": sampler,
                      "bootstrap": reps})  # fmt: skip
    return cells


def write_sit_sweep(folder: Path, scale: float = 0.8, **spec) -> Path:
    """``folder/sweep.json`` of the constructed SiT; ``spec`` is its sweep's record (seed=0 pairs it with
    the shipped DiT sweep; another seed, or none, does not)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sweep.json").write_text(json.dumps({"spec": {"model": SIT, **spec}, "cells": sit_cells(scale)}))
    return folder
