"""DPM-Solver++(2M) (Lu et al. 2022): second-order multistep, one evaluation per step."""

from diffusers import DPMSolverMultistepScheduler

from samplers.base import Sampler

SAMPLER = Sampler(
    name="dpmpp_2m",
    label="DPM-Solver++ 2M",
    description="Second-order multistep ODE solver; strong at 10-25 steps.",
    scheduler_class=DPMSolverMultistepScheduler,
    overrides={"algorithm_type": "dpmsolver++", "solver_order": 2},
    default_steps=25,
    pipeline_exact=True,
    paper="Lu et al. 2022, DPM-Solver++",
)
