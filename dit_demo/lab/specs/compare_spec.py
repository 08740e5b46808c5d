"""What a comparison is: its axes (samplers or variants x step counts, and optionally cfg scales,
seeds, speed presets and models) on one class, checked once when built and stored in the grid PNG."""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass, fields, replace

import torch

from dit_demo.lab.specs.grammar import parse_floats, parse_names, parse_reference, parse_steps
from dit_demo.lab.specs.model_axis import (
    check_model_axis,
    model_families,
    model_label,
    model_reference,
    parse_models,
    runs_on,
)
from dit_demo.runtime.levers import PRESETS, LaneLevers, preset
from dit_demo.runtime.parsing import MAX_SEED, as_int, parse_spacing
from dit_demo.runtime.request import MAX_LANES, Lane

MAX_SEEDS = 16


@dataclass(frozen=True)
class CellKey:
    """Where a cell sits: its row is (model, preset, cfg, sampler), its column (steps, seed); ``model`` is ""
    for the loaded model of a comparison without a model axis."""

    preset: str
    cfg: float
    sampler: str
    steps: int
    seed: int
    model: str = ""


@dataclass(frozen=True)
class ComparisonSpec:
    """Everything that defines a comparison; stored in the grid PNG to reproduce it.

    Axes: samplers (or variants, ``dpmpp_2m[karras=true]``) x step counts, and optionally cfg
    scales, ``seeds`` seeds (seed, seed + 1, ...), speed presets (``exact``, ``fast``) and ``models``
    (each with its family in ``families``: a sampler runs only on the models whose family it drives).
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
    models: tuple[str, ...] = ()  # a model axis (names as the app offers them, or folders); empty: the loaded model
    families: tuple[str, ...] = ()  # each model's family, beside ``models``

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
        models=None,
        families=None,
    ) -> ComparisonSpec:
        """Parse the user-facing forms (comma lists, ranges) into a spec, sized before any lane exists;
        with the loaded model's ``family``, a sampler that cannot drive it is refused here. With ``models``
        (and ``families``: a name -> family mapping, or a list beside them) ``family`` is not used: each
        sampler runs on the models it drives, and a model that none drives is refused."""
        seeds = as_int("Seeds", 1 if seeds is None else seeds, 1, MAX_SEEDS)
        preset_names = _parse_presets(presets)
        model_names = parse_models(models)
        kinds = model_families(model_names, families)
        family = None if model_names else family
        names = parse_names(samplers_text, family)
        check_model_axis(names, model_names, kinds)
        steps, cfgs = parse_steps(steps_text, max_steps), parse_floats(cfg_text)
        rows = sum(runs_on(n, k) for n in names for k in kinds) if model_names else len(names)
        _check_size(rows, len(steps), len(cfgs), seeds, len(preset_names), bool(model_names))
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
            models=model_names,
            families=kinds,
        )

    def to_dict(self) -> dict:
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "levers"}
        data["samplers"], data["steps"], data["cfg_scales"] = (
            list(self.samplers),
            list(self.steps),
            list(self.cfg_scales),
        )
        data["reference"] = list(self.reference) if self.reference else None
        data["presets"], data["models"], data["families"] = list(self.presets), list(self.models), list(self.families)
        data.update(self.levers.params())  # top-level keys, the names every version of the PNG used
        # absent means the default, so older PNGs read the same and new ones stay short
        if self.spacing is None:
            del data["spacing"]
        if self.seeds == 1:
            del data["seeds"]
        if self.presets == ("exact",):
            del data["presets"]
        if not self.models:
            del data["models"], data["families"]
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
                models=data.get("models"),
                families=data.get("families"),
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(
                f"The comparison's parameters are incomplete or damaged ({type(exc).__name__}: {exc})."
            ) from None

    @property
    def seed_list(self) -> list[int]:
        return list(range(self.seed, self.seed + self.seeds))

    def model_rows(self) -> list[tuple[str, str | None]]:
        """(model, family) of each model compared; ("", None) for the loaded model without a model axis."""
        return list(zip(self.models, self.families)) or [("", None)]

    def keys(self) -> list[CellKey]:
        """Every cell in grid order: rows (model, preset, cfg, sampler), then columns (steps, seed); a
        sampler has rows only on the models whose family it drives."""
        return [
            CellKey(preset_name, cfg, name, steps, seed, model)
            for model, family in self.model_rows()
            for preset_name in self.presets
            for cfg in self.cfg_scales
            for name in self.samplers
            if runs_on(name, family)
            for steps in self.steps
            for seed in self.seed_list
        ]

    def key_name(self, key: CellKey) -> str:
        """A cell's short name: "ddim 25", with the seed, preset and model when those are axes."""
        name = f"{key.sampler} {key.steps}"
        if self.seeds > 1:
            name += f" s{key.seed}"
        if len(self.presets) > 1:
            name += f" {key.preset}"
        if len(self.models) > 1:
            name += f" {model_label(key.model)}"
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


def _check_size(rows: int, steps: int, cfgs: int, seeds: int, presets: int, model_axis: bool) -> None:
    """A comparison over MAX_LANES cells is refused, naming the size of each axis."""
    cells = rows * steps * cfgs * seeds * presets
    if cells <= MAX_LANES:
        return
    first = (rows, "model-sampler pair" if model_axis else "sampler")
    sizes = first, (steps, "step count"), (cfgs, "cfg scale"), (seeds, "seed"), (presets, "preset")
    axes = " x ".join(f"{n} {noun}{'s' if n != 1 else ''}" for n, noun in sizes)
    raise ValueError(f"This comparison has {axes} = {cells} cells; at most {MAX_LANES} per request.")


def default_reference(spec: ComparisonSpec) -> tuple[str, int]:
    """The first model's reference when none is asked for: its first deterministic sampler at the most steps."""
    return model_reference(spec.samplers, spec.steps, spec.model_rows()[0][1], None)


def with_references(spec: ComparisonSpec) -> tuple[list[CellKey], dict[tuple[str, float, int], int]]:
    """The cells' keys plus any reference that is not a cell, and (model, cfg, seed) -> its reference's
    position: each model measures against its own reference, since one seed's noise makes different
    images on different models."""
    keys = spec.keys()
    where = {}
    for model, family in spec.model_rows():
        ref_sampler, ref_steps = model_reference(spec.samplers, spec.steps, family, spec.reference)
        for cfg in spec.cfg_scales:
            for seed in spec.seed_list:
                ref = CellKey(spec.presets[0], cfg, ref_sampler, ref_steps, seed, model)
                if ref not in keys:
                    keys.append(ref)
                where[model, cfg, seed] = keys.index(ref)
    return keys, where
