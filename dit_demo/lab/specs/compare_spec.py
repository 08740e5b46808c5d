"""What a comparison is: its axes (samplers or variants x step counts, and optionally cfg scales,
seeds and speed presets) on one class, checked once when built and stored in the grid PNG."""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass, fields, replace

import torch

import samplers
from dit_demo.lab.specs.grammar import parse_floats, parse_names, parse_reference, parse_steps
from dit_demo.runtime.levers import PRESETS, LaneLevers, preset
from dit_demo.runtime.parsing import MAX_SEED, as_int, parse_spacing
from dit_demo.runtime.request import MAX_LANES, Lane

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
    _: KW_ONLY
    seed: int = 0
    cfg_channels: int | None = None
    reference: tuple[str, int] | None = None  # (sampler, steps); default: highest-step deterministic cell
    spacing: str | None = None  # step grid for every lane; None: each sampler's default
    levers: LaneLevers = LaneLevers()  # lane levers for every lane, on top of each preset's
    seeds: int = 1  # how many seeds, from ``seed`` on: distances are then a mean and a spread
    presets: tuple[str, ...] = ("exact",)  # speed presets as an axis; the reference runs at the first

    @classmethod
    def build(
        cls,
        samplers_text,
        steps_text,
        class_id,
        *,
        seed=0,
        cfg_text=None,
        cfg_channels=None,
        reference=None,
        spacing=None,
        levers: LaneLevers | None = None,
        max_steps: int = 1000,
        seeds=1,
        presets=None,
        family: str | None = None,
    ) -> ComparisonSpec:
        """Parse the user-facing forms (comma lists, ranges) into a spec, sized before any lane exists;
        with the loaded model's ``family``, a sampler that cannot drive it is refused here."""
        seeds = as_int("Seeds", 1 if seeds is None else seeds, 1, MAX_SEEDS)
        preset_names = _parse_presets(presets)
        names = parse_names(samplers_text, family)
        steps, cfgs = parse_steps(steps_text, max_steps), parse_floats(cfg_text)
        cells = len(names) * len(steps) * len(cfgs) * seeds * len(preset_names)
        if cells > MAX_LANES:
            sizes = (len(names), "sampler"), (len(steps), "step count"), (len(cfgs), "cfg scale"), (seeds, "seed")
            axes = " x ".join(
                f"{n} {noun}{'s' if n != 1 else ''}" for n, noun in (*sizes, (len(preset_names), "preset"))
            )
            raise ValueError(f"This comparison has {axes} = {cells} cells; at most {MAX_LANES} per request.")
        return cls(
            tuple(names),
            tuple(steps),
            class_id,
            tuple(cfgs),
            seed=as_int("Seed", seed, 0, MAX_SEED - seeds),
            cfg_channels=cfg_channels,
            reference=parse_reference(reference, max_steps, family),
            spacing=parse_spacing(spacing),
            levers=(levers or LaneLevers()).checked(),
            seeds=seeds,
            presets=preset_names,
        )

    def to_dict(self) -> dict:
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "levers"}
        data["samplers"], data["steps"], data["cfg_scales"] = (
            list(self.samplers),
            list(self.steps),
            list(self.cfg_scales),
        )
        data["reference"] = list(self.reference) if self.reference else None
        data["presets"] = list(self.presets)
        data.update(self.levers.params())  # top-level keys, the names every version of the PNG used
        # absent means the default, so older PNGs read the same and new ones stay short
        if self.spacing is None:
            del data["spacing"]
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
                seed=int(data.get("seed", 0)),
                cfg_text=list(data["cfg_scales"]),
                cfg_channels=data.get("cfg_channels"),
                reference=data.get("reference"),
                spacing=data.get("spacing"),
                levers=LaneLevers.from_params(data),
                max_steps=10**6,
                seeds=data.get("seeds", 1),
                presets=data.get("presets"),
            )
        except (KeyError, TypeError, AttributeError) as exc:
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
        """One cell's lane: each lane lever the spec sets, else its preset's."""
        levers = _lane_levers(self.levers, preset(key.preset, device).lane)
        return Lane(
            key.sampler,
            key.steps,
            self.class_id,
            key.seed,
            key.cfg,
            cfg_channels=self.cfg_channels,
            spacing=self.spacing,
            levers=levers,
        )

    def lanes(self, device: torch.device | str = "cpu") -> list[Lane]:
        return [self.lane(key, device) for key in self.keys()]


def _lane_levers(asked: LaneLevers, preset_levers: LaneLevers) -> LaneLevers:
    """The levers the spec asked for, and the preset's where it left one at its default."""
    defaults = LaneLevers()
    return replace(
        asked,
        **{
            f.name: getattr(preset_levers, f.name)
            for f in fields(asked)
            if getattr(asked, f.name) == getattr(defaults, f.name)
        },
    )


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


def default_reference(spec: ComparisonSpec) -> tuple[str, int]:
    deterministic = [n for n in spec.samplers if not samplers.get(n).stochastic]
    return (deterministic or list(spec.samplers))[0], max(spec.steps)


def with_references(spec: ComparisonSpec) -> tuple[list[CellKey], dict[tuple[float, int], int]]:
    """The cells' keys plus any reference that is not a cell, and (cfg, seed) -> its reference's position."""
    keys = spec.keys()
    ref_sampler, ref_steps = spec.reference or default_reference(spec)
    where = {}
    for cfg in spec.cfg_scales:
        for seed in spec.seed_list:
            ref = CellKey(spec.presets[0], cfg, ref_sampler, ref_steps, seed)
            if ref not in keys:
                keys.append(ref)
            where[cfg, seed] = keys.index(ref)
    return keys, where
