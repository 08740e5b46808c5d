"""What the app shows and the command line uses when a field is left out, for one loaded model: the
model's own guidance scale (its ``model_index.json``) and each sampler's recommended step count."""

from __future__ import annotations

from dataclasses import dataclass

import samplers
from dit_demo.runtime.bundle import DiTBundle
from dit_demo.runtime.parameterization import DEFAULT_FAMILY


@dataclass(frozen=True, kw_only=True)
class Defaults:
    """What the UI shows and the CLI uses when a field is left out, for one loaded model."""

    cfg: float
    max_steps: int
    family: str = DEFAULT_FAMILY  # the loaded model's (its parameterization's): which samplers fit it
    sampler: str = "dpmpp_2m"
    compare_samplers: tuple[str, ...] = ("ddim", "dpmpp_2m", "euler")
    compare_steps: str = "10,25,50"

    @classmethod
    def for_bundle(cls, bundle: DiTBundle) -> Defaults:
        """The model's defaults; a model of another family than DiT's starts from its own family's samplers."""
        family = bundle.parameterization.family
        # a comparison on a step-count axis starts from the fixed-step samplers (an adaptive one ignores the axis)
        fitting = tuple(
            s.name for s in samplers.for_family(family) if not getattr(s.scheduler_class, "adaptive", False)
        )
        own = {"sampler": fitting[0], "compare_samplers": fitting[:3]} if family != DEFAULT_FAMILY and fitting else {}
        return cls(cfg=bundle.default_cfg, max_steps=bundle.num_train_timesteps, family=family, **own)

    def steps_for(self, sampler: str | None = None) -> int:
        """The sampler's own recommended step count (its metadata), capped at the model's."""
        return min(samplers.get(sampler or self.sampler).default_steps, self.max_steps)
