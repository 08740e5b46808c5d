"""SiT's SDE sampler with Euler-Maruyama steps and its last step (Ma et al. 2024, ``sample_sde``)."""

from samplers.base import Sampler
from samplers.flow_sde import SiTSDEScheduler

SAMPLER = Sampler(
    name="sit_sde_euler",
    label="SiT SDE Euler-Maruyama",
    description=(
        "Euler-Maruyama steps on SiT's reverse SDE (diffusion w(t) = sigma_t by default), then SiT's noise-free "
        "last step; n steps = SiT's num_steps n + 1, plus 1 evaluation for the last step."
    ),
    scheduler_class=SiTSDEScheduler,
    overrides={"solver": "Euler"},
    stochastic=True,
    default_steps=50,
    paper="Ma et al. 2024, SiT",
    families=("sit",),
    noted_options=("diffusion", "diffusion_norm", "last_step", "last_step_size"),
)
