"""diffusers' flow-matching schedulers (Euler, Heun, with SD3's ``shift``) driving Linear-path flow models.

diffusers' convention: sigma runs from 1 (noise) to 0 (data), x = (1 - sigma) x_data + sigma noise, the model
predicts noise - x_data and reads the timestep sigma * num_train_timesteps. SiT's and REPA's Linear paths are
the same interpolant in their own time: SiT's t = 1 - sigma (0 noise, 1 data), REPA's t = sigma. A thin adapter
owns one diffusers scheduler and speaks the family's language to the engine: its ``timesteps`` are the family's
times (what ``parameterization.model_time`` expects) and ``step`` takes the family's velocity dx/dt.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from diffusers import FlowMatchEulerDiscreteScheduler, FlowMatchHeunDiscreteScheduler
from diffusers.configuration_utils import ConfigMixin, register_to_config

# family -> whether its time runs against diffusers' sigma (t = 1 - sigma) rather than with it (t = sigma);
# the velocity dx/dt is diffusers' output dx/dsigma, negated where the time runs against sigma
REVERSED_TIME = {"sit": True, "repa": False}
# SiT writes its Linear path "Linear", REPA "linear"; SiT names the velocity "velocity", REPA "v"
LINEAR_PATH = "linear"
VELOCITY = ("velocity", "v")


@dataclass
class FlowMatchStepOutput:
    # no pred_original_sample: the parameterization gives the data estimate, and the engine reads this one only
    # for stochastic samplers, which these are not
    prev_sample: torch.Tensor


class FlowMatchAdapter(ConfigMixin):
    """One diffusers flow-matching scheduler in a model family's time and velocity sign (a subclass names which)."""

    config_name = "scheduler_config.json"
    diffusers_class: type

    def _own(self, options: dict, family: str, path_type: str, prediction: str, timestep_spacing: str) -> None:
        """Check what diffusers would take silently, then build the diffusers scheduler with ``options``."""
        if family not in REVERSED_TIME:
            raise ValueError(
                f"diffusers' flow-matching samplers know the time of {' and '.join(REVERSED_TIME)} models; "
                f"the model's family is {family!r}."
            )
        if str(path_type).lower() != LINEAR_PATH:
            raise ValueError(
                f"diffusers' flow-matching samplers follow the Linear path x = (1 - sigma) x_data + sigma noise, "
                f"and this model was trained on the {path_type} path: choose one of its family's own samplers."
            )
        if prediction not in VELOCITY:
            raise ValueError(
                f"diffusers' flow-matching samplers step on a velocity, and this model predicts the {prediction}: "
                f"choose one of its family's own samplers."
            )
        # diffusers' grid runs from pure noise, the "trailing" grid's meaning, and has no other spacing
        if timestep_spacing != "trailing":
            raise ValueError(
                f"diffusers' flow-matching samplers run on their own grid from sigma = 1; the step grid "
                f"{timestep_spacing!r} is for discrete-time (DiT) samplers: leave the spacing out."
            )
        shift = options["shift"]
        if not (isinstance(shift, (int, float)) and math.isfinite(shift) and shift > 0):
            raise ValueError(f"shift must be a positive number (1 leaves the grid as it is, SD3 uses 3), got {shift}.")
        self.inner = self.diffusers_class(**options)
        self.reversed_time = REVERSED_TIME[family]
        self.init_noise_sigma = 1.0  # flow models start from unit Gaussian noise at sigma = 1
        self.timesteps = torch.empty(0)
        self._index = 0

    def set_timesteps(self, num_inference_steps: int, *args, **kwargs) -> None:
        """diffusers' grid for ``num_inference_steps`` steps, one entry per model evaluation, in the family's time."""
        self.inner.set_timesteps(num_inference_steps)
        self.inner.set_begin_index(0)  # stepped in order: no looking up repeated timesteps (Heun's)
        # the sigma each evaluation reads; diffusers hands the model the same sigma times num_train_timesteps
        sigmas = self.inner.sigmas[: len(self.inner.timesteps)]
        self.timesteps = 1.0 - sigmas if self.reversed_time else sigmas.clone()
        self._index = 0

    def scale_model_input(self, sample: torch.Tensor, timestep=None) -> torch.Tensor:
        return sample  # the model reads x as it is

    def save_pretrained(self, save_directory, **kwargs) -> None:
        self.save_config(save_directory)

    def step(self, model_output: torch.Tensor, timestep, sample: torch.Tensor) -> FlowMatchStepOutput:
        """One model evaluation's update, from the family's velocity at this entry of ``timesteps``."""
        noise_minus_data = -model_output if self.reversed_time else model_output
        own_timestep = self.inner.timesteps[self._index]
        self._index += 1
        return FlowMatchStepOutput(self.inner.step(noise_minus_data, own_timestep, sample).prev_sample)


class FlowMatchEuler(FlowMatchAdapter):
    """``FlowMatchEulerDiscreteScheduler``: x += (sigma_next - sigma) (noise - x_data), one evaluation a step.

    Its options are diffusers' own that keep the sampler an ODE solver on a fixed grid (no dynamic shifting,
    which needs the pipeline's ``mu``; no stochastic sampling; no inverted sigmas).
    """

    diffusers_class = FlowMatchEulerDiscreteScheduler

    @register_to_config
    def __init__(
        self,
        shift: float = 1.0,
        shift_terminal: float | None = None,
        use_karras_sigmas: bool = False,
        use_exponential_sigmas: bool = False,
        use_beta_sigmas: bool = False,
        num_train_timesteps: int = 1000,
        timestep_spacing: str = "trailing",
        *,
        family: str = "sit",  # a config without one (the variants' probe) reads SiT's time
        path_type: str = "Linear",
        prediction: str = "velocity",
    ):
        # diffusers ignores a shift_terminal of 0 and divides by zero at 1
        if shift_terminal is not None and not 0 < shift_terminal < 1:
            raise ValueError(f"shift_terminal is the last sigma before 0, between 0 and 1; got {shift_terminal}.")
        options = {
            "shift": shift,
            "shift_terminal": shift_terminal,
            "use_karras_sigmas": use_karras_sigmas,
            "use_exponential_sigmas": use_exponential_sigmas,
            "use_beta_sigmas": use_beta_sigmas,
            "num_train_timesteps": num_train_timesteps,
        }
        self._own(options, family, path_type, prediction, timestep_spacing)


class FlowMatchHeun(FlowMatchAdapter):
    """``FlowMatchHeunDiscreteScheduler``: Heun steps on diffusers' grid, the last a plain Euler step to sigma = 0."""

    diffusers_class = FlowMatchHeunDiscreteScheduler

    @register_to_config
    def __init__(
        self,
        shift: float = 1.0,
        num_train_timesteps: int = 1000,
        timestep_spacing: str = "trailing",
        *,
        family: str = "sit",  # a config without one (the variants' probe) reads SiT's time
        path_type: str = "Linear",
        prediction: str = "velocity",
    ):
        options = {"shift": shift, "num_train_timesteps": num_train_timesteps}
        self._own(options, family, path_type, prediction, timestep_spacing)
