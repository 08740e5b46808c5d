"""A comparison = samplers x step counts (x cfg scales) on one seed and class, run in lock-step."""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from PIL import Image

import samplers
from dit_demo.grid import make_grid
from dit_demo.metrics import latent_rmse, pixel_rmse
from dit_demo.models import DiTBundle
from dit_demo.sampling import Lane, Progress, alpha_bar_at, decode, sample

MAX_AXIS = 16

_RANGE = re.compile(r"^(\d+)\s*-\s*(\d+)\s*(?:\(\s*\+\s*(\d+)\s*\)|\[\s*(\d+)\s*\])$")


def parse_steps(text: str | Sequence[int]) -> list[int]:
    """``"10,25,50"``, ``"10-50 (+10)"`` (every 10), ``"5-50 [4]"`` (4 evenly spaced) or a mix.

    Duplicates are dropped and the order kept.
    """
    if not isinstance(text, str):
        values = [int(v) for v in text]
    else:
        values = []
        for part in _split_top_level(text):
            if not part:
                continue
            if part.isdigit():
                values.append(int(part))
                continue
            match = _RANGE.match(part)
            if not match:
                raise ValueError(
                    f"Cannot read step counts {part!r}. Use numbers separated by commas (10,25,50), "
                    "a range with a step (10-50 (+10)) or a range with a count (5-50 [4])."
                )
            lo, hi, step, count = match.groups()
            lo, hi = int(lo), int(hi)
            if hi < lo:
                raise ValueError(f"Range {part!r} runs backwards; write the smaller number first.")
            # size the range before building it: "1-99999999999 (+1)" must not allocate anything
            if step is not None:
                if int(step) < 1:
                    raise ValueError(f"Range step in {part!r} must be at least 1.")
                span = range(lo, hi + 1, int(step))
                if len(span) > MAX_AXIS:
                    raise ValueError(f"Range {part!r} gives {len(span)} step counts; at most {MAX_AXIS} per comparison.")
                values.extend(span)
            else:
                n = int(count)
                if not 1 <= n <= MAX_AXIS:
                    raise ValueError(f"Range count in {part!r} must be between 1 and {MAX_AXIS}.")
                values.extend(int(round(v)) for v in np.linspace(lo, hi, n))
    unique = list(dict.fromkeys(values))
    if not unique:
        raise ValueError("No step counts given; e.g. 10,25,50 or 10-50 (+10).")
    if len(unique) > MAX_AXIS:
        raise ValueError(f"Too many step counts ({len(unique)}); at most {MAX_AXIS} per comparison.")
    return unique


def _split_top_level(text: str) -> list[str]:
    """Split on commas that are not inside (...) or [...]."""
    parts, depth, current = [], 0, []
    for char in text:
        if char in "([":
            depth += 1
        elif char in ")]":
            depth -= 1
        if char == "," and depth == 0:
            parts.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    parts.append("".join(current).strip())
    return parts


def parse_floats(text: str | Sequence[float], what: str = "CFG scales") -> list[float]:
    if isinstance(text, str):
        items = [p.strip() for p in text.split(",") if p.strip()]
        try:
            values = [float(p) for p in items]
        except ValueError:
            raise ValueError(f"Cannot read {what} {text!r}; use numbers separated by commas, e.g. 1.5,4.") from None
    else:
        values = [float(v) for v in text]
    if not values:
        raise ValueError(f"No {what} given.")
    if len(values) > MAX_AXIS:
        raise ValueError(f"Too many {what} ({len(values)}); at most {MAX_AXIS}.")
    return list(dict.fromkeys(values))


def parse_names(text: str | Sequence[str]) -> list[str]:
    names = [p.strip() for p in text.split(",")] if isinstance(text, str) else [str(p).strip() for p in text]
    names = list(dict.fromkeys(n for n in names if n))
    if not names:
        raise ValueError(f"No samplers given; choose from {', '.join(samplers.names())}.")
    return names


@dataclass(frozen=True)
class ComparisonSpec:
    """Everything that defines a comparison; stored in the grid PNG to reproduce it."""

    samplers: tuple[str, ...]
    steps: tuple[int, ...]
    class_id: int | str
    seed: int = 0
    cfg_scales: tuple[float, ...] = (4.0,)
    cfg_channels: int | None = None
    reference: tuple[str, int] | None = None  # (sampler, steps); default: highest-step deterministic cell

    @classmethod
    def build(cls, samplers_text, steps_text, class_id, seed=0, cfg_text=(4.0,), cfg_channels=None, reference=None):
        """Parse the user-facing forms (comma lists, ranges) into a spec."""
        ref = None
        if reference:
            name, steps = reference.partition("@")[::2] if isinstance(reference, str) else reference
            try:
                ref = (samplers.get(str(name).strip()).name, int(steps))
            except (TypeError, ValueError) as exc:
                raise ValueError(f"Reference must look like 'ddim@250' (sampler@steps): {exc}") from None
        return cls(tuple(parse_names(samplers_text)), tuple(parse_steps(steps_text)), class_id, seed,
                   tuple(parse_floats(cfg_text)), cfg_channels, ref)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["reference"] = list(self.reference) if self.reference else None
        return data

    @classmethod
    def from_dict(cls, data: dict) -> ComparisonSpec:
        ref = data.get("reference")
        return cls(tuple(data["samplers"]), tuple(int(s) for s in data["steps"]), data["class_id"], int(data.get("seed", 0)),
                   tuple(float(c) for c in data.get("cfg_scales", (4.0,))), data.get("cfg_channels"),
                   tuple(ref) if ref else None)

    def lanes(self) -> list[Lane]:
        return [Lane(name, steps, self.class_id, self.seed, cfg, self.cfg_channels)
                for cfg in self.cfg_scales for name in self.samplers for steps in self.steps]


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
    extra: dict = field(default_factory=dict)

    def table(self) -> list[dict]:
        return [
            {"sampler": c.sampler, "steps": c.steps, "cfg": c.cfg_scale, "nfe": c.nfe, "seconds": round(c.seconds, 3),
             "latent_rmse_to_ref": round(c.distance, 4), "pixel_rmse_to_ref": round(c.pixel_distance, 4)}
            for c in self.cells
        ]

    def markdown_table(self) -> str:
        rows = self.table()
        header = "| sampler | steps | cfg | NFE | time (s) | latent RMSE to ref | pixel RMSE to ref |"
        lines = [header, "|---|---:|---:|---:|---:|---:|---:|"]
        lines += [f"| {r['sampler']} | {r['steps']} | {r['cfg']:g} | {r['nfe']} | {r['seconds']:.2f} | "
                  f"{r['latent_rmse_to_ref']:.4f} | {r['pixel_rmse_to_ref']:.4f} |" for r in rows]
        return "\n".join(lines)


def sigma_of(alphas_cumprod: np.ndarray, t: float) -> float:
    ab = alpha_bar_at(alphas_cumprod, t)
    return math.sqrt((1 - ab) / ab)


def _default_reference(spec: ComparisonSpec) -> tuple[str, int]:
    deterministic = [n for n in spec.samplers if not samplers.get(n).stochastic]
    return (deterministic or list(spec.samplers))[0], max(spec.steps)


def run_comparison(
    bundle: DiTBundle,
    spec: ComparisonSpec,
    callback: Callable[[Progress], None] | None = None,
    cancel: threading.Event | None = None,
) -> Comparison:
    """Sample every cell (plus the reference when it is not a cell) in one lock-step batch."""
    lanes = spec.lanes()
    ref_sampler, ref_steps = spec.reference or _default_reference(spec)
    ref_lanes = [Lane(ref_sampler, ref_steps, spec.class_id, spec.seed, cfg, spec.cfg_channels) for cfg in spec.cfg_scales]
    extra = [lane for lane in ref_lanes if lane not in lanes]
    start = time.perf_counter()
    results = sample(bundle, lanes + extra, callback=callback, cancel=cancel)
    images = decode(bundle, torch.stack([r.latents for r in results]))
    alphas = bundle_alphas(bundle)
    by_lane = {}
    for result, image in zip(results, images):
        by_lane[result.lane] = Cell(
            result.lane.sampler, result.lane.steps, result.lane.cfg_scale, image, result.latents, result.nfe,
            result.seconds, result.timesteps, [sigma_of(alphas, t) for t in result.timesteps],
        )
    resolved = [r.lane for r in results]
    cells = [by_lane[lane] for lane in resolved[: len(lanes)]]
    references = [by_lane[lane] for lane in resolved if (lane.sampler, lane.steps) == (ref_sampler, ref_steps)]
    references = list({id(c): c for c in references}.values())
    for cell in by_lane.values():
        ref = next(r for r in references if r.cfg_scale == cell.cfg_scale)
        cell.distance = latent_rmse(cell.latents, ref.latents)
        cell.pixel_distance = pixel_rmse(cell.image, ref.image)
        cell.is_reference = cell is ref
    class_id = resolved[0].class_id
    comparison = Comparison(spec, class_id, bundle.labels.name(class_id), cells, references, time.perf_counter() - start)
    comparison.grid = comparison_grid(comparison)
    return comparison


def bundle_alphas(bundle: DiTBundle) -> np.ndarray:
    sched = samplers.get("ddim").build(bundle.scheduler_config)
    return sched.alphas_cumprod.double().numpy()


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
