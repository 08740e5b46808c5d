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
from samplers.flow_paths import PATHS, PREDICTIONS, default_eps, sit_interval

FAMILIES = (DEFAULT_FAMILY, SIT_FAMILY)
# SiT's time: t = 0 is noise, t = 1 data; SiT's check_interval integrates a velocity ODE on the Linear and GVP paths
# over the whole of [0, 1] (sample_eps is 0), and keeps sample_eps off an end otherwise
SIT_TIME = "t in [0, 1], 0 = noise, 1 = data; x_t = alpha_t x_data + sigma_t noise"
PATH_FORMULAS = {
    "Linear": "alpha_t = t, sigma_t = 1 - t",
    "GVP": "alpha_t = sin(pi t / 2), sigma_t = cos(pi t / 2)",
    "VP": "alpha_t = exp(-(1 - t)^2 (20 - 0.1) / 4 - (1 - t) 0.1 / 2), sigma_t = sqrt(1 - alpha_t^2)",
}


def checkpoint_family(flag: str | None, args: argparse.Namespace | None) -> str:
    """The family ``--family`` names, else SiT's where train.py's args carry a transport, else DiT's."""
    if flag is not None:
        if flag not in FAMILIES:
            raise ValueError(f"Unknown model family {flag!r}; import knows {', '.join(FAMILIES)}.")
        return flag
    has_transport = args is not None and any(hasattr(args, key) for key in ("path_type", "prediction"))
    return SIT_FAMILY if has_transport else DEFAULT_FAMILY


def sit_transport(args: argparse.Namespace | None) -> dict:
    """The transport a SiT checkpoint was trained with (SiT's defaults where its args say nothing), if this version
    samples it, with SiT's sample_eps and ODE interval (``check_interval``); else a ``ValueError`` naming what it does."""
    path_type = getattr(args, "path_type", None) or "Linear"
    prediction = getattr(args, "prediction", None) or "velocity"
    if (path_type, prediction) not in SIT_SUPPORTED:
        raise ValueError(
            f"This checkpoint was trained with path_type={path_type}, prediction={prediction}, which this version "
            f"cannot sample; it imports SiT checkpoints of path_type {', '.join(PATHS)} with prediction "
            f"{', '.join(PREDICTIONS)}."
        )
    train_eps, sample_eps = getattr(args, "train_eps", None), getattr(args, "sample_eps", None)
    eps = default_eps(path_type, prediction, train_eps, sample_eps)
    t0, t1 = sit_interval(path_type, prediction, eps, sde=False)
    return {
        "path_type": path_type,
        "prediction": prediction,
        "train_eps": train_eps,
        "sample_eps": eps,
        "t0": t0,
        "t1": t1,
        "time": f"{SIT_TIME}, {PATH_FORMULAS[path_type]}; the model predicts the {prediction}",
    }


def sit_scheduler(transport: dict) -> SiTFlowScheduler:
    """The scheduler config a SiT folder carries: its transport, sample_eps (the SDE's interval) and SiT's ODE interval."""
    return SiTFlowScheduler(
        path_type=transport["path_type"],
        prediction=transport["prediction"],
        t0=transport["t0"],
        t1=transport["t1"],
        train_eps=transport["train_eps"],
        sample_eps=transport["sample_eps"],
    )
