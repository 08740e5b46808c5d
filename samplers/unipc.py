"""UniPC (Zhao et al. 2023): unified predictor-corrector, one evaluation per step."""

from diffusers import UniPCMultistepScheduler

from samplers.base import Sampler

SAMPLER = Sampler(
    name="unipc",
    label="UniPC",
    description="Multistep predictor-corrector (bh2); among the best at 5-10 steps.",
    scheduler_class=UniPCMultistepScheduler,
    overrides={"predict_x0": True, "solver_type": "bh2", "solver_order": 2},
    default_steps=20,
    paper="Zhao et al. 2023, UniPC",
)
