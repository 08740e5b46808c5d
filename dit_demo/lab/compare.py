"""A comparison = samplers x step counts (x cfg scales) on one seed and class, run in lock-step."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
from PIL import Image

import samplers
from dit_demo.lab.grid import make_grid
from dit_demo.lab.metrics import latent_rmse, pixel_rmse
from dit_demo.runtime.budget import Budget
from dit_demo.runtime.bundle import DiTBundle
from dit_demo.runtime.engine import Progress, sample
from dit_demo.runtime.parsing import (
    as_float,
    parse_floats,
    parse_interval,
    parse_names,
    parse_reference,
    parse_spacing,
    parse_steps,
)
from dit_demo.runtime.request import MAX_LANES, Lane


@dataclass(frozen=True)
class ComparisonSpec:
    """Everything that defines a comparison; stored in the grid PNG to reproduce it."""

    samplers: tuple[str, ...]
    steps: tuple[int, ...]
    class_id: int | str
    cfg_scales: tuple[float, ...]
    seed: int = 0
    cfg_channels: int | None = None
    reference: tuple[str, int] | None = None  # (sampler, steps); default: highest-step deterministic cell
    spacing: str | None = None  # step grid for every lane; None: each sampler's default
    guidance_interval: tuple[float, float] | None = None  # noise levels where guidance runs; None: all
    cache_threshold: float = 0.0  # first-block cache threshold for every lane; 0: every block runs

    @classmethod
    def build(
        cls,
        samplers_text,
        steps_text,
        class_id,
        seed=0,
        cfg_text=None,
        cfg_channels=None,
        reference=None,
        spacing=None,
        guidance_interval=None,
        cache_threshold=None,
        max_steps: int = 1000,
    ) -> ComparisonSpec:
        """Parse the user-facing forms (comma lists, ranges) into a spec, sized before any lane exists."""
        names, steps, cfgs = parse_names(samplers_text), parse_steps(steps_text, max_steps), parse_floats(cfg_text)
        cells = len(names) * len(steps) * len(cfgs)
        if cells > MAX_LANES:
            raise ValueError(
                f"This comparison has {len(names)} samplers x {len(steps)} step counts x {len(cfgs)} cfg "
                f"scales = {cells} cells; at most {MAX_LANES} per request."
            )
        return cls(
            tuple(names),
            tuple(steps),
            class_id,
            tuple(cfgs),
            seed,
            cfg_channels,
            parse_reference(reference, max_steps),
            parse_spacing(spacing),
            parse_interval(guidance_interval),
            0.0 if cache_threshold is None else as_float("Cache threshold", cache_threshold, 0, 1),
        )

    def to_dict(self) -> dict:
        data = asdict(self)
        data["reference"] = list(self.reference) if self.reference else None
        for key in ("spacing", "guidance_interval", "cache_threshold"):  # absent: the default, as in older PNGs
            if not data[key]:
                del data[key]
        return data

    @classmethod
    def from_dict(cls, data: dict) -> ComparisonSpec:
        """A spec from a PNG's parameters; a field that is missing or of the wrong kind is a ValueError."""
        try:
            return cls.build(
                data["samplers"],
                list(data["steps"]),
                data["class_id"],
                int(data.get("seed", 0)),
                list(data["cfg_scales"]),
                data.get("cfg_channels"),
                data.get("reference"),
                data.get("spacing"),
                data.get("guidance_interval"),
                data.get("cache_threshold"),
                max_steps=10**6,
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(
                f"The comparison's parameters are incomplete or damaged ({type(exc).__name__}: {exc})."
            ) from None

    def cell_previews(self, x0: dict[int, torch.Tensor]) -> list[tuple[str, torch.Tensor]]:
        """("sampler steps", x0 latent) for each cell in a progress report, in grid order.

        Lanes are numbered as :meth:`lanes` lists them; a reference lane that is not a cell runs
        after them and has no place in the grid, so it is left out.
        """
        names = [f"{lane.sampler} {lane.steps}" for lane in self.lanes()]
        return [(names[k], x0[k]) for k in sorted(x0) if k < len(names)]

    def lane(self, sampler: str, steps: int, cfg: float) -> Lane:
        """One cell's lane: everything but the sampler, steps and cfg comes from the spec."""
        return Lane(
            sampler,
            steps,
            self.class_id,
            self.seed,
            cfg,
            self.cfg_channels,
            self.spacing,
            self.guidance_interval,
            self.cache_threshold,
        )

    def lanes(self) -> list[Lane]:
        return [
            self.lane(name, steps, cfg) for cfg in self.cfg_scales for name in self.samplers for steps in self.steps
        ]


@dataclass
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
    distance: float = float("nan")  # latent RMSE to the reference
    pixel_distance: float = float("nan")  # pixel RMSE to the reference, [0, 1] units
    is_reference: bool = False

    @property
    def row_label(self) -> str:
        return samplers.get(self.sampler).label

    def caption(self) -> str:
        return f"{self.row_label} | {self.steps} steps | NFE {self.nfe} | {self.seconds:.2f}s"


@dataclass
class Comparison:
    spec: ComparisonSpec
    class_id: int
    class_name: str
    cells: list[Cell]
    reference: list[Cell]  # one per cfg scale
    seconds: float
    grid: Image.Image | None = None

    def table(self) -> list[dict]:
        return [
            {
                "sampler": c.sampler,
                "steps": c.steps,
                "cfg": c.cfg_scale,
                "nfe": c.nfe,
                "seconds": round(c.seconds, 3),
                "latent_rmse_to_ref": round(c.distance, 4),
                "pixel_rmse_to_ref": round(c.pixel_distance, 4),
            }
            for c in self.cells
        ]

    def markdown_table(self) -> str:
        rows = self.table()
        header = "| sampler | steps | cfg | NFE | time (s) | latent RMSE to ref | pixel RMSE to ref |"
        lines = [header, "|---|---:|---:|---:|---:|---:|---:|"]
        lines += [
            f"| {r['sampler']} | {r['steps']} | {r['cfg']:g} | {r['nfe']} | {r['seconds']:.2f} | "
            f"{r['latent_rmse_to_ref']:.4f} | {r['pixel_rmse_to_ref']:.4f} |"
            for r in rows
        ]
        return "\n".join(lines)


def _default_reference(spec: ComparisonSpec) -> tuple[str, int]:
    deterministic = [n for n in spec.samplers if not samplers.get(n).stochastic]
    return (deterministic or list(spec.samplers))[0], max(spec.steps)


def run_comparison(
    bundle: DiTBundle,
    spec: ComparisonSpec,
    callback: Callable[[Progress], None] | None = None,
    cancel: threading.Event | None = None,
    budget: Budget | None = None,
) -> Comparison:
    """Sample every cell (plus the reference when it is not a cell) in one lock-step batch."""
    lanes = spec.lanes()
    ref_sampler, ref_steps = spec.reference or _default_reference(spec)
    ref_index = {}  # cfg scale -> position of its reference lane in the request (a cell, or appended)
    for cfg in spec.cfg_scales:
        match = [
            i
            for i, lane in enumerate(lanes)
            if (lane.sampler, lane.steps, lane.cfg_scale) == (ref_sampler, ref_steps, cfg)
        ]
        if not match:
            lanes.append(spec.lane(ref_sampler, ref_steps, cfg))
        ref_index[cfg] = match[0] if match else len(lanes) - 1
    start = time.perf_counter()
    results = sample(bundle, lanes, callback=callback, cancel=cancel, budget=budget)
    images = bundle.decode_images(torch.stack([r.latents for r in results]))
    every = [
        Cell(
            r.lane.sampler.name,
            r.lane.steps,
            r.lane.cfg_scale,
            image,
            r.latents,
            r.nfe,
            r.seconds,
            r.timesteps,
            [bundle.sigma_at(t) for t in r.timesteps],
        )
        for r, image in zip(results, images)
    ]
    for cell, cfg in zip(every, (lane.cfg_scale for lane in lanes)):
        ref = every[ref_index[cfg]]
        cell.distance = latent_rmse(cell.latents, ref.latents)
        cell.pixel_distance = pixel_rmse(cell.image, ref.image)
        cell.is_reference = cell is ref
    cells = every[: len(spec.lanes())]
    class_id = results[0].lane.class_id
    references = [every[ref_index[cfg]] for cfg in spec.cfg_scales]
    comparison = Comparison(
        spec, class_id, bundle.labels.name(class_id), cells, references, time.perf_counter() - start
    )
    comparison.grid = comparison_grid(comparison)
    return comparison


def comparison_grid(comparison: Comparison) -> Image.Image:
    spec = comparison.spec
    multi_cfg = len(spec.cfg_scales) > 1
    rows, row_labels, captions = [], [], []
    for cfg in spec.cfg_scales:
        for name in spec.samplers:
            cells = [c for c in comparison.cells if c.sampler == name and c.cfg_scale == cfg]
            rows.append([c.image for c in cells])
            captions.append([f"NFE {c.nfe} | {c.seconds:.2f}s" for c in cells])
            label = samplers.get(name).label
            row_labels.append(f"{label}, cfg {cfg:g}" if multi_cfg else label)
    col_labels = [f"{s} steps" for s in spec.steps]
    cfg_text = "" if multi_cfg else f", cfg {spec.cfg_scales[0]:g}"
    title = f"{comparison.class_name} (class {comparison.class_id}), seed {spec.seed}{cfg_text}"
    return make_grid(rows, row_labels, col_labels, captions, title=title)
