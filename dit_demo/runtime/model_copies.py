"""A model under model levers: converted copies (bf16, int8, compiled), each made once and kept."""

from __future__ import annotations

import threading

import torch

from dit_demo.runtime.bundle import DiTBundle
from dit_demo.runtime.levers import Levers, ModelLevers, with_model_levers
from dit_demo.runtime.loader import load_bundle


def load_with_levers(model: str | None, device: torch.device | str, levers: Levers) -> DiTBundle:
    """The model loaded for these levers: int8 is quantized from fp32 weights; another dtype is
    loaded directly, without a copy."""
    bundle = load_bundle(model, device, "fp32" if levers.quantize else levers.dtype)
    return with_model_levers(bundle, levers, in_place=True)


class ModelCopies:
    """One loaded model and its copies under model levers (bf16, int8), each made on first use and
    kept, so a server or a comparison with a preset axis converts the weights once."""

    def __init__(self, bundle: DiTBundle):
        self.base = bundle
        self._made: dict[ModelLevers, DiTBundle] = {}
        self._lock = threading.Lock()

    def get(self, levers: Levers | ModelLevers) -> DiTBundle:
        key = levers.model if isinstance(levers, Levers) else levers  # every model lever, by construction
        if key == ModelLevers():
            return self.base
        with self._lock:
            if key not in self._made:
                self._made[key] = with_model_levers(self.base, levers)
            return self._made[key]
