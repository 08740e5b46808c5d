"""The sampler registry: built-ins plus third-party plugins from the ``dit_demo.samplers`` group.

A plugin package exposes, in its ``pyproject.toml``::

    [project.entry-points."dit_demo.samplers"]
    my_sampler = "my_package.my_module:SAMPLER"

where the object is a :class:`Sampler` (or a list of them, or a function returning either).
Plugins can also call :func:`register` at import time.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from importlib.metadata import entry_points

from samplers import (
    ddim,
    ddpm,
    ddpm_fixed,
    dpmpp_2m,
    dpmpp_2m_karras,
    dpmpp_3m,
    dpmpp_sde,
    dpmpp_sde_karras,
    euler,
    euler_ancestral,
    heun,
    unipc,
)
from samplers.base import Sampler

ENTRY_POINT_GROUP = "dit_demo.samplers"
_REGISTRY: dict[str, Sampler] = {}
_plugins_loaded = False

__all__ = ["Sampler", "register", "get", "names", "all_samplers", "load_plugins", "ENTRY_POINT_GROUP"]


def register(sampler: Sampler, replace: bool = False) -> Sampler:
    if not isinstance(sampler, Sampler):
        raise TypeError(f"register() takes a samplers.Sampler, got {type(sampler).__name__}")
    if sampler.name in _REGISTRY and not replace:
        raise ValueError(f"A sampler named {sampler.name!r} is already registered; pass replace=True to override it.")
    _REGISTRY[sampler.name] = sampler
    return sampler


def _as_samplers(obj) -> Iterable[Sampler]:
    if callable(obj) and not isinstance(obj, Sampler):
        obj = obj()
    return obj if isinstance(obj, (list, tuple)) else [obj]


def load_plugins(force: bool = False) -> None:
    """Register every sampler advertised in the entry-point group (once; ``force`` rescans)."""
    global _plugins_loaded
    if _plugins_loaded and not force:
        return
    _plugins_loaded = True
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            for sampler in _as_samplers(ep.load()):
                if _REGISTRY.get(sampler.name) is not sampler:
                    register(sampler)
        except Exception as exc:  # a broken plugin must not take the app down
            warnings.warn(f"Skipping sampler plugin {ep.name!r} ({ep.value}): {exc}", stacklevel=2)


def get(name: str) -> Sampler:
    load_plugins()
    if name not in _REGISTRY:
        raise ValueError(f"Unknown sampler {name!r}; available: {', '.join(_REGISTRY)}.")
    return _REGISTRY[name]


def names() -> list[str]:
    load_plugins()
    return list(_REGISTRY)


def all_samplers() -> list[Sampler]:
    load_plugins()
    return list(_REGISTRY.values())


for _module in (
    ddpm,
    ddpm_fixed,
    ddim,
    dpmpp_2m,
    dpmpp_2m_karras,
    dpmpp_3m,
    dpmpp_sde,
    dpmpp_sde_karras,
    euler,
    euler_ancestral,
    heun,
    unipc,
):
    register(_module.SAMPLER)
