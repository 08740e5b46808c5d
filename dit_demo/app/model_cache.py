"""Extra models kept beside the current one (a comparison's model axis), within a memory budget.

Each extra model is loaded once, with its copies under speed levers (a ``ModelCopies``), and kept while the
page uses it. The budget counts the weights' bytes of the kept models (transformer and VAE, as loaded):
``DIT_MODEL_CACHE_GB`` (default 8) sets it. Past the budget the least recently used extra model is dropped
(never one the request at hand needs), and the caller says so. The current model lives in the model slot
and is never counted or dropped here.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Collection

from dit_demo.runtime.bundle import DiTBundle
from dit_demo.runtime.model_copies import ModelCopies

BUDGET_ENV = "DIT_MODEL_CACHE_GB"
DEFAULT_BUDGET_GB = 8.0


def budget_from_env() -> int:
    """The cache's budget in bytes, from DIT_MODEL_CACHE_GB (gigabytes, 0 or more)."""
    text = os.environ.get(BUDGET_ENV, "").strip()
    try:
        gigabytes = float(text) if text else DEFAULT_BUDGET_GB
    except ValueError:
        raise ValueError(f"{BUDGET_ENV} must be a number of gigabytes (0 or more), got {text[:30]!r}.") from None
    if not gigabytes >= 0:
        raise ValueError(f"{BUDGET_ENV} must be a number of gigabytes (0 or more), got {text[:30]!r}.")
    return int(gigabytes * 2**30)


def weight_bytes(bundle: DiTBundle) -> int:
    """Bytes of a loaded model's weights: its transformer's and its VAE's parameters and buffers."""
    modules = (bundle.transformer, bundle.vae)
    tensors = [t for m in modules for t in (*m.parameters(), *m.buffers())]
    return sum(t.numel() * t.element_size() for t in tensors)


def dropped_text(dropped: list[str]) -> str:
    """What a comparison's summary says when the cache dropped models to stay within its budget ("" if none)."""
    if not dropped:
        return ""
    return (
        f"Dropped from memory to stay within the model cache's budget ({BUDGET_ENV}): {', '.join(dropped)}; "
        "each loads again when asked for."
    )


class ModelCache:
    """Extra models by name, least recently used first; ``load(name)`` loads one the cache lacks."""

    def __init__(self, load: Callable[[str], DiTBundle], budget_bytes: int):
        self._load, self.budget_bytes = load, budget_bytes
        self._kept: OrderedDict[str, tuple[ModelCopies, int]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, name: str, needed: Collection[str] = ()) -> tuple[ModelCopies, list[str]]:
        """``name``'s copies (loaded on first use) and the names dropped to stay within the budget; models in
        ``needed`` (the request's) are kept even past it."""
        with self._lock:
            if name in self._kept:
                self._kept.move_to_end(name)
                return self._kept[name][0], []
            bundle = self._load(name)
            self._kept[name] = ModelCopies(bundle), weight_bytes(bundle)
            return self._kept[name][0], self._make_room({name, *needed})

    def take(self, name: str) -> DiTBundle | None:
        """``name``'s model, out of the cache (it becomes the current model), or None when it is not kept."""
        with self._lock:
            kept = self._kept.pop(name, None)
            return None if kept is None else kept[0].base

    def names(self) -> list[str]:
        """The kept models, least recently used first."""
        with self._lock:
            return list(self._kept)

    def used_bytes(self) -> int:
        with self._lock:
            return sum(size for _, size in self._kept.values())

    def _make_room(self, needed: set[str]) -> list[str]:
        dropped = []
        for name in list(self._kept):
            if sum(size for _, size in self._kept.values()) <= self.budget_bytes:
                break
            if name not in needed:
                del self._kept[name]
                dropped.append(name)
        return dropped
