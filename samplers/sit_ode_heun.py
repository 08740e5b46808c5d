"""SiT's ODE sampler with torchdiffeq's fixed-grid Heun method, "heun2" (Ma et al. 2024, ``sample_ode``)."""

from samplers.base import Sampler
from samplers.flow import SiTFlowScheduler

SAMPLER = Sampler(
    name="sit_ode_heun",
    label="SiT ODE Heun",
    description="Heun steps on SiT's flow ODE (torchdiffeq's heun2); 2 model evaluations per step.",
    scheduler_class=SiTFlowScheduler,
    overrides={"solver": "heun2"},
    nfe_per_step=2,
    default_steps=25,
    paper="Ma et al. 2024, SiT",
    families=("sit",),
)
