"""A scheduler for SiT's fixed-grid ODE solvers: Euler and Heun on the grid of SiT's ``sample_ode``.

SiT integrates its probability-flow ODE dx/dt = drift(x, t) (the velocity itself, or from a score or noise model
through its path: ``ode_drift``) from t0 (noise) to t1 (data) with torchdiffeq on ``linspace(t0, t1, num_steps)``.
``set_timesteps(n)`` here takes n integration steps, so n here is SiT's ``num_steps = n + 1``. Each entry of
``timesteps`` is one model evaluation, as the engine counts them: Euler visits each step's start; Heun (torchdiffeq's
"heun2") visits its start and its end, the end through the Euler predictor, and averages the two velocities.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config

from samplers.flow_paths import check_transport, ode_coefficients, path_at

SOLVERS = ("euler", "heun2")  # torchdiffeq's names for them, as SiT's --sampling-method takes them


@dataclass
class FlowStepOutput:
    # no pred_original_sample: the model's parameterization gives the data estimate (its x0_from_output), and
    # the engine reads this one only for stochastic samplers, which these are not
    prev_sample: torch.Tensor


def ode_drift(config, output: torch.Tensor, x: torch.Tensor, t: float) -> torch.Tensor:
    """SiT's probability-flow drift at (x, t) from the guided model output, for the transport a scheduler's
    ``config`` records (``path_type``, ``prediction``): a velocity model's output is the drift as it is."""
    if config.prediction == "velocity":
        return output
    on_x, on_output = ode_coefficients(path_at(config.path_type, float(t)), config.prediction)
    return on_x * x + on_output * output


def refuse_discrete_spacing(timestep_spacing: str) -> None:
    """SiT's grid is evenly spaced from pure noise to the data end, the "trailing" grid's meaning; the discrete
    grids "linspace" and "leading" have no counterpart in continuous time."""
    if timestep_spacing != "trailing":
        raise ValueError(
            f"SiT's samplers run on SiT's own evenly spaced grid from t0 to t1; the step grid "
            f"{timestep_spacing!r} is for discrete-time (DiT) samplers: leave the spacing out."
        )


class SiTFlowScheduler(ConfigMixin):
    """Fixed-step ODE integration of a velocity model in SiT's time (t0 noise -> t1 data), one evaluation a call."""

    config_name = "scheduler_config.json"

    @register_to_config
    def __init__(
        self,
        solver: str = "euler",
        path_type: str = "Linear",
        prediction: str = "velocity",
        t0: float = 0.0,
        t1: float = 1.0,
        timestep_spacing: str = "trailing",
        train_eps: float | None = None,
        sample_eps: float | None = None,
    ):
        # train_eps and sample_eps are recorded for SiT's SDE samplers, whose interval depends on their options
        if solver not in SOLVERS:
            raise ValueError(f"Unknown ODE solver {solver!r}; this scheduler has {', '.join(SOLVERS)}.")
        check_transport(path_type, prediction)
        refuse_discrete_spacing(timestep_spacing)
        self.init_noise_sigma = 1.0  # SiT starts from unit Gaussian noise at t0
        self.timesteps = torch.empty(0)
        self.grid = torch.empty(0)
        self._index = 0
        self._start: tuple[torch.Tensor, torch.Tensor] | None = None  # Heun: (x, v) at the step's start

    def set_timesteps(self, num_inference_steps: int, *args, **kwargs) -> None:
        """``num_inference_steps`` steps on SiT's float32 ``linspace`` grid from t0 to t1."""
        self.grid = torch.linspace(self.config.t0, self.config.t1, num_inference_steps + 1)
        starts, dts = self.grid[:-1], self.grid[1:] - self.grid[:-1]
        if self.config.solver == "euler":
            self.timesteps = starts
        else:  # torchdiffeq's rk2 step evaluates at t0 + dt * 1.0, which float rounding may set apart from t1
            self.timesteps = torch.stack([starts, starts + dts * 1.0], dim=1).flatten()
        self._index, self._start = 0, None

    def scale_model_input(self, sample: torch.Tensor, timestep=None) -> torch.Tensor:
        return sample  # the model reads x_t as it is

    def save_pretrained(self, save_directory, **kwargs) -> None:
        self.save_config(save_directory)

    def step(self, model_output: torch.Tensor, timestep, sample: torch.Tensor, *args, **kwargs) -> FlowStepOutput:
        """One model evaluation's update: an Euler step, or half of a Heun step."""
        per_step = 1 if self.config.solver == "euler" else 2
        step, stage = divmod(self._index, per_step)
        dt = self.grid[step + 1] - self.grid[step]
        drift = ode_drift(self.config, model_output, sample, float(self.timesteps[self._index]))
        self._index += 1
        if self.config.solver == "euler":
            return FlowStepOutput(sample + dt * drift)
        if stage == 0:  # the predictor: where the second drift is read
            self._start = (sample, drift)
            return FlowStepOutput(sample + dt * drift)
        x, k1 = self._start
        return FlowStepOutput(x + dt * (k1 * 0.5 + drift * 0.5))
