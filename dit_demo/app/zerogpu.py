"""Hugging Face Spaces' ZeroGPU: the model events hold a GPU, each for as long as its own request needs.

ZeroGPU lends a GPU per call of a function wrapped in ``spaces.GPU`` and schedules by the duration the
call asks for: a short request that asks for little gets its slot sooner, and one that asks for too
little is cut off. So each event asks for its request's estimated cost (the same estimate the
per-request limit uses), with a margin, never below ``FLOOR_SECONDS`` nor above the Space's cap.
Off ZeroGPU ``spaces.GPU`` returns the function unchanged, so the wrapping costs nothing there.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

log = logging.getLogger(__name__)

# the first call of a lane also moves the weights in and builds schedulers: a few seconds at most
FLOOR_SECONDS = 10
MARGIN = 1.5  # the estimate is measured on this hardware, but previews and PNG saving come on top
CAP_ENV = "DIT_GPU_MAX_SECONDS"
DEFAULT_CAP_SECONDS = 120  # what a ZeroGPU Space may ask for one call without a PRO account


def gpu_cap() -> int:
    """The longest GPU slot one call may ask for: $DIT_GPU_MAX_SECONDS, else ZeroGPU's default cap."""
    try:
        return max(FLOOR_SECONDS, int(float(os.environ.get(CAP_ENV, DEFAULT_CAP_SECONDS))))
    except ValueError:
        log.warning("%s=%r is not a number of seconds; using %d", CAP_ENV, os.environ[CAP_ENV], DEFAULT_CAP_SECONDS)
        return DEFAULT_CAP_SECONDS


def gpu_seconds(estimate: float | None) -> int:
    """The GPU slot for a request estimated at ``estimate`` seconds (None: not known yet, ask for the cap)."""
    cap = gpu_cap()
    if estimate is None:
        return cap
    return int(min(cap, max(FLOOR_SECONDS, MARGIN * estimate + 1)))


def gpu_event(handler: Callable, estimate: Callable[..., float | None]) -> Callable:
    """``handler`` as ZeroGPU runs it: wrapped in ``spaces.GPU`` whose duration comes from
    ``estimate``, called with the handler's own arguments. A request that ``estimate`` refuses
    (``ValueError``) asks for the floor: the handler refuses it at once, with the same message."""
    try:
        import spaces
    except ImportError:  # not on Spaces: nothing to ask for
        return handler

    def duration(*args, **kwargs) -> int:
        try:
            return gpu_seconds(estimate(*args, **kwargs))
        except ValueError:
            return FLOOR_SECONDS

    return spaces.GPU(handler, duration=duration)
