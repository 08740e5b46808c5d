"""A scheduler for SiT's SDE samplers: Euler-Maruyama and Heun on the grid of SiT's ``sample_sde``, then its last step.

SiT solves dx = [drift(x, t) + w(t) score(x, t)] dt + sqrt(2 w(t)) dW from t0 (noise) to t1 (data) on
``linspace(t0, t1, num_steps)`` with one step size dt = t[1] - t[0], then takes one noise-free last step at t1
("Mean": x + SDE drift * last_step_size, the default; "Tweedie"; "Euler": the ODE drift; or none). Here
``set_timesteps(n)`` takes n SDE steps, SiT's ``num_steps = n + 1``, and each entry of ``timesteps`` is one model
evaluation as the engine counts them: Euler-Maruyama reads each step's start, Heun its start and its end, and the
last step (unless none) one more at t1, so n steps cost n + 1 (Euler) or 2 n + 1 (Heun) evaluations.

Noise: every Brownian increment is drawn on the CPU from the lane's generator, in SiT's order (one
``randn(x.shape)`` a step, at its start), then moved to the latents' device. SiT's Heun evaluates the model at
x-hat, the state *after* that step's noise, which the engine's model input must be: ``scale_model_input`` returns
x-hat at a Heun step's start, drawing from the generator the engine hands over up front (``set_generator``).
"""

from __future__ import annotations

import math

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config

from samplers.flow import FlowStepOutput, ode_drift, refuse_discrete_spacing
from samplers.flow_paths import (
    DIFFUSIONS,
    check_transport,
    default_eps,
    diffusion_at,
    path_at,
    score_coefficients,
    sde_coefficients,
    sit_interval,
)

SDE_SOLVERS = {"euler": "Euler", "heun": "Heun"}  # SiT's --sampling-method names for sample_sde
LAST_STEPS = {"mean": "Mean", "tweedie": "Tweedie", "euler": "Euler", "none": None}  # SiT's --last-step ("None")


def _named(kind: str, value, names: dict):
    """SiT's spelling of ``value`` (any case) among ``names``, or a one-sentence ``ValueError``."""
    key = str(value).lower()
    if key not in names:
        raise ValueError(f"Unknown SDE {kind} {value!r}; SiT's are {', '.join(map(str, names.values()))}.")
    return names[key]


def brownian(shape: torch.Size, generator) -> torch.Tensor:
    """Standard normal draws of ``shape`` on the CPU, row i from generator i when given one per row."""
    if isinstance(generator, (list, tuple)):
        return torch.cat([torch.randn((1, *shape[1:]), generator=g) for g in generator])
    return torch.randn(shape, generator=generator)


class SiTSDEScheduler(ConfigMixin):
    """Fixed-step SDE integration of a SiT model in SiT's time (t0 noise -> t1 data), one evaluation a call."""

    config_name = "scheduler_config.json"

    @register_to_config
    def __init__(
        self,
        solver: str = "Euler",
        diffusion: str = "sigma",
        diffusion_norm: float = 1.0,
        last_step: str = "Mean",
        last_step_size: float = 0.04,
        path_type: str = "Linear",
        prediction: str = "velocity",
        train_eps: float | None = None,
        sample_eps: float | None = None,
        timestep_spacing: str = "trailing",
    ):
        self.solver = _named("solver", solver, SDE_SOLVERS)
        self.diffusion = _named("diffusion form", diffusion, DIFFUSIONS)
        self.last_step = _named("last step", last_step, LAST_STEPS)
        check_transport(path_type, prediction)
        refuse_discrete_spacing(timestep_spacing)
        if not (math.isfinite(diffusion_norm) and diffusion_norm >= 0):
            raise ValueError(f"diffusion_norm scales the SDE's noise: a number 0 or above, got {diffusion_norm}.")
        if self.last_step is not None and not 0 < last_step_size < 1:
            raise ValueError(f"last_step_size is a time between 0 and 1 (SiT's default 0.04), got {last_step_size}.")
        # SiT runs the SDE to 1 - last_step_size and lands on t1 with its last step; without one, to 1 - eps
        self.last_step_size = 0.0 if self.last_step is None else float(last_step_size)
        eps = default_eps(path_type, prediction, train_eps, sample_eps)
        self.t0, self.t1 = sit_interval(path_type, prediction, eps, True, self.diffusion, self.last_step_size)
        if not self.t0 < self.t1:
            raise ValueError(f"SiT's SDE runs forward in time; this one would run from t = {self.t0} to {self.t1}.")
        if not math.isfinite(diffusion_at(path_type, self.diffusion, diffusion_norm, self.t0)):
            # SBDM's w(t) has d_alpha / alpha in it, infinite at t = 0, where SiT starts a velocity model's SDE
            # on the Linear and GVP paths (their sample_eps is 0): SiT's own samples are NaN there
            raise ValueError(
                f"diffusion={self.diffusion} is infinite at t = {self.t0}, where SiT starts the SDE of a {path_type}-path "
                f"{prediction} model: choose another diffusion form."
            )
        self.init_noise_sigma = 1.0  # SiT starts from unit Gaussian noise at t0
        self.timesteps = torch.empty(0)
        self.dt = torch.tensor(0.0)
        self.sde_evaluations = 0  # entries of ``timesteps`` before the last step's
        self._index = 0
        self._generator = None
        self._noised: tuple[int, torch.Tensor] | None = None  # Heun: (evaluation index, x-hat) of this step
        self._start: tuple[torch.Tensor, torch.Tensor] | None = None  # Heun: (x-hat, K1)

    def set_timesteps(self, num_inference_steps: int, *args, **kwargs) -> None:
        """``num_inference_steps`` SDE steps on SiT's float32 ``linspace`` grid from t0 to t1, then the last step."""
        grid = torch.linspace(self.t0, self.t1, num_inference_steps + 1)
        self.dt = grid[1] - grid[0]  # SiT steps by t[1] - t[0] throughout, not by each gap of the grid
        starts = grid[:-1]
        sde = starts if self.solver == "Euler" else torch.stack([starts, starts + self.dt], dim=1).flatten()
        last = torch.tensor([self.t1], dtype=torch.float32)[: 1 if self.last_step is not None else 0]
        self.sde_evaluations = len(sde)
        self.timesteps = torch.cat([sde, last])
        self._index, self._noised, self._start = 0, None, None

    def set_generator(self, generator) -> None:
        """The lane's generator (or one per row), before the first model input: Heun's first noise comes first."""
        self._generator = generator

    def save_pretrained(self, save_directory, **kwargs) -> None:
        self.save_config(save_directory)

    def scale_model_input(self, sample: torch.Tensor, timestep=None) -> torch.Tensor:
        """The state the model reads: x itself, or at a Heun step's start x-hat = x + sqrt(2 w) dW (drawn once)."""
        if self.solver == "Heun" and self._index < self.sde_evaluations and self._index % 2 == 0:
            return self._noised_input(sample)
        return sample

    def _noised_input(self, sample: torch.Tensor) -> torch.Tensor:
        if self._noised is None or self._noised[0] != self._index:
            self._noised = (self._index, self._add_noise(sample, float(self.timesteps[self._index])))
        return self._noised[1]

    def _add_noise(self, x: torch.Tensor, t: float) -> torch.Tensor:
        """x + sqrt(2 w(t)) dW with dW = sqrt(dt) N(0, I): one Brownian increment, drawn from the lane's generator."""
        dw = brownian(x.shape, self._generator).to(x) * torch.sqrt(self.dt)
        w = diffusion_at(self.config.path_type, self.diffusion, self.config.diffusion_norm, t)
        return x + math.sqrt(2 * w) * dw

    def sde_drift(self, output: torch.Tensor, x: torch.Tensor, t: float) -> torch.Tensor:
        """SiT's SDE drift, the probability-flow drift plus w(t) times the score, from the guided model output."""
        config = self.config
        on_x, on_output = sde_coefficients(
            config.path_type, config.prediction, self.diffusion, config.diffusion_norm, t
        )
        return on_x * x + on_output * output

    def step(
        self, model_output: torch.Tensor, timestep, sample: torch.Tensor, generator=None, **kwargs
    ) -> FlowStepOutput:
        """One model evaluation's update: an Euler-Maruyama step, half of a Heun step, or the last step."""
        if generator is not None:
            self._generator = generator
        index = self._index
        t = float(self.timesteps[index])
        if index >= self.sde_evaluations:
            out = self._last(model_output, sample, t)
        elif self.solver == "Euler":
            # SiT adds sqrt(2 w) dW to the mean x + drift dt, both at the step's start
            mean = sample + self.sde_drift(model_output, sample, t) * self.dt
            out = self._add_noise(mean, t)
        elif index % 2 == 0:  # Heun's predictor from x-hat, where the model was read
            x_hat = self._noised_input(sample)
            k1 = self.sde_drift(model_output, x_hat, t)
            self._start = (x_hat, k1)
            out = x_hat + self.dt * k1
        else:
            x_hat, k1 = self._start
            out = x_hat + 0.5 * self.dt * (k1 + self.sde_drift(model_output, sample, t))
        self._index += 1
        return FlowStepOutput(out)

    def _last(self, output: torch.Tensor, x: torch.Tensor, t1: float) -> torch.Tensor:
        """SiT's last step at t1: no noise; "Mean" the SDE drift, "Euler" the ODE drift, "Tweedie" the posterior mean."""
        if self.last_step == "Mean":
            return x + self.sde_drift(output, x, t1) * self.last_step_size
        if self.last_step == "Euler":
            return x + ode_drift(self.config, output, x, t1) * self.last_step_size
        point = path_at(self.config.path_type, t1)  # Tweedie: E[x_data | x_t] = (x + sigma^2 score) / alpha
        on_x, on_output = score_coefficients(point, self.config.prediction)
        score = on_x * x + on_output * output
        return x / point.alpha + (point.sigma**2) / point.alpha * score
