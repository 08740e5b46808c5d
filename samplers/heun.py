"""Heun's second-order method (Karras et al. 2022, Algorithm 1): two evaluations per step."""

from diffusers import HeunDiscreteScheduler

from samplers.base import Sampler

SAMPLER = Sampler(
    name="heun",
    label="Heun",
    description="Second-order predictor-corrector ODE solver; 2 model evaluations per step.",
    scheduler_class=HeunDiscreteScheduler,
    nfe_per_step=2,
    default_steps=25,
    paper="Karras et al. 2022, EDM",
)
