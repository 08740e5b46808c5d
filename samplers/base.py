"""What a sampler plugin is: a recipe for a fresh diffusers scheduler plus facts about it."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

# a model's scheduler config lists keys that other scheduler classes do not take; diffusers warns
# about each on every build, which is expected here, so only its errors are shown
logging.getLogger("diffusers.configuration_utils").setLevel(logging.ERROR)

# every sampler gets these whatever the model's scheduler config says: latents are not images,
# so clipping or thresholding x0 to [-1, 1] would silently damage them
LATENT_SAFE = {"clip_sample": False, "thresholding": False}
# every sampler starts at t = T - 1 (pure noise) whatever its class's default spacing; "leading"
# (DDIM's and DDPM's default) would start DDIM-50 at t = 980 and make comparisons unfair
# (Lin et al. 2024, "Common Diffusion Noise Schedules and Sample Steps are Flawed")
DEFAULT_SPACING = {"timestep_spacing": "trailing"}


@dataclass(frozen=True)
class Sampler:
    """A sampler = a diffusers scheduler class + config overrides + metadata for the UI and tests.

    ``build`` returns a *new* scheduler each call: schedulers keep state (timesteps, multistep
    history), so one instance serves exactly one lane of one request.
    """

    name: str
    label: str
    description: str
    scheduler_class: type
    overrides: dict[str, Any] = field(default_factory=dict)
    step_kwargs: dict[str, Any] = field(default_factory=dict)
    nfe_per_step: int = 1
    stochastic: bool = False
    uses_variance: bool = False
    default_steps: int = 25
    paper: str = ""

    def build(
        self,
        scheduler_config: dict,
        num_steps: int | None = None,
        learned_variance: bool = True,
        spacing: str | None = None,
    ):
        """A fresh scheduler; ``spacing`` ("trailing", "linspace" = DiT's grid, "leading") overrides the step grid."""
        config = {k: v for k, v in scheduler_config.items() if not k.startswith("_")}
        config.update(DEFAULT_SPACING)
        config.update(LATENT_SAFE)
        # learned-variance handling is the sampler's business, not the checkpoint's
        config["variance_type"] = "learned_range" if self.reads_variance(learned_variance) else "fixed_small"
        config.update(self.overrides)
        if spacing is not None:
            config["timestep_spacing"] = spacing
        scheduler = self.scheduler_class.from_config(config)
        if num_steps is not None:
            scheduler.set_timesteps(num_steps)
        return scheduler

    def nfe(self, steps: int, scheduler_config: dict, spacing: str | None = None) -> int:
        """Transformer evaluations for ``steps`` steps (per image, before CFG doubles the batch)."""
        return len(self.build(scheduler_config, steps, spacing=spacing).timesteps)

    def reads_variance(self, learned_sigma: bool) -> bool:
        """Whether ``step`` gets the model's variance channels: the sampler wants them and the model has them."""
        return self.uses_variance and learned_sigma
