"""DDPM with the learned variance: DiT's own sampler (Ho et al. 2020; Nichol & Dhariwal 2021)."""

from diffusers import DDPMScheduler

from samplers.base import Sampler

SAMPLER = Sampler(
    name="ddpm",
    label="DDPM (learned variance)",
    description="Ancestral sampling with the model's learned variance; the DiT paper's sampler (250 steps).",
    scheduler_class=DDPMScheduler,
    stochastic=True,
    uses_variance=True,  # variance_type="learned_range" reads the 4 extra output channels
    default_steps=250,
    paper="Nichol & Dhariwal 2021, Improved DDPM",
)
