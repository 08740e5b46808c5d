"""Speed levers of a request, and the presets that bundle them: ``exact`` (none) and ``fast``.

A lever is an option of the request, not of a sampler: it changes how the engine runs any
sampler. Each is measured for speed and quality in the README's performance section.

- ``dtype``: the arithmetic of the transformer and the VAE; bf16 where the hardware has it
  natively (CPUs with AVX-512 BF16 or AMX, GPUs). The scheduler math stays fp32.
- ``quantize="int8"``: the transformer's large linear layers in int8 (``int8.py``, CPU only).
- ``compile``: the transformer through ``torch.compile`` with static shapes, rows padded to a few
  bucket sizes (``compiled.py``); CUDA graphs on GPUs, where the eager DiT is launch-bound. Never on
  ZeroGPU, which does not support it.
- ``guidance_interval``: classifier-free guidance only at noise levels lo < sigma <= hi
  (Kynkaanniemi et al. 2024); outside it only the conditional row runs.
- ``cache_threshold``: the first-block cache (``block_cache.py``) reuses the later blocks of an
  earlier step where the first block's output changed by less than this.

The first three change the model (``with_model_levers``); the last two are fields of each lane.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

import torch
from diffusers.utils import logging as diffusers_logging

from dit_demo.runtime.bundle import DiTBundle
from dit_demo.runtime.compiled import CompiledTransformer
from dit_demo.runtime.devices import has_native_bf16, on_zerogpu, parse_dtype
from dit_demo.runtime.int8 import INT8_MIN_WEIGHTS, has_int8_kernels, quantize_int8
from dit_demo.runtime.parsing import as_float, parse_interval

# What ``fast`` takes, each lever having met the bar (Frechet distance within 5% and class accuracy
# within 1 point of exact, on the embedded model, 1000 samples; the suite's quality table in the
# README has the numbers):
# - int8 on CPUs, on the layers large enough for it to pay;
# - bf16 where the hardware has it natively and int8 is not taken (with int8, bf16 would be the VAE
#   alone, which failed the bar together with the cache on a model without int8-sized layers);
# - the compiled transformer (CUDA graphs) on GPUs, where it gives the eager results to bf16 rounding;
# - the first-block cache at 0.05 on CPUs (at 0.1 it fails); on GPUs it stays off until its speed
#   there has been measured.
# The guidance interval meets the bar only with cfg raised, a change of the request's meaning that a
# preset must not make behind the user's back, so it stays a lever to opt into.
FAST_CACHE_THRESHOLD = 0.05
_INT8_SIDE = math.isqrt(INT8_MIN_WEIGHTS)
QUANTIZE = ("int8",)
PRESETS = ("exact", "fast")


def lever(
    default,
    help: str,
    describe: Callable[[Any, Any], str],
    check: Callable[..., Any],
    choices: tuple[str, ...] | None = None,
    from_text: Callable[[str], Any] = lambda text: text,
) -> Any:
    """A lever field: its default, the help its command-line flag shows (and its ``choices``, read by
    ``from_text``), how it reads in a description (``describe(value, levers)``) and how a value is
    checked (``check(value)``, or ``check(value, device)`` for a model lever). Flags, validation, PNG
    parameters and the model-copy cache key are all made from these fields."""
    metadata = {"help": help, "describe": describe, "check": check, "choices": choices, "from_text": from_text}
    return field(default=default, metadata=metadata)


def _check_interval(value) -> tuple[float, float] | None:
    return parse_interval(value)


def _check_threshold(value) -> float:
    return as_float("Cache threshold", 0.0 if value is None else value, 0, 1)


def _describe_interval(value, _) -> str:
    return f"guidance only at {value[0]:g} < sigma <= {value[1]:g}"


class _Described:
    def describe(self) -> str:
        """The levers taken, in words (the app's status line, PNG metadata, the README's tables)."""
        parts = [f.metadata["describe"](getattr(self, f.name), self) for f in fields(self) if getattr(self, f.name)]
        return ", ".join(parts) or "no shortcuts (exact)"


@dataclass(frozen=True)
class LaneLevers(_Described):
    """The levers each lane carries (the engine applies them lane by lane); the default takes none."""

    guidance_interval: tuple[float, float] | None = lever(
        None,
        "lo,hi: guidance only at noise levels lo < sigma <= hi (Kynkaanniemi et al. 2024), e.g. 0.28,5.42",
        _describe_interval,
        _check_interval,
    )
    cache_threshold: float = lever(
        0.0,
        "first-block cache threshold (0: off)",
        lambda value, _: f"first-block cache at {value:g}",
        _check_threshold,
    )

    def checked(self) -> LaneLevers:
        """Every field checked once (``ValueError`` naming it and what is allowed)."""
        return replace(self, **{f.name: f.metadata["check"](getattr(self, f.name)) for f in fields(self)})

    def params(self) -> dict:
        """The fields that differ from their defaults, JSON-ready (PNG metadata: absent means the default)."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value != f.default:
                out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    @classmethod
    def from_params(cls, params: dict) -> LaneLevers:
        """The lane levers stored in a PNG's parameters (the keys :meth:`params` writes), checked."""
        return cls(**{f.name: params[f.name] for f in fields(cls) if params.get(f.name) is not None}).checked()


def _check_quantize(value, device) -> None:
    if value is None:
        return
    if value not in QUANTIZE:
        raise ValueError(f"Unknown quantization {value!r}; choose one of {', '.join(QUANTIZE)}.")
    if torch.device(device).type != "cpu" or not has_int8_kernels():
        raise ValueError("int8 quantization runs on CPUs only, with a torch that has its x86/fbgemm kernels.")


def _check_dtype(value, device) -> None:
    if value is not None:
        parse_dtype(value, torch.device(device))  # raises with the allowed names


def _check_compile(value, device) -> None:
    if value and on_zerogpu():
        raise ValueError("torch.compile does not run on ZeroGPU Spaces; leave the compiled transformer off.")


def _describe_dtype(value, levers) -> str:
    return f"{value} {'VAE' if levers.quantize else 'transformer and VAE'}"


@dataclass(frozen=True)
class ModelLevers(_Described):
    """The levers that change the model itself: one converted copy per distinct set (its cache key)."""

    # in the order a description reads
    quantize: str | None = lever(
        None,
        "int8 linear layers (CPU)",
        lambda value, _: f"{value} linear layers of {_INT8_SIDE}x{_INT8_SIDE} weights or more",
        _check_quantize,
        choices=("none", *QUANTIZE),
        from_text=lambda text: None if text == "none" else text,
    )
    dtype: str | torch.dtype | None = lever(
        None,
        "fp32, bf16, fp16 or auto (default: the preset's)",
        _describe_dtype,
        _check_dtype,
        from_text=lambda text: None if text == "auto" else text,
    )
    compile: bool = lever(
        False,
        "torch.compile the transformer, static shapes in buckets (CUDA graphs on GPUs)",
        lambda value, _: "compiled transformer",
        _check_compile,
        choices=("on", "off"),
        from_text=lambda text: text == "on",
    )

    def checked(self, device: torch.device | str) -> ModelLevers:
        """Every field checked against what ``device`` can do, then the combinations."""
        if self.compile and self.quantize:
            raise ValueError(
                "Compiling and int8 quantization do not combine (the int8 kernels are not compiled); pick one."
            )
        for f in fields(self):
            f.metadata["check"](getattr(self, f.name), device)
        return self


@dataclass(frozen=True)
class Levers(LaneLevers, ModelLevers):
    """The shortcuts one request takes, model levers and lane levers together; the default takes none.
    ``levers.model`` and ``levers.lane`` are the two halves."""

    @property
    def model(self) -> ModelLevers:
        return ModelLevers(**{f.name: getattr(self, f.name) for f in fields(ModelLevers)})

    @property
    def lane(self) -> LaneLevers:
        return LaneLevers(**{f.name: getattr(self, f.name) for f in fields(LaneLevers)})

    def checked(self, device: torch.device | str) -> Levers:
        self.model.checked(device)
        return replace(self, **asdict(self.lane.checked()))


def preset(name: str, device: torch.device | str = "cpu") -> Levers:
    """``exact``: every result as the sampler defines it. ``fast``: every lever that passed the quality bar
    (Frechet distance within 5% of exact, class accuracy within 1 point) on the embedded model, on
    hardware where it has run and been measured."""
    if name == "exact":
        return Levers()
    if name == "fast":
        kind = torch.device(device).type
        int8 = kind == "cpu" and has_int8_kernels()
        return Levers(
            dtype="bf16" if has_native_bf16(device) and not int8 else None,
            quantize="int8" if int8 else None,
            compile=kind == "cuda" and not on_zerogpu(),
            cache_threshold=FAST_CACHE_THRESHOLD if kind == "cpu" else 0.0,  # its speed is known on CPUs only
        )
    raise ValueError(f"Unknown preset {name!r}; choose one of {', '.join(PRESETS)}.")


def describe_preset(name: str, device: torch.device | str = "cpu") -> str:
    """What the preset does on this device; on ZeroGPU, why it does not compile."""
    text = preset(name, device).describe()
    if name == "fast" and torch.device(device).type == "cuda" and on_zerogpu():
        return f"{text}; not compiled (ZeroGPU does not support torch.compile)"
    return text


def check_levers(levers: Levers, device: torch.device | str) -> Levers:
    """The levers with their values checked against what this device can do; a clear error otherwise."""
    return levers.checked(device)


def with_model_levers(bundle: DiTBundle, levers: Levers, in_place: bool = False) -> DiTBundle:
    """The bundle with its dtype and quantization levers applied (copies unless ``in_place``).

    With int8 the transformer is quantized from fp32 weights (its other layers stay fp32, as the
    int8 kernels take fp32 activations) and ``dtype`` applies to the VAE alone.
    """
    own = (lambda m: m) if in_place else copy.deepcopy
    if levers.dtype:  # diffusers warns on every ``.to(dtype)`` that no module needs to stay fp32; none does
        with _quiet_diffusers():
            return _with_model_levers(bundle, levers, own)
    return _with_model_levers(bundle, levers, own)


@contextmanager
def _quiet_diffusers():
    level = diffusers_logging.get_verbosity()
    diffusers_logging.set_verbosity_error()
    try:
        yield
    finally:
        diffusers_logging.set_verbosity(level)


def _with_model_levers(bundle: DiTBundle, levers: Levers, own) -> DiTBundle:
    transformer, vae, dtype = bundle.transformer, bundle.vae, bundle.dtype
    target = parse_dtype(levers.dtype, torch.device(bundle.device)) if levers.dtype else None
    if target is not None and vae.dtype != target:
        vae = own(vae).to(target)
    if levers.quantize == "int8":
        transformer, dtype = quantize_int8(own(transformer).float()), torch.float32
    elif target is not None and dtype != target:
        transformer, dtype = own(transformer).to(target), target
    if levers.compile:  # compiled lazily, per bucket size, on the first call of that size
        transformer = CompiledTransformer(transformer)
    model_levers = levers.model if isinstance(levers, Levers) else levers
    if model_levers == ModelLevers():
        return bundle
    extras = {**bundle.extras, "levers": model_levers.describe()}  # what produced its images, for PNG metadata
    return replace(bundle, transformer=transformer, vae=vae, dtype=dtype, extras=extras)
