"""The app's current model: one loaded bundle, switched under a lock among an allowlist; and the extra
models a comparison's model axis uses, kept in a cache beside it (``model_cache.py``)."""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence

from dit_demo.app.model_cache import ModelCache, budget_from_env
from dit_demo.runtime.bundle import DiTBundle
from dit_demo.runtime.checkpoints import EMBEDDED_SIT_MODEL
from dit_demo.runtime.levers import Levers
from dit_demo.runtime.loader import EMBEDDED_MODEL, HUB_MODELS, ModelLoadError, load_bundle
from dit_demo.runtime.model_copies import ModelCopies

EMBEDDED_NAME = "embedded (Fashion-MNIST)"
EMBEDDED_SIT_NAME = "embedded SiT (Fashion-MNIST)"  # offered where its weights are (python -m dit_demo.train sit)
# what the loader calls the models the box names in words
_LOADER_NAMES = {EMBEDDED_NAME: None, EMBEDDED_SIT_NAME: "embedded-sit"}


def allowed_models(*extra: str | None) -> list[str]:
    """The models the box offers: the embedded one, the hub's, and each of ``extra`` (folders) not among them."""
    names = [
        EMBEDDED_NAME,
        *([EMBEDDED_SIT_NAME] if (EMBEDDED_SIT_MODEL / "model_index.json").is_file() else []),
        *HUB_MODELS,
    ]
    for name in extra:
        if name and name not in names and str(name) != str(EMBEDDED_MODEL):
            names.append(str(name))
    return names


class ModelSlot:
    def __init__(
        self,
        device: str | None = None,
        dtype: str | None = None,
        allowed: list[str] | None = None,
        cache_bytes: int | None = None,
    ):
        self.device, self.dtype = device, dtype
        self.allowed = allowed or allowed_models()
        self.bundle: DiTBundle | None = None
        self.name: str | None = None
        self._copies: ModelCopies | None = None
        self._lock = threading.Lock()
        # extra models for a comparison's model axis; the budget: DIT_MODEL_CACHE_GB unless given
        self.extras = ModelCache(self._load_named, budget_from_env() if cache_bytes is None else cache_bytes)

    def load(self, name: str) -> DiTBundle:
        """Load ``name`` and make it current (taken from the extra models when kept there); on any failure the
        current model stays."""
        self._check_allowed(name)
        with self._lock:
            if name == self.name and self.bundle is not None:
                return self.bundle
            bundle = self.extras.take(name) or self._load_named(name)
            self.bundle, self.name, self._copies = bundle, name, ModelCopies(bundle)
            return bundle

    def models_for(self, names: Sequence[str]) -> tuple[ModelCopies | dict[str, ModelCopies], list[str]]:
        """What a comparison runs on: the current model's copies when ``names`` is empty, else each named
        model's (the current one's own, the others kept in the cache, loaded on first use), and the models
        the cache dropped to stay within its budget. Every name is checked before any model loads."""
        for name in names:
            self._check_allowed(name)
        if not names:
            return self.copies(), []
        current, models, dropped = self.copies(), {}, []
        for name in names:
            if name == self.name:
                models[name] = current
                continue
            models[name], gone = self.extras.get(name, needed=names)
            dropped += gone
        return models, dropped

    def _check_allowed(self, name) -> None:
        if not isinstance(name, str) or name not in self.allowed:
            raise ValueError(f"Model {str(name)[:80]!r} is not offered here; choose one of: {', '.join(self.allowed)}.")

    def _load_named(self, name: str) -> DiTBundle:
        try:
            return load_bundle(_LOADER_NAMES.get(name, name), self.device, self.dtype)
        except FileNotFoundError:
            raise
        except OSError as exc:
            # the loader turns read failures into ModelLoadError; a stray OSError (permissions, a full
            # disk while downloading) must reach the UI as a message too, not as a generic error
            reason = " ".join(str(exc).split()) or type(exc).__name__
            raise ModelLoadError(f"Could not load {name}: {reason}. The current model stays loaded.") from None

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


def families_of(models: ModelCopies | dict[str, ModelCopies]) -> dict[str, str] | None:
    """Each named model's family, for a comparison's model axis (None: the loaded model alone)."""
    if not isinstance(models, dict):
        return None
    return {name: copies.base.parameterization.family for name, copies in models.items()}


def default_model() -> str:
    """DIT_MODEL if set; on Hugging Face Spaces the paper's model; else the embedded one."""
    if os.environ.get("DIT_MODEL"):
        return os.environ["DIT_MODEL"]
    return HUB_MODELS[0] if os.environ.get("SPACE_ID") else EMBEDDED_NAME
