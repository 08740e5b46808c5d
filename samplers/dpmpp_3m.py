"""DPM-Solver++(3M) (Lu et al. 2022): third-order multistep, one evaluation per step."""

from diffusers import DPMSolverMultistepScheduler

from samplers.base import Sampler

SAMPLER = Sampler(
    name="dpmpp_3m",
    label="DPM-Solver++ 3M",
    description="Third-order multistep ODE solver; best at very few steps with unguided models.",
    scheduler_class=DPMSolverMultistepScheduler,
    overrides={"algorithm_type": "dpmsolver++", "solver_order": 3},
    default_steps=20,
    pipeline_exact=True,
    paper="Lu et al. 2022, DPM-Solver++",
)
