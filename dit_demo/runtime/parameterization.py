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
SIT_FAMILY = "sit"
# the SiT transports this version samples: (path_type, prediction) as SiT's train.py spells them
SIT_SUPPORTED = (("Linear", "velocity"),)


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


@dataclass(frozen=True, eq=False)
class LinearVelocity:
    """SiT's default transport (``path.ICPlan`` with ``ModelType.VELOCITY``): x_t = t x_data + (1 - t) noise,
    t running from 0 (pure noise) to 1 (data); the model reads t itself, unscaled, and predicts the velocity
    dx_t/dt = x_data - noise in its first ``latent_channels`` output channels. SiT's ``learn_sigma`` channels
    are dropped by its own forward, so they are never read here either."""

    latent_channels: int
    learned_variance: bool = False
    family: str = SIT_FAMILY

    @classmethod
    def from_configs(cls, scheduler_config: dict, transformer_config) -> LinearVelocity:
        """From the flow scheduler's config, which records the transport the model was trained with."""
        transport = (scheduler_config.get("path_type", "Linear"), scheduler_config.get("prediction", "velocity"))
        if transport not in SIT_SUPPORTED:
            raise ValueError(
                f"This version samples SiT models of the Linear path with velocity prediction only; this one was "
                f"trained with path_type={transport[0]}, prediction={transport[1]}."
            )
        return cls(int(transformer_config.in_channels))

    def model_time(self, t: float) -> float:
        """SiT's ``TimestepEmbedder`` takes t in [0, 1] as it is (DiT's features, no factor of 1000)."""
        return float(t)

    def sigma_at(self, t: float) -> float:
        """Noise over signal, (1 - t) / t: DiT's sigma = sqrt(1 - alpha-bar) / sqrt(alpha-bar) is the same ratio
        of x_t's noise and data coefficients, so the levers' thresholds mean the same noise level."""
        t = float(t)
        return math.inf if t <= 0.0 else (1.0 - t) / t

    def prediction(self, output: torch.Tensor) -> torch.Tensor:
        """The velocity channels of a model output (SiT-XL/2 writes 8; its sampling reads the first 4)."""
        return output[:, : self.latent_channels]

    def x0_from_output(self, x_scaled: torch.Tensor, t: float, output: torch.Tensor) -> torch.Tensor:
        """x_data = x_t + (1 - t) v: x_t = t x_data + (1 - t) noise and v = x_data - noise."""
        return x_scaled + (1.0 - float(t)) * self.prediction(output)

    def final_step_takes_x0(self, sampler: Sampler) -> bool:
        """An ODE's last step lands on t = 1, the data itself; only a stochastic sampler's would add noise there."""
        return sampler.stochastic


# family -> its parameterization from the model's configs (what a message calls it: samplers.base.FAMILY_LABELS)
PARAMETERIZATIONS = {DEFAULT_FAMILY: EpsilonVP.from_configs, SIT_FAMILY: LinearVelocity.from_configs}


def parameterization_for(family: str, scheduler_config: dict, transformer_config) -> Parameterization:
    """The parameterization of a model of ``family`` (``model_index.json``'s optional "family"), from its configs."""
    if family not in PARAMETERIZATIONS:
        raise ValueError(f"Unknown model family {family!r}; this version knows {', '.join(PARAMETERIZATIONS)}.")
    return PARAMETERIZATIONS[family](scheduler_config, transformer_config)
