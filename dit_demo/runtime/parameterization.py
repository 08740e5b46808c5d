"""A model's parameterization: what its output means, which time it reads and its noise level at a step.

Every part that turns a model output into something (the engine's step, the live previews, the guidance
interval, a comparison's noise levels) asks this one object, so none of them assumes noise prediction:
a flow-matching model (a velocity on another path, in another time convention) is another class here
with the same answers, and samplers declare which ``family`` they can drive.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import torch
from diffusers import DDPMScheduler

from samplers import Sampler

DEFAULT_FAMILY = "dit"


class Parameterization(Protocol):
    """What the sampling code may ask of a model's parameterization (t is always a scheduler timestep)."""

    family: str
    learned_variance: bool  # the output carries variance channels after the prediction

    def model_time(self, t: float) -> float: ...

    def prediction(self, output: torch.Tensor) -> torch.Tensor: ...

    def x0_from_output(self, x_scaled: torch.Tensor, t: float, output: torch.Tensor) -> torch.Tensor: ...

    def sigma_at(self, t: float) -> float: ...

    def final_step_takes_x0(self, sampler: Sampler) -> bool: ...


@dataclass(frozen=True, eq=False)
class EpsilonVP:
    """Discrete variance-preserving noise prediction (DiT): the model reads the scheduler's timestep and
    predicts eps in its first ``latent_channels`` output channels (then the variance, when learned)."""

    alphas_cumprod: np.ndarray = field(repr=False)  # alpha-bar_t for t = 0..T-1, float64
    latent_channels: int
    learned_variance: bool
    family: str = DEFAULT_FAMILY

    @classmethod
    def from_configs(cls, scheduler_config: dict, transformer_config) -> EpsilonVP:
        """From the model's own configs: alpha-bar as diffusers computes it, variance if it has 2C outputs."""
        channels = int(transformer_config.in_channels)
        with torch.device("cpu"):  # a model built on the meta device (the bench's shapes) still has a schedule
            alphas_cumprod = DDPMScheduler.from_config(scheduler_config).alphas_cumprod.double().numpy()
        return cls(
            alphas_cumprod,
            channels,
            int(transformer_config.out_channels or 0) == 2 * channels,
        )

    def model_time(self, t: float) -> float:
        """DiT was trained on the scheduler's own timesteps, fractional ones included (sigma-space samplers)."""
        return float(t)

    def alpha_bar_at(self, t: float) -> float:
        """alpha-bar at a possibly fractional timestep (sigma-space samplers visit those)."""
        return float(np.interp(float(t), np.arange(len(self.alphas_cumprod)), self.alphas_cumprod))

    def sigma_at(self, t: float) -> float:
        """The noise level sigma = sqrt((1 - alpha-bar) / alpha-bar): what the levers' thresholds are in."""
        ab = self.alpha_bar_at(t)
        return math.sqrt((1 - ab) / ab)

    def prediction(self, output: torch.Tensor) -> torch.Tensor:
        """The eps channels of a model output (the learned variance, if any, follows them)."""
        return output[:, : self.latent_channels]

    def x0_from_output(self, x_scaled: torch.Tensor, t: float, output: torch.Tensor) -> torch.Tensor:
        """x0 = (x - sqrt(1 - alpha-bar) eps) / sqrt(alpha-bar), from the scaled (variance-preserving) input."""
        ab = self.alpha_bar_at(t)
        return (x_scaled - math.sqrt(1.0 - ab) * self.prediction(output)) / math.sqrt(ab)

    def final_step_takes_x0(self, sampler: Sampler) -> bool:
        """Whether the last step keeps the scheduler's noise-free x0 instead of its ``prev_sample``.

        The last step lands on the clean sample (sigma 0, alpha-bar 1). There an ancestral update's mean
        *is* its x0 estimate, and no noise belongs on it: DiT's ``p_sample`` masks it out (``nonzero_mask``),
        k-diffusion skips it when sigma_next is 0. diffusers' DDPMScheduler adds noise whenever t > 0, which
        with a trailing grid (last t = 3 at 250 steps) and the learned variance extrapolated past its range
        gives visible blotches; deciding by ``stochastic`` covers plugins too.
        """
        return sampler.stochastic


# family -> its parameterization from the model's configs (what a message calls it: samplers.base.FAMILY_LABELS)
PARAMETERIZATIONS = {DEFAULT_FAMILY: EpsilonVP.from_configs}


def parameterization_for(family: str, scheduler_config: dict, transformer_config) -> Parameterization:
    """The parameterization of a model of ``family`` (``model_index.json``'s optional "family"), from its configs."""
    if family not in PARAMETERIZATIONS:
        raise ValueError(f"Unknown model family {family!r}; this version knows {', '.join(PARAMETERIZATIONS)}.")
    return PARAMETERIZATIONS[family](scheduler_config, transformer_config)
