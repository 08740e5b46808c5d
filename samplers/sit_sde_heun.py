"""SiT's SDE sampler with stochastic Heun steps and its last step (Ma et al. 2024, ``sample_sde``)."""

from samplers.base import Sampler
from samplers.flow_sde import SiTSDEScheduler

SAMPLER = Sampler(
    name="sit_sde_heun",
    label="SiT SDE Heun",
    description=(
        "Heun steps on SiT's reverse SDE, each from the state after its noise; 2 model evaluations per step, "
        "plus 1 for SiT's noise-free last step."
    ),
    scheduler_class=SiTSDEScheduler,
    overrides={"solver": "Heun"},
    nfe_per_step=2,
    stochastic=True,
    default_steps=25,
    paper="Ma et al. 2024, SiT",
    families=("sit",),
    noted_options=("diffusion", "diffusion_norm", "last_step", "last_step_size"),
)
