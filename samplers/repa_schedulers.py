"""Schedulers for REPA's samplers (Yu et al. 2025, ``samplers.py``): its Euler/Heun ODE and Euler-Maruyama SDE.

REPA's time runs from t = 1 (noise) to t = 0 (data) on the path x_t = alpha_t x_data + sigma_t noise ("linear":
alpha = 1 - t, sigma = t; "cosine": alpha = cos(pi t / 2), sigma = sin(pi t / 2)), and its model predicts the
velocity dx_t/dt. Each entry of ``timesteps`` is one model evaluation, as the engine counts them. The engine
guides the velocity; REPA guides only where ``guidance_low <= t_cur <= guidance_high`` for the step's t_cur (the
Heun correction's evaluation at t_next included), which ``guided_now()`` answers before each evaluation.
REPA keeps its state in float64 and casts only the model's input to the model's dtype: so do these.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config

PATHS = ("linear", "cosine")  # REPA's --path-type
PREDICTIONS = ("v", "velocity")  # REPA's train.py spells velocity "v"; its code has no other prediction
SDE_LAST_T = 0.04  # euler_maruyama_sampler's grid ends at 0.04, then one noise-free mean step to t = 0


@dataclass
class RepaStepOutput:
    # no pred_original_sample: REPA's samplers end with their own last step, which the engine keeps
    prev_sample: torch.Tensor


class RepaScheduler(ConfigMixin):
    """What REPA's two samplers share: the guidance interval, the model facts in the config, float64 state."""

    config_name = "scheduler_config.json"

    def _check(self, guidance_low: float, guidance_high: float, path_type: str, prediction: str, spacing: str):
        if not 0.0 <= guidance_low <= guidance_high <= 1.0:
            raise ValueError(
                f"REPA's guidance interval needs 0 <= guidance_low <= guidance_high <= 1 on its time axis "
                f"(1 = noise); got guidance_low={guidance_low}, guidance_high={guidance_high}."
            )
        if path_type not in PATHS or prediction not in PREDICTIONS:
            raise ValueError(
                f"REPA's samplers drive velocity models on the {' or '.join(PATHS)} path; this config says "
                f"path_type={path_type!r}, prediction={prediction!r}."
            )
        # REPA's grid is its own; the discrete grids "linspace" and "leading" have no counterpart in its time
        if spacing != "trailing":
            raise ValueError(
                f"REPA's samplers run on REPA's own grid from t = 1 to t = 0; the step grid {spacing!r} is for "
                f"discrete-time (DiT) samplers: leave the spacing out."
            )
        self.init_noise_sigma = 1.0  # REPA starts from unit Gaussian latents at t = 1
        self.timesteps = torch.empty(0)
        self.grid = torch.empty(0, dtype=torch.float64)
        self._index = 0
        self._handed: tuple[torch.Tensor, torch.Tensor] | None = None  # (what step returned, its float64 value)

    def scale_model_input(self, sample: torch.Tensor, timestep=None) -> torch.Tensor:
        return sample  # the model reads x_t as it is

    def save_pretrained(self, save_directory, **kwargs) -> None:
        self.save_config(save_directory)

    def step_start(self) -> float:
        """The t_cur of the step the next evaluation belongs to (REPA decides guidance by it)."""
        raise NotImplementedError

    def guided_now(self) -> bool:
        """Whether REPA guides the next evaluation: its step's t_cur in [guidance_low, guidance_high], inclusive."""
        t_cur = self.step_start()
        return self.config.guidance_low <= t_cur <= self.config.guidance_high

    def _carried(self, sample: torch.Tensor) -> torch.Tensor:
        """``sample`` in float64: the exact value this scheduler handed out last, when ``sample`` is that hand-out."""
        if self._handed is not None and sample is self._handed[0]:
            return self._handed[1]
        return sample.to(_exact_dtype(sample))

    def _hand_out(self, x: torch.Tensor, like: torch.Tensor) -> RepaStepOutput:
        out = x.to(like.dtype)
        self._handed = (out, x)
        return RepaStepOutput(out)


class RepaEulerScheduler(RepaScheduler):
    """REPA's ``euler_sampler``: Euler steps on linspace(1, 0, n + 1), or Heun's (``heun=True``), whose
    correction evaluates the model at t_next, except on the last step, which stays an Euler step to t = 0."""

    @register_to_config
    def __init__(
        self,
        heun: bool = False,
        guidance_low: float = 0.0,
        guidance_high: float = 1.0,
        *,  # facts of the model and settings the engine owns, not options of a variant
        path_type: str = "linear",
        prediction: str = "v",
        timestep_spacing: str = "trailing",
    ):
        self._check(guidance_low, guidance_high, path_type, prediction, timestep_spacing)
        self._plan: list[tuple[int, int]] = []  # per evaluation: (step, 0 = Euler at t_cur, 1 = correction)
        self._start: tuple[torch.Tensor, torch.Tensor] | None = None  # Heun: (x, d) at the step's start

    def set_timesteps(self, num_inference_steps: int, *args, **kwargs) -> None:
        """``num_inference_steps`` steps; Heun's take 2 evaluations each but the last: 2n - 1 in all."""
        n = num_inference_steps
        self.grid = torch.linspace(1, 0, n + 1, dtype=torch.float64)
        heun = self.config.heun
        self._plan = [(i, stage) for i in range(n) for stage in ((0, 1) if heun and i < n - 1 else (0,))]
        self.timesteps = torch.stack([self.grid[i + stage] for i, stage in self._plan])
        self._index, self._start, self._handed = 0, None, None

    def step_start(self) -> float:
        return float(self.grid[self._plan[self._index][0]])

    def step(self, model_output: torch.Tensor, timestep, sample: torch.Tensor, *args, **kwargs) -> RepaStepOutput:
        """One evaluation's update: an Euler step (Heun's predictor), or Heun's correction."""
        i, stage = self._plan[self._index]
        self._index += 1
        dt = self.grid[i + 1] - self.grid[i]
        d = model_output.to(_exact_dtype(model_output))
        if stage == 1:
            x, d_cur = self._start
            return self._hand_out(x + dt * (0.5 * d_cur + 0.5 * d), sample)
        x = self._carried(sample)
        self._start = (x, d)
        return self._hand_out(x + dt * d, sample)


class RepaEulerMaruyamaScheduler(RepaScheduler):
    """REPA's ``euler_maruyama_sampler``: Euler-Maruyama on linspace(1, 0.04, n) with diffusion 2 t and the
    drift v - t * score (the score from the velocity on the model's path), then one noise-free mean step to 0."""

    @register_to_config
    def __init__(
        self,
        guidance_low: float = 0.0,
        guidance_high: float = 1.0,
        *,
        path_type: str = "linear",
        prediction: str = "v",
        timestep_spacing: str = "trailing",
    ):
        self._check(guidance_low, guidance_high, path_type, prediction, timestep_spacing)

    def set_timesteps(self, num_inference_steps: int, *args, **kwargs) -> None:
        """``num_inference_steps`` evaluations: n - 1 stochastic steps and the mean step from t = 0.04."""
        last = torch.zeros(1, dtype=torch.float64)
        self.grid = torch.cat([torch.linspace(1, SDE_LAST_T, num_inference_steps, dtype=torch.float64), last])
        self.timesteps = self.grid[:-1]
        self._index, self._handed = 0, None

    def step_start(self) -> float:
        return float(self.grid[self._index])

    def step(self, model_output, timestep, sample, *args, generator=None, **kwargs) -> RepaStepOutput:
        """One Euler-Maruyama step; its Brownian increment drawn from ``generator`` on the CPU in float64 first."""
        i = self._index
        self._index += 1
        t_cur, t_next = self.grid[i], self.grid[i + 1]
        dt = t_next - t_cur
        x = self._carried(sample)
        v = model_output.to(x.dtype)
        diffusion = 2 * t_cur
        drift = v - 0.5 * diffusion * self.score(v, x, float(t_cur))
        if i == len(self.grid) - 2:  # the mean step: no noise on the sample REPA returns
            return self._hand_out(x + dt * drift, sample)
        deps = _standard_normal(x, generator) * torch.sqrt(torch.abs(dt))
        return self._hand_out(x + drift * dt + torch.sqrt(diffusion) * deps, sample)

    def score(self, v: torch.Tensor, x: torch.Tensor, t: float) -> torch.Tensor:
        """REPA's ``get_score_from_velocity``: (alpha / alpha' v - x) / (sigma^2 - alpha / alpha' sigma' sigma)."""
        if self.config.path_type == "linear":
            alpha, d_alpha, sigma, d_sigma = 1 - t, -1.0, t, 1.0
        else:
            half_pi = math.pi / 2
            alpha, sigma = math.cos(t * half_pi), math.sin(t * half_pi)
            d_alpha, d_sigma = -half_pi * sigma, half_pi * alpha
        ratio = alpha / d_alpha
        return (ratio * v - x) / (sigma**2 - ratio * d_sigma * sigma)


def _exact_dtype(x: torch.Tensor) -> torch.dtype:
    return torch.float32 if x.device.type == "mps" else torch.float64  # MPS has no float64


def _standard_normal(x: torch.Tensor, generator) -> torch.Tensor:
    """Unit Gaussian noise like ``x`` (REPA's ``randn_like`` of its float64 state), row i from generator i when
    given a list, drawn on the CPU so that a seed means the same noise on every device."""
    shape, dtype = (1, *x.shape[1:]), x.dtype
    if isinstance(generator, (list, tuple)):
        rows = [torch.randn(shape, generator=g, dtype=dtype) for g in generator]
    else:
        rows = [torch.randn((len(x), *shape[1:]), generator=generator, dtype=dtype)]
    return torch.cat(rows).to(x.device)
