"""DPM-Solver++(2M) on the Karras et al. (2022) noise levels instead of evenly spaced timesteps."""

from diffusers import DPMSolverMultistepScheduler

from samplers.base import Sampler

SAMPLER = Sampler(
    name="dpmpp_2m_karras",
    label="DPM-Solver++ 2M Karras",
    description="DPM-Solver++ 2M with steps packed towards low noise (rho = 7); best at 10-25 steps.",
    scheduler_class=DPMSolverMultistepScheduler,
    # Karras spacing spends more of a small step budget where the image's detail is decided;
    # the timestep spacing option is then unused (the sigmas fix the grid)
    overrides={"algorithm_type": "dpmsolver++", "solver_order": 2, "use_karras_sigmas": True},
    default_steps=20,
    paper="Lu et al. 2022, DPM-Solver++; Karras et al. 2022, EDM",
)
