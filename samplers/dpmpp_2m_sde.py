"""SDE-DPM-Solver++(2M) (Lu et al. 2022): the multistep solver for the reverse SDE."""

from diffusers import DPMSolverMultistepScheduler

from samplers.base import Sampler

SAMPLER = Sampler(
    name="dpmpp_2m_sde",
    label="DPM-Solver++ 2M SDE",
    description="Stochastic second-order multistep solver; injects fresh noise each step.",
    scheduler_class=DPMSolverMultistepScheduler,
    overrides={"algorithm_type": "sde-dpmsolver++", "solver_order": 2},
    stochastic=True,
    default_steps=25,
    paper="Lu et al. 2022, DPM-Solver++",
)
