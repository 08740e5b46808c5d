"""SDE-DPM-Solver++(2M) on the Karras et al. (2022) noise levels."""

from diffusers import DPMSolverMultistepScheduler

from samplers.base import Sampler

SAMPLER = Sampler(
    name="dpmpp_2m_sde_karras",
    label="DPM-Solver++ 2M SDE Karras",
    description="Stochastic DPM-Solver++ 2M with steps packed towards low noise (rho = 7).",
    scheduler_class=DPMSolverMultistepScheduler,
    overrides={"algorithm_type": "sde-dpmsolver++", "solver_order": 2, "use_karras_sigmas": True},
    stochastic=True,
    default_steps=20,
    paper="Lu et al. 2022, DPM-Solver++; Karras et al. 2022, EDM",
)
