"""The app's current model: one loaded bundle, switched under a lock among an allowlist."""

from __future__ import annotations

import os
import threading

from dit_demo.runtime.bundle import DiTBundle
from dit_demo.runtime.levers import Levers
from dit_demo.runtime.loader import EMBEDDED_MODEL, HUB_MODELS, ModelLoadError, load_bundle
from dit_demo.runtime.model_copies import ModelCopies

EMBEDDED_NAME = "embedded (Fashion-MNIST)"


def allowed_models(extra: str | None = None) -> list[str]:
    names = [EMBEDDED_NAME, *HUB_MODELS]
    if extra and extra not in names and str(extra) != str(EMBEDDED_MODEL):
        names.append(str(extra))
    return names


class ModelSlot:
    def __init__(self, device: str | None = None, dtype: str | None = None, allowed: list[str] | None = None):
        self.device, self.dtype = device, dtype
        self.allowed = allowed or allowed_models()
        self.bundle: DiTBundle | None = None
        self.name: str | None = None
        self._copies: ModelCopies | None = None
        self._lock = threading.Lock()

    def load(self, name: str) -> DiTBundle:
        """Load ``name`` and make it current; on any failure the current model stays."""
        if name not in self.allowed:
            raise ValueError(f"Model {name!r} is not offered here; choose one of: {', '.join(self.allowed)}.")
        with self._lock:
            if name == self.name and self.bundle is not None:
                return self.bundle
            try:
                bundle = load_bundle(None if name == EMBEDDED_NAME else name, self.device, self.dtype)
            except FileNotFoundError:
                raise
            except OSError as exc:
                # the loader turns read failures into ModelLoadError; a stray OSError (permissions, a full
                # disk while downloading) must reach the UI as a message too, not as a generic error
                reason = " ".join(str(exc).split()) or type(exc).__name__
                raise ModelLoadError(f"Could not load {name}: {reason}. The current model stays loaded.") from None
            self.bundle, self.name, self._copies = bundle, name, ModelCopies(bundle)
            return bundle

    def copies(self) -> ModelCopies:
        """The current model and its copies under speed levers (int8, bf16), made when first asked for."""
        self.get()
        return self._copies

    def model_for(self, levers: Levers) -> DiTBundle:
        return self.copies().get(levers)

    def get(self) -> DiTBundle:
        if self.bundle is None:
            raise ValueError("No model is loaded yet; pick one in the Model box.")
        return self.bundle


def default_model() -> str:
    """DIT_MODEL if set; on Hugging Face Spaces the paper's model; else the embedded one."""
    if os.environ.get("DIT_MODEL"):
        return os.environ["DIT_MODEL"]
    return HUB_MODELS[0] if os.environ.get("SPACE_ID") else EMBEDDED_NAME
