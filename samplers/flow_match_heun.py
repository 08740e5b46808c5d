"""diffusers' FlowMatchHeunDiscreteScheduler on Linear-path flow models (SiT, REPA): 2 evaluations a step."""

from samplers.base import Sampler
from samplers.flow_match import FlowMatchHeun

SAMPLER = Sampler(
    name="flow_match_heun",
    label="Flow-match Heun (diffusers)",
    description="diffusers' flow-matching Heun from sigma = 1 to 0; n steps cost 2n - 1 evaluations (the last: Euler).",
    scheduler_class=FlowMatchHeun,
    nfe_per_step=2,
    default_steps=25,
    paper="Karras et al. 2022, EDM; Esser et al. 2024, SD3 (shift)",
    families=("sit", "repa"),
    noted_options=("shift",),
)
