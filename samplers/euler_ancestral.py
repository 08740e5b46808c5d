"""Euler ancestral (k-diffusion's sample_euler_ancestral): Euler step + fresh noise each step."""

from diffusers import EulerAncestralDiscreteScheduler

from samplers.base import Sampler

SAMPLER = Sampler(
    name="euler_ancestral",
    label="Euler ancestral (A1111: Euler a)",
    description="Euler step down to a lower sigma, then noise back up; stochastic, forgiving.",
    scheduler_class=EulerAncestralDiscreteScheduler,
    stochastic=True,
    default_steps=50,
    paper="Karras et al. 2022 / k-diffusion",
)
