"""Euler's method on the probability-flow ODE (Karras et al. 2022, Algorithm 1 without churn)."""

from diffusers import EulerDiscreteScheduler

from samplers.base import Sampler

SAMPLER = Sampler(
    name="euler",
    label="Euler",
    description="First-order ODE solver in sigma space; simple, needs more steps.",
    scheduler_class=EulerDiscreteScheduler,
    default_steps=50,
    paper="Karras et al. 2022, EDM",
)
