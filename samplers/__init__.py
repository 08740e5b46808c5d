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
from importlib import import_module
from importlib.metadata import entry_points

from samplers.base import Sampler, SchedulerContract, family_label, missing_methods
from samplers.variants import make_variant, split_variant

ENTRY_POINT_GROUP = "dit_demo.samplers"
# the built-in samplers, one module each, in the order the UI lists them
BUILT_IN = (
    "ddpm",
    "ddpm_fixed",
    "ddim",
    "dpmpp_2m",
    "dpmpp_2m_karras",
    "dpmpp_3m",
    "dpmpp_2m_sde",
    "dpmpp_2m_sde_karras",
    "euler",
    "euler_ancestral",
    "heun",
    "unipc",
    "sit_ode_euler",
    "sit_ode_heun",
    "sit_ode_dopri5",
    "sit_sde_euler",
    "sit_sde_heun",
    "flow_match_euler",
    "flow_match_heun",
    "repa_euler",
    "repa_euler_maruyama",
)
# names the built-ins had before they matched their algorithm (k-diffusion's and A1111's "DPM++ SDE" is
# another one): still accepted wherever a name is typed or read from a PNG, and spelled anew
ALIASES = {"dpmpp_sde": "dpmpp_2m_sde", "dpmpp_sde_karras": "dpmpp_2m_sde_karras", "euler_a": "euler_ancestral"}
_REGISTRY: dict[str, Sampler] = {}
_plugins_loaded = False
_VARIANTS: dict[tuple[str, str], tuple[Sampler, Sampler]] = {}  # (name, options) -> (base it was built from, variant)

__all__ = [
    "Sampler",
    "SchedulerContract",
    "register",
    "unregister",
    "get",
    "canonical_name",
    "names",
    "all_samplers",
    "for_family",
    "check_family",
    "load_plugins",
    "ENTRY_POINT_GROUP",
]


def register(sampler: Sampler, replace: bool = False) -> Sampler:
    """Add ``sampler`` to the registry, after checking its scheduler class keeps the contract
    (:class:`SchedulerContract`): a clear error names what is missing."""
    if not isinstance(sampler, Sampler):
        raise TypeError(f"register() takes a samplers.Sampler, got {type(sampler).__name__}")
    if missing := missing_methods(sampler.scheduler_class):
        raise TypeError(
            f"Sampler {sampler.name!r}: its scheduler class {sampler.scheduler_class.__name__} has no "
            f"{', '.join(missing)}; a sampler's scheduler needs {', '.join(SchedulerContract.__annotations__)} "
            "and the methods from_config, set_timesteps, scale_model_input and step (samplers/base.py)."
        )
    if not isinstance(sampler.families, tuple) or not all(isinstance(f, str) for f in sampler.families):
        raise TypeError(f"Sampler {sampler.name!r}: families is a tuple of model family names, like ('dit',).")
    if sampler.name in _REGISTRY and not replace:
        raise ValueError(f"A sampler named {sampler.name!r} is already registered; pass replace=True to override it.")
    _REGISTRY[sampler.name] = sampler
    return sampler


def unregister(name: str) -> None:
    """Take ``name`` out of the registry (a plugin's tests clean up with it); built-ins cannot be removed."""
    if name in BUILT_IN_NAMES:
        raise ValueError(f"{name!r} is a built-in sampler; only added samplers can be unregistered.")
    _REGISTRY.pop(name, None)


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
    """A registered sampler by name, or a variant of one: ``dpmpp_2m[karras=true]`` (``variants.py``)."""
    load_plugins()
    base, options = split_variant(name) if isinstance(name, str) else (name, None)
    base = ALIASES.get(base, base) if base not in _REGISTRY else base
    if base not in _REGISTRY:
        raise ValueError(f"Unknown sampler {base!r}; available: {', '.join(_REGISTRY)}.")
    if options is None:
        return _REGISTRY[base]
    key = (base, options)
    cached = _VARIANTS.get(key)
    if cached is None or cached[0] is not _REGISTRY[base]:  # built from the sampler registered now
        if len(_VARIANTS) >= 256:
            _VARIANTS.clear()
        cached = _VARIANTS[key] = (_REGISTRY[base], make_variant(_REGISTRY[base], options))
    return cached[1]


def canonical_name(name: str) -> str:
    """``name`` as the registry spells it now (an old name replaced, a variant's options kept); a name that
    is no sampler comes back as it is, for the check that reports it."""
    base, bracket, rest = name.partition("[") if isinstance(name, str) else (name, "", "")
    return f"{ALIASES[base]}{bracket}{rest}" if base in ALIASES and base not in _REGISTRY else name


def names() -> list[str]:
    load_plugins()
    return list(_REGISTRY)


def all_samplers() -> list[Sampler]:
    load_plugins()
    return list(_REGISTRY.values())


def for_family(family: str) -> list[Sampler]:
    """The registered samplers that can drive a model of ``family``, in registry order (what pickers offer)."""
    return [s for s in all_samplers() if family in s.families]


def check_family(sampler: Sampler, family: str) -> Sampler:
    """``sampler`` if it drives ``family`` models, else a ``ValueError``: one sentence naming both and what fits."""
    if family in sampler.families:
        return sampler
    fitting = ", ".join(s.name for s in for_family(family)) or "none registered"
    raise ValueError(
        f"Sampler {sampler.name!r} drives {' and '.join(sampler.families) or 'no'} models; the loaded model "
        f"is a {family_label(family)} model: choose from {fitting}."
    )


for _module in BUILT_IN:
    register(import_module(f"samplers.{_module}").SAMPLER)
BUILT_IN_NAMES = frozenset(_REGISTRY)
