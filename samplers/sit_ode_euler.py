"""SiT's ODE sampler with torchdiffeq's fixed-grid Euler method (Ma et al. 2024, ``sample_ode``)."""

from samplers.base import Sampler
from samplers.flow import SiTFlowScheduler

SAMPLER = Sampler(
    name="sit_ode_euler",
    label="SiT ODE Euler",
    description="Euler steps on SiT's flow ODE from noise (t = 0) to data (t = 1); n steps = SiT's num_steps n + 1.",
    scheduler_class=SiTFlowScheduler,
    overrides={"solver": "euler"},
    default_steps=50,
    paper="Ma et al. 2024, SiT",
    families=("sit",),
)
