"""REPA's SDE sampler, ``euler_maruyama_sampler``, with its guidance interval (Yu et al. 2025)."""

from samplers.base import Sampler
from samplers.repa_schedulers import RepaEulerMaruyamaScheduler

SAMPLER = Sampler(
    name="repa_euler_maruyama",
    label="REPA Euler-Maruyama (SDE)",
    description=(
        "REPA's SDE: Euler-Maruyama from t = 1 to 0.04 with diffusion 2t, then a noise-free mean step to t = 0 "
        "(n model evaluations); guidance_low/guidance_high limit CFG to REPA's interval of t."
    ),
    scheduler_class=RepaEulerMaruyamaScheduler,
    stochastic=True,
    default_steps=50,
    paper="Yu et al. 2025, REPA",
    families=("repa",),
    noted_options=("guidance_low", "guidance_high"),
)
