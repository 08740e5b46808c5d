"""SiT's default ODE sampler: torchdiffeq's adaptive Dormand-Prince, dopri5 (Ma et al. 2024, ``sample_ode``)."""

from samplers.base import Sampler
from samplers.flow_adaptive import SiTAdaptiveScheduler

SAMPLER = Sampler(
    name="sit_ode_dopri5",
    label="SiT ODE dopri5",
    description=(
        "Adaptive Dormand-Prince on SiT's flow ODE (torchdiffeq's dopri5, atol 1e-6, rtol 1e-3): it picks its own "
        "steps, so n steps is unused and NFE is what it took; a budget counts its cap, max_nfe."
    ),
    scheduler_class=SiTAdaptiveScheduler,
    default_steps=50,  # SiT's num_steps: its output grid, which never moves a step
    paper="Ma et al. 2024, SiT; Dormand & Prince 1980",
    families=("sit",),
    noted_options=("atol", "rtol", "max_nfe"),
)
