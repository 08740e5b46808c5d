"""DDPM with the fixed posterior variance (Ho et al. 2020), which is DDIM with eta = 1."""

from diffusers import DDPMScheduler

from samplers.base import Sampler

SAMPLER = Sampler(
    name="ddpm_fixed",
    label="DDPM (fixed variance) / DDIM eta=1",
    description="Ancestral sampling with the posterior variance beta~_t, ignoring the learned variance.",
    scheduler_class=DDPMScheduler,
    overrides={"variance_type": "fixed_small"},
    stochastic=True,
    default_steps=250,
    paper="Ho et al. 2020, DDPM",
)
