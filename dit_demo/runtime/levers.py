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
import threading
from contextlib import contextmanager
from dataclasses import dataclass, replace

import torch
from diffusers.utils import logging as diffusers_logging

from dit_demo.runtime.bundle import DiTBundle
from dit_demo.runtime.compiled import CompiledTransformer
from dit_demo.runtime.devices import has_native_bf16, on_zerogpu, parse_dtype
from dit_demo.runtime.int8 import has_int8_kernels, quantize_int8
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
QUANTIZE = ("int8",)
PRESETS = ("exact", "fast")


@dataclass(frozen=True)
class Levers:
    """The shortcuts one request takes; the default takes none."""

    dtype: str | torch.dtype | None = None  # None: the dtype the model was loaded with
    quantize: str | None = None  # "int8": dynamic int8 linear layers (CPU)
    compile: bool = False  # torch.compile with bucketed static shapes (CUDA graphs on GPUs)
    guidance_interval: tuple[float, float] | None = None
    cache_threshold: float = 0.0

    def describe(self) -> str:
        parts = []
        if self.quantize:
            parts.append(f"{self.quantize} linear layers of 512x512 weights or more")
        if self.dtype:
            parts.append(f"{self.dtype} {'VAE' if self.quantize else 'transformer and VAE'}")
        if self.compile:
            parts.append("compiled transformer")
        if self.guidance_interval:
            lo, hi = self.guidance_interval
            parts.append(f"guidance only at {lo:g} < sigma <= {hi:g}")
        if self.cache_threshold:
            parts.append(f"first-block cache at {self.cache_threshold:g}")
        return ", ".join(parts) or "no shortcuts (exact)"

    def lane_fields(self) -> dict:
        """The levers that live on each lane (``dataclasses.replace(lane, **levers.lane_fields())``)."""
        return {"guidance_interval": self.guidance_interval, "cache_threshold": self.cache_threshold}


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
            cache_threshold=FAST_CACHE_THRESHOLD if kind == "cpu" else 0.0,  # measured on CPUs only so far
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
    if levers.quantize is not None:
        if levers.quantize not in QUANTIZE:
            raise ValueError(f"Unknown quantization {levers.quantize!r}; choose one of {', '.join(QUANTIZE)}.")
        if torch.device(device).type != "cpu" or not has_int8_kernels():
            raise ValueError("int8 quantization runs on CPUs only, with a torch that has its x86/fbgemm kernels.")
    if levers.dtype is not None:
        parse_dtype(levers.dtype, torch.device(device))  # raises with the allowed names
    if levers.compile and on_zerogpu():
        raise ValueError("torch.compile does not run on ZeroGPU Spaces; leave the compiled transformer off.")
    if levers.compile and levers.quantize:
        raise ValueError(
            "Compiling and int8 quantization do not combine (the int8 kernels are not compiled); pick one."
        )
    interval = parse_interval(levers.guidance_interval)
    threshold = as_float("Cache threshold", levers.cache_threshold, 0, 1)
    return replace(levers, guidance_interval=interval, cache_threshold=threshold)


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
    model_levers = Levers(dtype=levers.dtype, quantize=levers.quantize, compile=levers.compile)
    if model_levers == Levers():
        return bundle
    extras = {**bundle.extras, "levers": model_levers.describe()}  # what produced its images, for PNG metadata
    return replace(bundle, transformer=transformer, vae=vae, dtype=dtype, extras=extras)


def load_with_levers(model: str | None, device: torch.device | str, levers: Levers) -> DiTBundle:
    """The model loaded for these levers: int8 is quantized from fp32 weights; another dtype is
    loaded directly, without a copy."""
    from dit_demo.runtime.loader import load_bundle

    bundle = load_bundle(model, device, "fp32" if levers.quantize else levers.dtype)
    return with_model_levers(bundle, levers, in_place=True)


class ModelVariants:
    """One loaded model and its copies under model levers (bf16, int8), each made on first use and
    kept, so a server or a comparison with a preset axis converts the weights once."""

    def __init__(self, bundle: DiTBundle):
        self.base = bundle
        self._made: dict[tuple, DiTBundle] = {}
        self._lock = threading.Lock()

    def get(self, levers: Levers) -> DiTBundle:
        key = (levers.dtype, levers.quantize, levers.compile)
        if key == (None, None, False):
            return self.base
        with self._lock:
            if key not in self._made:
                self._made[key] = with_model_levers(self.base, levers)
            return self._made[key]
