"""REPA's ODE sampler, ``euler_sampler``, with its Heun option and guidance interval (Yu et al. 2025)."""

from samplers.base import Sampler
from samplers.repa_schedulers import RepaEulerScheduler

SAMPLER = Sampler(
    name="repa_euler",
    label="REPA Euler (ODE)",
    description=(
        "REPA's Euler steps from noise (t = 1) to data (t = 0); heun=true adds its correction (2n - 1 model "
        "evaluations); guidance_low/guidance_high limit CFG to REPA's interval of t."
    ),
    scheduler_class=RepaEulerScheduler,
    default_steps=50,
    paper="Yu et al. 2025, REPA",
    families=("repa",),
    noted_options=("heun", "guidance_low", "guidance_high"),
)
