"""DDIM (Song et al. 2020, Denoising Diffusion Implicit Models): deterministic at eta = 0."""

from diffusers import DDIMScheduler

from samplers.base import Sampler

SAMPLER = Sampler(
    name="ddim",
    label="DDIM",
    description="Deterministic implicit sampler (eta = 0); DiT's FID 2.32 at 50 steps.",
    scheduler_class=DDIMScheduler,
    step_kwargs={"eta": 0.0},
    default_steps=50,
    paper="Song et al. 2020, DDIM",
)

SAMPLER_ETA1 = Sampler(
    name="ddim_eta1",
    label="DDIM (eta = 1)",
    description="DDIM with full per-step noise (eta = 1): DDPM-like ancestral sampling, fixed variance.",
    scheduler_class=DDIMScheduler,
    step_kwargs={"eta": 1.0},
    stochastic=True,
    default_steps=50,
    paper="Song et al. 2020, DDIM",
)
