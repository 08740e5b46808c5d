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
from samplers.flow_paths import PATHS, PREDICTIONS, data_coefficients, path_at

DEFAULT_FAMILY = "dit"
SIT_FAMILY = "sit"
# the SiT transports this version samples: (path_type, prediction) as SiT's train.py spells them, every one
SIT_SUPPORTED = tuple((path, prediction) for path in PATHS for prediction in PREDICTIONS)
REPA_FAMILY = "repa"
REPA_PATHS = ("linear", "cosine")  # REPA's --path-type; its code trains and samples velocity prediction only


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
class SiTTransport:
    """A SiT transport (``transport.Transport``): x_t = alpha_t x_data + sigma_t noise on the path ``path_type``
    (Linear: alpha = t, sigma = 1 - t; GVP: sin and cos of pi t / 2; VP: the variance-preserving SDE's), t running
    from 0 (pure noise) to 1 (data); the model reads t itself, unscaled, and predicts ``prediction`` (the velocity
    dx_t/dt, the score or the noise) in its first ``latent_channels`` output channels. SiT's ``learn_sigma``
    channels are dropped by its own forward, so they are never read here either. The formulas: ``flow_paths``."""

    latent_channels: int
    path_type: str = "Linear"
    prediction_type: str = "velocity"
    learned_variance: bool = False
    family: str = SIT_FAMILY

    @classmethod
    def from_configs(cls, scheduler_config: dict, transformer_config) -> SiTTransport:
        """From the flow scheduler's config, which records the transport the model was trained with."""
        transport = (scheduler_config.get("path_type", "Linear"), scheduler_config.get("prediction", "velocity"))
        if transport not in SIT_SUPPORTED:
            raise ValueError(
                f"SiT's transports are path_type {', '.join(PATHS)} with prediction {', '.join(PREDICTIONS)}; "
                f"this model's config says path_type={transport[0]}, prediction={transport[1]}."
            )
        return cls(int(transformer_config.in_channels), *transport)

    def model_time(self, t: float) -> float:
        """SiT's ``TimestepEmbedder`` takes t in [0, 1] as it is (DiT's features, no factor of 1000)."""
        return float(t)

    def sigma_at(self, t: float) -> float:
        """Noise over signal, sigma_t / alpha_t ((1 - t) / t on the Linear path): DiT's sigma = sqrt(1 - alpha-bar)
        / sqrt(alpha-bar) is the same ratio of x_t's noise and data coefficients, so the levers' thresholds mean
        the same noise level."""
        point = path_at(self.path_type, t)
        return math.inf if point.alpha <= 0.0 else point.sigma / point.alpha

    def prediction(self, output: torch.Tensor) -> torch.Tensor:
        """The prediction's channels of a model output (SiT-XL/2 writes 8; its sampling reads the first 4)."""
        return output[:, : self.latent_channels]

    def x0_from_output(self, x_scaled: torch.Tensor, t: float, output: torch.Tensor) -> torch.Tensor:
        """x_data from x_t and the prediction (Linear velocity: x_t + (1 - t) v, as x_t = t x_data + (1 - t) noise
        and v = x_data - noise)."""
        on_x, on_output = data_coefficients(path_at(self.path_type, t), self.prediction_type)
        return on_x * x_scaled + on_output * self.prediction(output)

    def final_step_takes_x0(self, sampler: Sampler) -> bool:
        """An ODE's last step lands on t1, near or at the data; a stochastic sampler's x0 is taken where it gives one
        (SiT's SDE schedulers give none: they end with SiT's own noise-free last step)."""
        return sampler.stochastic


@dataclass(frozen=True, eq=False)
class RepaVelocity:
    """REPA's SiT (Yu et al. 2025, its ``loss.py`` and ``samplers.py``): x_t = alpha_t x_data + sigma_t noise with t
    running the other way from SiT's, 1 (pure noise) to 0 (data); "linear": alpha = 1 - t, sigma = t; "cosine":
    alpha = cos(pi t / 2), sigma = sin(pi t / 2). The model reads t as it is and predicts the velocity
    dx_t/dt = alpha'_t x_data + sigma'_t noise in all of its ``latent_channels`` outputs (no learned sigma)."""

    latent_channels: int
    path_type: str = "linear"
    learned_variance: bool = False
    family: str = REPA_FAMILY

    @classmethod
    def from_configs(cls, scheduler_config: dict, transformer_config) -> RepaVelocity:
        """From the REPA scheduler's config, which records the path the model was trained on."""
        path_type = scheduler_config.get("path_type", "linear")
        if path_type not in REPA_PATHS:
            raise ValueError(f"REPA's paths are {' and '.join(REPA_PATHS)}; this model's config says {path_type!r}.")
        return cls(int(transformer_config.in_channels), path_type)

    def model_time(self, t: float) -> float:
        """REPA's ``TimestepEmbedder`` takes t in [0, 1] as it is, as SiT's does."""
        return float(t)

    def coefficients(self, t: float) -> tuple[float, float]:
        """(alpha_t, sigma_t): x_t's data and noise coefficients at REPA's time t."""
        t = float(t)
        if self.path_type == "linear":
            return 1.0 - t, t
        return math.cos(math.pi * t / 2), math.sin(math.pi * t / 2)

    def sigma_at(self, t: float) -> float:
        """Noise over data, sigma_t / alpha_t, DiT's sigma and SiT's (1 - t) / t: the levers' thresholds' unit."""
        alpha, sigma = self.coefficients(t)
        return math.inf if alpha <= 0.0 else sigma / alpha

    def prediction(self, output: torch.Tensor) -> torch.Tensor:
        """The velocity channels of a model output (REPA's SiT writes exactly the latent's)."""
        return output[:, : self.latent_channels]

    def x0_from_output(self, x_scaled: torch.Tensor, t: float, output: torch.Tensor) -> torch.Tensor:
        """x_data from x_t and v: linear x_t - t v; cosine alpha_t x_t - (2 / pi) sigma_t v (alpha^2 + sigma^2 = 1)."""
        v = self.prediction(output)
        if self.path_type == "linear":
            return x_scaled - float(t) * v
        alpha, sigma = self.coefficients(t)
        return alpha * x_scaled - (2 / math.pi) * sigma * v

    def final_step_takes_x0(self, sampler: Sampler) -> bool:
        """Never: REPA's samplers end with their own last step (the SDE's noise-free mean step to t = 0)."""
        return False


# family -> its parameterization from the model's configs (what a message calls it: samplers.base.FAMILY_LABELS)
PARAMETERIZATIONS = {
    DEFAULT_FAMILY: EpsilonVP.from_configs,
    SIT_FAMILY: SiTTransport.from_configs,
    REPA_FAMILY: RepaVelocity.from_configs,
}


def parameterization_for(family: str, scheduler_config: dict, transformer_config) -> Parameterization:
    """The parameterization of a model of ``family`` (``model_index.json``'s optional "family"), from its configs."""
    if family not in PARAMETERIZATIONS:
        raise ValueError(f"Unknown model family {family!r}; this version knows {', '.join(PARAMETERIZATIONS)}.")
    return PARAMETERIZATIONS[family](scheduler_config, transformer_config)
