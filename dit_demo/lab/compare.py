"""A comparison = samplers (or variants) x step counts (x cfg scales x seeds x presets) on one class, in lock-step."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import torch
from PIL import Image

import samplers
from dit_demo.lab.grid import make_grid
from dit_demo.lab.metrics import latent_rmse, pixel_rmse
from dit_demo.runtime.budget import Budget
from dit_demo.runtime.bundle import DiTBundle
from dit_demo.runtime.engine import MAX_BATCH, Progress, run
from dit_demo.runtime.levers import PRESETS, ModelVariants, preset
from dit_demo.runtime.parsing import (
    MAX_SEED,
    as_float,
    as_int,
    parse_floats,
    parse_interval,
    parse_names,
    parse_reference,
    parse_spacing,
    parse_steps,
)
from dit_demo.runtime.request import MAX_LANES, Lane, check_lanes, lane_work

MAX_SEEDS = 16


@dataclass(frozen=True)
class CellKey:
    """Where a cell sits: its row is (preset, cfg, sampler), its column (steps, seed)."""

    preset: str
    cfg: float
    sampler: str
    steps: int
    seed: int


@dataclass(frozen=True)
class ComparisonSpec:
    """Everything that defines a comparison; stored in the grid PNG to reproduce it.

    Axes: samplers (or variants, ``dpmpp_2m[karras=true]``) x step counts, and optionally cfg
    scales, ``seeds`` seeds (seed, seed + 1, ...) and speed presets (``exact``, ``fast``).
    """

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
    seeds: int = 1  # how many seeds, from ``seed`` on: distances are then a mean and a spread
    presets: tuple[str, ...] = ("exact",)  # speed presets as an axis; the reference runs at the first

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
        seeds=1,
        presets=None,
    ) -> ComparisonSpec:
        """Parse the user-facing forms (comma lists, ranges) into a spec, sized before any lane exists."""
        seeds = as_int("Seeds", 1 if seeds is None else seeds, 1, MAX_SEEDS)
        preset_names = _parse_presets(presets)
        names, steps, cfgs = parse_names(samplers_text), parse_steps(steps_text, max_steps), parse_floats(cfg_text)
        cells = len(names) * len(steps) * len(cfgs) * seeds * len(preset_names)
        if cells > MAX_LANES:
            raise ValueError(
                f"This comparison has {len(names)} samplers x {len(steps)} step counts x {len(cfgs)} cfg "
                f"scales x {seeds} seeds x {len(preset_names)} presets = {cells} cells; at most {MAX_LANES} "
                "per request."
            )
        return cls(
            tuple(names),
            tuple(steps),
            class_id,
            tuple(cfgs),
            as_int("Seed", seed, 0, MAX_SEED - seeds),
            cfg_channels,
            parse_reference(reference, max_steps),
            parse_spacing(spacing),
            parse_interval(guidance_interval),
            0.0 if cache_threshold is None else as_float("Cache threshold", cache_threshold, 0, 1),
            seeds,
            preset_names,
        )

    def to_dict(self) -> dict:
        data = asdict(self)
        data["reference"] = list(self.reference) if self.reference else None
        data["presets"] = list(self.presets)
        # absent means the default, so older PNGs read the same and new ones stay short
        for key, default in (("spacing", None), ("guidance_interval", None), ("cache_threshold", 0.0)):
            if data[key] == default:
                del data[key]
        if self.seeds == 1:
            del data["seeds"]
        if self.presets == ("exact",):
            del data["presets"]
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
                seeds=data.get("seeds", 1),
                presets=data.get("presets"),
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(
                f"The comparison's parameters are incomplete or damaged ({type(exc).__name__}: {exc})."
            ) from None

    @property
    def seed_list(self) -> list[int]:
        return list(range(self.seed, self.seed + self.seeds))

    def keys(self) -> list[CellKey]:
        """Every cell in grid order: rows (preset, cfg, sampler), then columns (steps, seed)."""
        return [
            CellKey(preset_name, cfg, name, steps, seed)
            for preset_name in self.presets
            for cfg in self.cfg_scales
            for name in self.samplers
            for steps in self.steps
            for seed in self.seed_list
        ]

    def key_name(self, key: CellKey) -> str:
        """A cell's short name: "ddim 25", with the seed and preset when those are axes."""
        name = f"{key.sampler} {key.steps}"
        if self.seeds > 1:
            name += f" s{key.seed}"
        if len(self.presets) > 1:
            name += f" {key.preset}"
        return name

    def cell_previews(self, x0: dict[int, torch.Tensor]) -> list[tuple[str, torch.Tensor]]:
        """(cell name, x0 latent) for each cell in a progress report, in grid order.

        Lanes are numbered as :meth:`keys` lists them; a reference lane that is not a cell runs
        after them and has no place in the grid, so it is left out.
        """
        names = [self.key_name(key) for key in self.keys()]
        return [(names[k], x0[k]) for k in sorted(x0) if k < len(names)]

    def lane(self, key: CellKey, device: torch.device | str = "cpu") -> Lane:
        """One cell's lane: the spec's interval and cache threshold, else its preset's."""
        levers = preset(key.preset, device)
        return Lane(
            key.sampler,
            key.steps,
            self.class_id,
            key.seed,
            key.cfg,
            self.cfg_channels,
            self.spacing,
            self.guidance_interval or levers.guidance_interval,
            self.cache_threshold or levers.cache_threshold,
        )

    def lanes(self, device: torch.device | str = "cpu") -> list[Lane]:
        return [self.lane(key, device) for key in self.keys()]


def _parse_presets(value) -> tuple[str, ...]:
    """Speed presets from a comma list or a list, in the order of PRESETS (the reference runs at the first)."""
    if value is None or value == "" or value == []:
        return ("exact",)
    items = value.split(",") if isinstance(value, str) else value
    if isinstance(items, (str, bytes)) or not isinstance(items, (list, tuple)) or len(items) > len(PRESETS):
        raise ValueError(f"Presets must be a list of {', '.join(PRESETS)}; got {str(value)[:60]!r}.")
    names = {str(item).strip() for item in items}
    unknown = names - set(PRESETS)
    if unknown:
        raise ValueError(f"Unknown preset {sorted(unknown)[0][:30]!r}; choose from {', '.join(PRESETS)}.")
    return tuple(p for p in PRESETS if p in names)


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
    seed: int = 0
    preset: str = "exact"
    distance: float = float("nan")  # latent RMSE to the reference of its cfg and seed
    pixel_distance: float = float("nan")  # pixel RMSE to that reference, [0, 1] units
    is_reference: bool = False

    @property
    def row_label(self) -> str:
        return samplers.get(self.sampler).label

    def caption(self) -> str:
        return f"{self.row_label} | {self.steps} steps | seed {self.seed} | NFE {self.nfe} | {self.seconds:.2f}s"


@dataclass
class Comparison:
    spec: ComparisonSpec
    class_id: int
    class_name: str
    cells: list[Cell]
    reference: list[Cell]  # one per (cfg scale, seed), in that order
    seconds: float
    grid: Image.Image | None = None
    difference: Image.Image | None = None  # |cell - reference| per cell, same layout as ``grid``

    def series(self) -> list[tuple[tuple[str, float, str, int], list[Cell]]]:
        """Cells grouped over seeds: ((preset, cfg, sampler, steps), cells), in grid order."""
        groups: dict[tuple, list[Cell]] = {}
        for c in self.cells:
            groups.setdefault((c.preset, c.cfg_scale, c.sampler, c.steps), []).append(c)
        return list(groups.items())

    def table(self) -> list[dict]:
        """One row per (sampler, steps, cfg, preset): distances first (the mean over seeds, and their
        spread when there are several), then cost. Headers are for people; the sampler's id is in
        the Reproduce tab and the PNG."""
        spec = self.spec
        rows = []
        for (preset_name, cfg, sampler, steps), cells in self.series():
            latent = np.array([c.distance for c in cells])
            pixel = np.array([c.pixel_distance for c in cells])
            row = {"Sampler": samplers.get(sampler).label, "Steps": steps}
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

    def cell_parameters(self, cell: Cell, model_name: str) -> dict:
        """What one cell's own PNG carries: enough for Reproduce to make it again in the Generate tab."""
        params = {
            "mode": "generate",
            "model": model_name,
            "sampler": cell.sampler,
            "steps": cell.steps,
            "cfg_scale": cell.cfg_scale,
            "cfg_channels": self.spec.cfg_channels,
            "class_id": self.class_id,
            "class_name": self.class_name,
            "seed": cell.seed,
            "preset": cell.preset,
        }
        for key in ("spacing", "guidance_interval"):
            if getattr(self.spec, key) is not None:
                params[key] = getattr(self.spec, key)
        return params

    def markdown_table(self) -> str:
        rows = self.table()
        headers = list(rows[0])
        lines = ["| " + " | ".join(headers) + " |", "|---|" + "---:|" * (len(headers) - 1)]
        for row in rows:
            lines.append("| " + " | ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in row.values()) + " |")
        return "\n".join(lines)


def _default_reference(spec: ComparisonSpec) -> tuple[str, int]:
    deterministic = [n for n in spec.samplers if not samplers.get(n).stochastic]
    return (deterministic or list(spec.samplers))[0], max(spec.steps)


def _with_references(spec: ComparisonSpec) -> tuple[list[CellKey], dict[tuple[float, int], int]]:
    """The cells' keys plus any reference that is not a cell, and (cfg, seed) -> its reference's position."""
    keys = spec.keys()
    ref_sampler, ref_steps = spec.reference or _default_reference(spec)
    where = {}
    for cfg in spec.cfg_scales:
        for seed in spec.seed_list:
            ref = CellKey(spec.presets[0], cfg, ref_sampler, ref_steps, seed)
            if ref not in keys:
                keys.append(ref)
            where[cfg, seed] = keys.index(ref)
    return keys, where


def run_comparison(
    models: DiTBundle | ModelVariants,
    spec: ComparisonSpec,
    callback: Callable[[Progress], None] | None = None,
    cancel: threading.Event | None = None,
    budget: Budget | None = None,
) -> Comparison:
    """Sample every cell (plus references that are not cells) in lock-step: one batch per preset,
    since presets may run different weights (int8, bf16)."""
    models = models if isinstance(models, ModelVariants) else ModelVariants(models)
    keys, ref_index = _with_references(spec)
    jobs = comparison_jobs(models, spec)
    start = time.perf_counter()
    results = run_groups(jobs, callback, cancel, budget)
    every: list[Cell | None] = [None] * len(keys)
    for (model, _, members), group_results in zip(jobs, results):
        images = model.decode_images(torch.stack([r.latents for r in group_results]))
        for i, r, image in zip(members, group_results, images):
            every[i] = Cell(
                r.lane.sampler.name,
                r.lane.steps,
                r.lane.cfg_scale,
                image,
                r.latents,
                r.nfe,
                r.seconds,
                r.timesteps,
                [model.sigma_at(t) for t in r.timesteps],
                seed=r.lane.seed,
                preset=keys[i].preset,
            )
    for cell in every:
        ref = every[ref_index[cell.cfg_scale, cell.seed]]
        cell.distance = latent_rmse(cell.latents, ref.latents)
        cell.pixel_distance = pixel_rmse(cell.image, ref.image)
        cell.is_reference = cell is ref
    cells = every[: len(spec.keys())]
    class_id = results[0][0].lane.class_id
    references = [every[ref_index[cfg, seed]] for cfg in spec.cfg_scales for seed in spec.seed_list]
    comparison = Comparison(
        spec, class_id, models.base.labels.name(class_id), cells, references, time.perf_counter() - start
    )
    comparison.grid = comparison_grid(comparison)
    comparison.difference = difference_grid(comparison)
    return comparison


def comparison_jobs(models: ModelVariants, spec: ComparisonSpec) -> list[tuple[DiTBundle, list[Lane], list[int]]]:
    """One (model, lanes, positions) job per preset: the cells plus the references that are not cells."""
    device = models.base.device
    keys, _ = _with_references(spec)
    groups = [
        (models.get(preset(name, device)), [i for i, key in enumerate(keys) if key.preset == name])
        for name in spec.presets
    ]
    return [(model, [spec.lane(keys[i], device) for i in members], members) for model, members in groups]


def comparison_work(models: ModelVariants, spec: ComparisonSpec) -> list[tuple[int, int]]:
    """Every lane's (model evaluations, rows per evaluation) of the comparison, checked, before any sampling."""
    return [w for model, lanes, _ in comparison_jobs(models, spec) for w in lane_work(model, check_lanes(model, lanes))]


def run_groups(
    jobs: list[tuple[DiTBundle, list[Lane], list[int]]],
    callback: Callable[[Progress], None] | None = None,
    cancel: threading.Event | None = None,
    budget: Budget | None = None,
) -> list[list]:
    """Each (model, lanes, positions) group through the engine in turn, reported as one request:
    rounds and evaluations count across groups and previews carry the lanes' overall positions.
    All lanes are checked, and the budget is checked for all of them, before any sampling."""
    checked = [check_lanes(model, lanes) for model, lanes, _ in jobs]
    work = [lane_work(model, group) for (model, _, _), group in zip(jobs, checked)]
    if budget is not None:
        budget.check([w for group in work for w in group], MAX_BATCH)
    rounds = [max(nfe for nfe, _ in group) for group in work]
    total_rounds, total_nfe = sum(rounds), sum(nfe for group in work for nfe, _ in group)
    done = {"rounds": 0, "nfe": 0, "elapsed": 0.0}
    out = []
    for (model, _, positions), group, group_rounds in zip(jobs, checked, rounds):

        def relay(p: Progress, positions=positions) -> None:
            x0 = {positions[k]: v for k, v in p.x0.items()}
            callback(
                Progress(
                    done["rounds"] + p.round,
                    total_rounds,
                    done["nfe"] + p.nfe_done,
                    total_nfe,
                    done["elapsed"] + p.elapsed,
                    x0,
                )
            )

        tick = time.perf_counter()
        out.append(run(model, group, relay if callback else None, cancel, MAX_BATCH))
        done["rounds"] += group_rounds
        done["nfe"] += sum(r.nfe for r in out[-1])
        done["elapsed"] += time.perf_counter() - tick
    return out


def comparison_grid(comparison: Comparison) -> Image.Image:
    """Rows (preset, cfg, sampler) x columns (steps, seed), labelled; axes of one value go in the title."""
    return _grid(
        comparison, [c.image for c in comparison.cells], [f"NFE {c.nfe} | {c.seconds:.2f}s" for c in comparison.cells]
    )


def difference_grid(comparison: Comparison) -> Image.Image:
    """|cell - reference| for every cell, each against the reference of its cfg and seed. One gain for
    the whole grid (the largest difference becomes white) so cells compare; the title gives it."""
    refs = {(r.cfg_scale, r.seed): np.asarray(r.image.convert("RGB"), dtype=np.int16) for r in comparison.reference}
    diffs = [
        np.abs(np.asarray(c.image.convert("RGB"), dtype=np.int16) - refs[c.cfg_scale, c.seed]) for c in comparison.cells
    ]
    peak = max(int(d.max()) for d in diffs) or 1
    gain = 255 / peak
    images = [Image.fromarray((d * gain).clip(0, 255).astype(np.uint8)) for d in diffs]
    captions = [f"max {d.max() / 255:.3f} | rms {np.sqrt(((d / 255.0) ** 2).mean()):.3f}" for d in diffs]
    scale = f"|cell - reference| x{gain:.1f} (white = {peak / 255:.3f})"
    return _grid(comparison, images, captions, scale)


def _grid(comparison: Comparison, images: list[Image.Image], captions: list[str], what: str = "") -> Image.Image:
    spec = comparison.spec
    multi_cfg, multi_seed, multi_preset = len(spec.cfg_scales) > 1, spec.seeds > 1, len(spec.presets) > 1
    per_row = len(spec.steps) * spec.seeds
    rows, row_captions, row_labels = [], [], []
    for start in range(0, len(comparison.cells), per_row):
        first = comparison.cells[start]
        rows.append(images[start : start + per_row])
        row_captions.append(captions[start : start + per_row])
        label = samplers.get(first.sampler).label
        label += f", cfg {first.cfg_scale:g}" if multi_cfg else ""
        label += f" ({first.preset})" if multi_preset else ""
        row_labels.append(label)
    col_labels = [
        f"{steps} steps" + (f", seed {seed}" if multi_seed else "") for steps in spec.steps for seed in spec.seed_list
    ]
    title = f"{comparison.class_name} (class {comparison.class_id})"
    title += "" if multi_seed else f", seed {spec.seed}"
    title += "" if multi_cfg else f", cfg {spec.cfg_scales[0]:g}"
    title += "" if multi_preset or spec.presets == ("exact",) else f", {spec.presets[0]} preset"
    title += f": {what}" if what else ""
    return make_grid(rows, row_labels, col_labels, row_captions, title=title)
