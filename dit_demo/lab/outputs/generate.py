"""Generate images: classes x images-per-class with one sampler, through the lock-step engine."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from PIL import Image

from dit_demo.lab.outputs.grid import make_grid
from dit_demo.lab.outputs.records import BatchRecord, ImageRecord
from dit_demo.runtime.budget import Budget
from dit_demo.runtime.bundle import DiTBundle
from dit_demo.runtime.engine import Progress, sample
from dit_demo.runtime.levers import LaneLevers
from dit_demo.runtime.parsing import MAX_SEED, as_int
from dit_demo.runtime.request import MAX_LANES, Lane


@dataclass
class Generated:
    image: Image.Image
    record: ImageRecord  # how it was made: enough to reproduce it
    nfe: int
    seconds: float

    @property
    def parameters(self) -> dict:
        """What its PNG carries (``save_png``)."""
        return self.record.to_dict()

    def caption(self) -> str:
        p = self.parameters
        return f"{p['class_name']} | {p['sampler']} {p['steps']} steps | cfg {p['cfg_scale']:g} | seed {p['seed']}"


def generation_lanes(
    classes: Sequence[int | str],
    sampler: str,
    steps: int,
    cfg_scale: float | None,
    seed: int,
    per_class: int = 1,
    cfg_channels: int | None = None,
    spacing: str | None = None,
    levers: LaneLevers | None = None,
) -> list[Lane]:
    """Image j of every class uses seed + j, so classes can be compared on the same noise."""
    per_class = as_int("Images per class", per_class, 1, MAX_LANES)
    if isinstance(classes, (str, int)):
        classes = [classes]
    if not classes:
        raise ValueError("Choose at least one class.")
    if len(classes) * per_class > MAX_LANES:  # counted before any lane is built
        raise ValueError(
            f"Batch too large: {len(classes)} classes x {per_class} images per class, "
            f"at most {MAX_LANES} images per request."
        )
    seed = as_int("Seed", seed, 0, MAX_SEED - per_class)
    return [
        Lane(
            sampler,
            steps,
            c,
            seed + j,
            cfg_scale,
            cfg_channels=cfg_channels,
            spacing=spacing,
            levers=levers or LaneLevers(),
        )
        for c in classes
        for j in range(per_class)
    ]


def generate(
    bundle: DiTBundle,
    lanes: Sequence[Lane],
    callback: Callable[[Progress], None] | None = None,
    cancel: threading.Event | None = None,
    budget: Budget | None = None,
) -> list[Generated]:
    results = sample(bundle, lanes, callback=callback, cancel=cancel, budget=budget)
    images = bundle.decode_images(torch.stack([r.latents for r in results]))
    out = []
    for result, image in zip(results, images):
        out.append(Generated(image, ImageRecord.from_lane(result.lane, bundle), result.nfe, result.seconds))
    return out


def batch_grid(made: Sequence[Generated], per_row: int) -> tuple[Image.Image, dict]:
    """Several generated images as one PNG: a row per class, a column per seed (``per_row`` images a row,
    in the order ``generation_lanes`` makes them), and the parameters of every image (a ``BatchRecord``)."""
    rows = [made[i : i + per_row] for i in range(0, len(made), per_row)]
    grid = make_grid(
        [[g.image for g in row] for row in rows],
        [row[0].parameters["class_name"] for row in rows],
        [f"seed {g.parameters['seed']}" for g in rows[0]],
    )
    return grid, BatchRecord(tuple(g.record for g in made)).to_dict()
