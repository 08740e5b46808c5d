"""SiT checkpoints (willisma/SiT's train.py) as the DiT import reads them: which family a checkpoint is, the
transport it was trained with, checked against what this version samples, and its flow scheduler.

SiT's ``models.py`` keeps DiT's key layout and sizes ("SiT-XL/2" is DiT-XL/2's network), and its ``train.py``
saves ``{"model", "ema", "opt", "args"}`` as DiT's does, adding the transport to ``args``: ``path_type``
("Linear", "GVP", "VP") and ``prediction`` ("velocity", "score", "noise").
"""

from __future__ import annotations

import argparse

from dit_demo.runtime.parameterization import DEFAULT_FAMILY, SIT_FAMILY, SIT_SUPPORTED
from samplers.flow import SiTFlowScheduler

FAMILIES = (DEFAULT_FAMILY, SIT_FAMILY)
# SiT's time: t = 0 is noise, t = 1 data; for a velocity model on the Linear path SiT's check_interval
# integrates the whole of [0, 1] (sample_eps is 0), where the other transports stop short of an end
SIT_TIME = "t in [0, 1], 0 = noise, 1 = data; x_t = t x_data + (1 - t) noise; v = x_data - noise"


def checkpoint_family(flag: str | None, args: argparse.Namespace | None) -> str:
    """The family ``--family`` names, else SiT's where train.py's args carry a transport, else DiT's."""
    if flag is not None:
        if flag not in FAMILIES:
            raise ValueError(f"Unknown model family {flag!r}; import knows {', '.join(FAMILIES)}.")
        return flag
    has_transport = args is not None and any(hasattr(args, key) for key in ("path_type", "prediction"))
    return SIT_FAMILY if has_transport else DEFAULT_FAMILY


def sit_transport(args: argparse.Namespace | None) -> dict:
    """The transport a SiT checkpoint was trained with (SiT's defaults where its args say nothing), if
    this version samples it; else a ``ValueError`` naming what it does."""
    path_type = getattr(args, "path_type", None) or "Linear"
    prediction = getattr(args, "prediction", None) or "velocity"
    if (path_type, prediction) not in SIT_SUPPORTED:
        supported = ", ".join(f"path_type={p} with prediction={q}" for p, q in SIT_SUPPORTED)
        raise ValueError(
            f"This checkpoint was trained with path_type={path_type}, prediction={prediction}, which this version "
            f"cannot sample yet; it imports SiT checkpoints of {supported} (SiT's default)."
        )
    return {"path_type": path_type, "prediction": prediction, "t0": 0.0, "t1": 1.0, "time": SIT_TIME}


def sit_scheduler(transport: dict) -> SiTFlowScheduler:
    """The scheduler config a SiT folder carries: its transport and SiT's ODE interval."""
    return SiTFlowScheduler(
        path_type=transport["path_type"], prediction=transport["prediction"], t0=transport["t0"], t1=transport["t1"]
    )
