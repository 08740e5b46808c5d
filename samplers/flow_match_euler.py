"""diffusers' FlowMatchEulerDiscreteScheduler on Linear-path flow models (SiT, REPA), with SD3's ``shift``."""

from samplers.base import Sampler
from samplers.flow_match import FlowMatchEuler

SAMPLER = Sampler(
    name="flow_match_euler",
    label="Flow-match Euler (diffusers)",
    description="diffusers' flow-matching Euler from sigma = 1 to 0; shift > 1 spends more steps at high noise.",
    scheduler_class=FlowMatchEuler,
    default_steps=50,
    paper="Esser et al. 2024, SD3 (shift)",
    families=("sit", "repa"),
    noted_options=("shift", "shift_terminal", "karras"),
)
