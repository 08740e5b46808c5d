"""What each kind of output records about how it was made: one record type per kind, the one thing
every writer builds and every reader (Reproduce, Send to Compare, the CLI) reads.

- :class:`ImageRecord` (``mode: generate``): one image, from Generate or a comparison cell's own PNG;
- :class:`BatchRecord` (``mode: generate-batch``): the CLI's grid of several generated images;
- :class:`ComparisonRecord` (``mode: compare``): a comparison's grid, its whole spec.

``to_dict`` is the JSON a PNG carries (``lab/outputs/pngmeta.py``), with a ``version``; ``from_dict`` reads
that and every earlier version (version 1 had no ``version`` key); ``a1111`` is the same settings
as the ``parameters`` text that A1111-style PNG-info tools show.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import samplers
from dit_demo.lab.specs.compare_spec import ComparisonSpec
from dit_demo.runtime.bundle import DiTBundle
from dit_demo.runtime.levers import LaneLevers
from dit_demo.runtime.request import CheckedLane

VERSION = 2  # 2: records carry a version; 1: the PNGs before


_REQUIRED = ("class_id", "sampler", "steps", "cfg_scale", "seed")  # in the order a person checks them


@dataclass(frozen=True, kw_only=True)
class ImageRecord:
    """One image: enough for Reproduce to make it again."""

    model: str
    sampler: str
    steps: int
    cfg_scale: float
    class_id: int
    class_name: str
    seed: int
    cfg_channels: int | None = None
    spacing: str | None = None  # None: the sampler's default step grid
    levers: LaneLevers = LaneLevers()
    model_levers: str | None = None  # the model's shortcuts in words (int8, bf16, compiled), if any
    preset: str | None = None  # a comparison cell's speed preset
    model_hash: str | None = None  # a short hash of the model's weights: Reproduce refuses another model's
    family: str | None = None  # the model's family (dit, sit, ...): its samplers and time differ; absent: dit

    @classmethod
    def from_lane(cls, lane: CheckedLane, bundle: DiTBundle, preset: str | None = None) -> ImageRecord:
        """What the image of one sampled ``lane`` records: its settings, and the model copy it ran on (its
        shortcuts and the hash of its weights); ``preset``: a comparison cell's speed preset."""
        return cls(
            model=bundle.name,
            sampler=lane.sampler.name,
            steps=lane.steps,
            cfg_scale=lane.cfg_scale,
            class_id=lane.class_id,
            class_name=bundle.labels.name(lane.class_id),
            seed=lane.seed,
            cfg_channels=lane.cfg_channels,
            spacing=lane.spacing,
            levers=lane.levers,
            model_levers=bundle.extras.get("levers"),
            preset=preset,
            model_hash=bundle.extras.get("weights"),
            family=bundle.parameterization.family,
        )

    def to_dict(self) -> dict:
        data: dict[str, Any] = {"mode": "generate", "version": VERSION}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "levers":
                data.update(value.params())  # top-level keys, as version 1 wrote them
            elif f.default is None and value is None and f.name != "cfg_channels":
                continue  # absent means the default, so files stay short and old readers read them
            else:
                data[f.name] = value
        return data

    @classmethod
    def from_dict(cls, data: dict) -> ImageRecord:
        _check(data, "generate")
        missing = next((name for name in _REQUIRED if name not in data), None)
        if missing:
            raise ValueError(
                f"The image's parameters are incomplete: field {missing!r} is missing (damaged or edited)."
            )
        try:
            return cls(
                model=str(data.get("model", "")),
                sampler=samplers.canonical_name(str(data["sampler"])),
                steps=int(data["steps"]),
                cfg_scale=float(data["cfg_scale"]),
                class_id=int(data["class_id"]),
                class_name=str(data.get("class_name", data["class_id"])),
                seed=int(data["seed"]),
                cfg_channels=data.get("cfg_channels"),
                spacing=data.get("spacing"),
                levers=LaneLevers.from_params(data),
                model_levers=data.get("model_levers"),
                preset=data.get("preset"),
                model_hash=data.get("model_hash"),
                family=data.get("family"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise _damaged("image", exc) from None

    @property
    def took_shortcuts(self) -> bool:
        """Whether it was made with speed levers (older PNGs name the levers, not the preset)."""
        return bool(self.model_levers) or self.levers != LaneLevers() or self.preset not in (None, "exact")

    def a1111(self) -> str:
        settings = {
            "Steps": self.steps,
            "Sampler": self.sampler,
            "CFG scale": self.cfg_scale,
            "Seed": self.seed,
            "Model": self.model,
            "Schedule type": self.spacing,
        }
        return _a1111(self.class_name, settings)


@dataclass(frozen=True)
class BatchRecord:
    """Several generated images in one grid (the CLI's ``generate --batch``)."""

    images: tuple[ImageRecord, ...]

    def to_dict(self) -> dict:
        return {"mode": "generate-batch", "version": VERSION, "images": [r.to_dict() for r in self.images]}

    @classmethod
    def from_dict(cls, data: dict) -> BatchRecord:
        _check(data, "generate-batch")
        images = data.get("images")
        if not isinstance(images, list) or not images:
            raise ValueError("This batch PNG's parameters list no images; it was damaged or edited.")
        return cls(tuple(ImageRecord.from_dict(item) for item in images))

    def a1111(self) -> str:
        return f"batch of {len(self.images)} images\n" + self.images[0].a1111().split("\n", 1)[1]


@dataclass(frozen=True)
class ComparisonRecord:
    """A comparison's grid: its whole spec, and the model it ran on."""

    model: str
    spec: ComparisonSpec
    model_hash: str | None = None
    family: str | None = None  # as ImageRecord's

    def to_dict(self) -> dict:
        data = {"mode": "compare", "version": VERSION, "model": self.model, **self.spec.to_dict()}
        for key in ("model_hash", "family"):
            if getattr(self, key):
                data[key] = getattr(self, key)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> ComparisonRecord:
        _check(data, "compare")
        model = str(data.get("model", ""))
        return cls(model, ComparisonSpec.from_dict(data), data.get("model_hash"), data.get("family"))

    def a1111(self) -> str:
        spec = self.spec
        settings = {
            "Steps": _joined(spec.steps),
            "Sampler": _joined(spec.samplers),
            "CFG scale": _joined(spec.cfg_scales),
            "Seed": spec.seed,
            "Model": self.model,
            "Schedule type": spec.spacing,
        }
        return _a1111(f"comparison, class {spec.class_id}", settings)


Record = ImageRecord | BatchRecord | ComparisonRecord


def check_same_model(record: Record, model_name: str, model_hash: str | None, family: str | None = None) -> None:
    """``ValueError`` when ``record`` names another model family or weights other than the loaded model's
    (records without a hash or a family, from before those were kept, are taken as they are)."""
    made = record.images[0] if isinstance(record, BatchRecord) else record
    if made.family and family and made.family != family:
        raise ValueError(
            f"This PNG was made by a {made.family} model ({made.model or 'unnamed'}); the loaded model, {model_name}, "
            f"is a {family} model, whose samplers and time differ. Load a {made.family} model, then drop the PNG again."
        )
    if made.model_hash and model_hash and made.model_hash != model_hash:
        raise ValueError(
            f"This PNG was made by another model ({made.model or 'unnamed'}, weights {made.model_hash}); the loaded "
            f"model is {model_name} (weights {model_hash}). Load the model that made it, then drop the PNG again."
        )


KINDS = {"generate": ImageRecord, "generate-batch": BatchRecord, "compare": ComparisonRecord}


def record_from_dict(data: dict) -> Record:
    """The record a PNG's parameters hold, by their ``mode``; ``ValueError`` for any other JSON."""
    kind = KINDS.get(data.get("mode")) if isinstance(data, dict) else None
    if kind is None:
        mode = data.get("mode") if isinstance(data, dict) else None
        raise ValueError(
            f"This PNG's parameters are of a kind this app cannot restore ({str(mode)[:30]!r}); "
            f"it restores {', '.join(KINDS)}."
        )
    return kind.from_dict(data)


def _check(data: dict, mode: str) -> None:
    if data.get("mode") != mode:
        raise ValueError(f"Expected a {mode!r} record, got mode {str(data.get('mode'))[:30]!r}.")
    version = data.get("version", 1)
    if not isinstance(version, int) or not 1 <= version <= VERSION:
        raise ValueError(
            f"These parameters are of record version {str(version)[:10]}; this app reads versions 1 to {VERSION} "
            "(a newer DiT Sampler Lab wrote them: update it to restore them)."
        )


def _damaged(kind: str, exc: Exception) -> ValueError:
    return ValueError(f"The {kind}'s parameters are incomplete or damaged ({type(exc).__name__}: {exc}).")


def _a1111(first: str, settings: dict) -> str:
    """A1111's layout: a first line, then "Key: value, ..." (keys with no value left out)."""
    shown = {k: v for k, v in settings.items() if v not in (None, "")}
    items = (f"{k}: {v:g}" if isinstance(v, float) else f"{k}: {v}" for k, v in shown.items())
    return first + "\n" + ", ".join(items)


def _joined(values) -> str:
    return " / ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in values)
