"""The request layer: what a caller asks for (:class:`Lane`) -> what the engine runs (:class:`CheckedLane`).

UI, CLI and API all end here. A ``Lane`` may name its sampler and class as text and leave the
guidance and channels to the model; ``check_lanes`` resolves every field once, against the
loaded model, and the engine accepts nothing else.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import KW_ONLY, dataclass

import samplers
from dit_demo.runtime.bundle import DiTBundle
from dit_demo.runtime.levers import LaneLevers
from dit_demo.runtime.parsing import (
    MAX_CFG,
    MAX_SEED,
    as_float,
    as_int,
    parse_cfg_channels,
    parse_spacing,
    shown,
)
from samplers import Sampler

MAX_LANES = 64  # images per request


@dataclass(frozen=True)
class Lane:
    """One image to make, as a caller writes it.

    ``class_id`` is an id, a name or a synonym; ``cfg_scale=None`` is the model's default;
    ``cfg_channels`` None or 0 guides every latent channel, 3 is the original DiT code;
    ``spacing`` picks the step grid: None is the sampler's default ("trailing": every sampler
    starts at t = T - 1), "linspace" is DiT's own ``space_timesteps`` grid, "leading" diffusers' old default.
    ``levers``: the lane's speed levers (guidance interval, first-block cache; ``LaneLevers``).
    """

    sampler: str
    steps: int
    class_id: int | str
    seed: int = 0
    cfg_scale: float | None = None
    _: KW_ONLY
    cfg_channels: int | None = None
    spacing: str | None = None
    levers: LaneLevers = LaneLevers()


@dataclass(frozen=True, kw_only=True)
class CheckedLane:
    """A lane resolved against a model: every field has its final type and lies in range."""

    sampler: Sampler
    steps: int
    class_id: int
    seed: int
    cfg_scale: float
    cfg_channels: int  # how many latent channels get guidance (all of them unless 3 was asked for)
    spacing: str | None = None
    levers: LaneLevers = LaneLevers()  # checked

    @property
    def guided(self) -> bool:
        """Whether guidance runs at all (it may still be limited to an interval of noise levels)."""
        return self.cfg_scale != 1.0

    def guided_at(self, sigma: float) -> bool:
        """Whether the step at noise level ``sigma`` runs the null row too."""
        interval = self.levers.guidance_interval
        if not self.guided or interval is None:
            return self.guided
        lo, hi = interval
        return lo < sigma <= hi  # the paper's interval: open below, closed above

    @property
    def rows(self) -> int:
        """Transformer rows per evaluation: the conditional one, plus the null class under guidance."""
        return 2 if self.guided else 1


def check_lane(bundle: DiTBundle, lane: Lane) -> CheckedLane:
    """Resolve one lane against ``bundle``; ``ValueError`` naming the field and what is allowed."""
    sampler = samplers.check_family(samplers.get(lane.sampler), bundle.parameterization.family)
    class_id = bundle.labels.resolve(lane.class_id)
    if class_id >= bundle.num_classes:
        raise ValueError(f"Class id {class_id} is out of range; the model has classes 0..{bundle.num_classes - 1}.")
    cfg = bundle.default_cfg if lane.cfg_scale is None else lane.cfg_scale
    if not bundle.has_null_class and cfg != 1:
        raise ValueError(
            f"This model was trained without class dropout: it has no null class, so classifier-free guidance "
            f"is unavailable and the CFG scale stays 1 (got {shown(cfg)})."
        )
    return CheckedLane(
        sampler=sampler,
        steps=as_int(f"Steps for {sampler.name}", lane.steps, 1, bundle.num_train_timesteps),
        class_id=class_id,
        seed=as_int("Seed", lane.seed, 0, MAX_SEED),
        cfg_scale=as_float("CFG scale", cfg, 0.0, MAX_CFG),
        cfg_channels=parse_cfg_channels(lane.cfg_channels, bundle.latent_channels),
        spacing=parse_spacing(lane.spacing),
        levers=_lane_levers(lane.levers),
    )


def _lane_levers(levers) -> LaneLevers:
    if not isinstance(levers, LaneLevers):
        raise ValueError(f"A lane's levers are a LaneLevers (guidance interval, cache threshold); got {shown(levers)}.")
    return levers.checked()


def check_lanes(bundle: DiTBundle, lanes: Sequence[Lane], max_lanes: int = MAX_LANES) -> list[CheckedLane]:
    """Check a whole request once, at the boundary: its size first, then every lane."""
    if not lanes:
        raise ValueError(
            "Nothing to sample: the request has no lanes (give at least one sampler, step count and class)."
        )
    if len(lanes) > max_lanes:
        raise ValueError(f"Batch too large: {len(lanes)} images requested, at most {max_lanes} per request.")
    return [check_lane(bundle, lane) for lane in lanes]


def lane_work(bundle: DiTBundle, lanes: Sequence[CheckedLane]) -> list[tuple[int, int]]:
    """Each lane's (model evaluations, transformer rows per evaluation): what a budget estimates from."""
    return [(lane.sampler.nfe(lane.steps, bundle.scheduler_config, lane.spacing), lane.rows) for lane in lanes]
