"""Speed levers of a request, and the presets that bundle them: ``exact`` (none) and ``fast``.

A lever is an option of the request, not of a sampler: it changes how the engine runs any
sampler. Each is measured for speed and quality in the README's performance section.

- ``dtype``: the arithmetic of the transformer and the VAE; bf16 where the hardware has it
  natively (CPUs with AVX-512 BF16 or AMX, GPUs). The scheduler math stays fp32.
- ``quantize="int8"``: the transformer's linear layers with int8 weights (per output channel)
  and int8 activations quantized per call (dynamic quantization, CPU only). DiT-XL/2 at 2 rows
  is bound by reading its weights (a third of them are adaLN modulation), which int8 quarters.
- ``compile``: the transformer through ``torch.compile`` with static shapes, rows padded to a few
  bucket sizes (``compiled.py``); CUDA graphs on GPUs, where the eager DiT is launch-bound. No preset
  takes it until it has run on a GPU; never on ZeroGPU, which does not support it.
- ``guidance_interval``: classifier-free guidance only at noise levels lo < sigma <= hi
  (Kynkaanniemi et al. 2024); outside it only the conditional row runs.
- ``cache_threshold``: the first-block cache (``block_cache.py``) reuses the later blocks of an
  earlier step where the first block's output changed by less than this.

The first three change the model (``with_model_levers``); the last two are fields of each lane.
"""

from __future__ import annotations

import argparse
import copy
import threading
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import cache

import torch
from diffusers.models.activations import GELU
from diffusers.models.attention_processor import Attention, FusedAttnProcessor2_0
from diffusers.utils import logging as diffusers_logging

from dit_demo.runtime.bundle import DiTBundle
from dit_demo.runtime.compiled import CompiledTransformer
from dit_demo.runtime.devices import has_native_bf16, on_zerogpu, parse_dtype
from dit_demo.runtime.parsing import as_float, parse_interval

# What ``fast`` takes, each lever having met the bar (Frechet distance within 5% and class accuracy
# within 1 point of exact, on the embedded model, 1000 samples; the suite's quality table in the
# README has the numbers):
# - int8 on CPUs, on the layers large enough for it to pay;
# - bf16 where the hardware has it natively and int8 is not taken (with int8, bf16 would be the VAE
#   alone, which failed the bar together with the cache on a model without int8-sized layers);
# - the first-block cache at 0.05 on CPUs (at 0.1 it fails); on GPUs it stays off until it has run
#   and been measured there.
# The guidance interval meets the bar only with cfg raised, a change of the request's meaning that a
# preset must not make behind the user's back, so it stays a lever to opt into.
FAST_CACHE_THRESHOLD = 0.05
QUANTIZE = ("int8",)
PRESETS = ("exact", "fast")


@cache
def has_int8_kernels() -> bool:
    """Whether this torch still ships dynamic int8 quantization with an x86 or fbgemm backend."""
    try:
        _quantize_dynamic(torch.nn.Sequential(torch.nn.Linear(4, 4)), ["0"])
    except Exception:  # removed or unsupported in this build: the lever is simply unavailable
        return False
    return True


def _fuse_qkv(module: torch.nn.Module) -> None:
    """One q/k/v projection per self-attention (diffusers' own fusion and processor).

    With int8 weights quantized per output channel and the activation quantized once per call,
    the fused layer computes exactly what the three did (the same scales, bit for bit), in one
    matrix product instead of three: 4-5% of an XL/2 forward in one run on a 2-core CPU, within
    the noise in another.
    """
    for attention in module.modules():
        if isinstance(attention, Attention) and not attention.is_cross_attention:
            with torch.no_grad():
                attention.fuse_projections()
            attention.set_processor(FusedAttnProcessor2_0())
            del attention.to_q, attention.to_k, attention.to_v  # the fused layer replaces them


def _exact_gelu(module: torch.nn.Module) -> None:
    """The MLP's GELU by erf instead of its tanh approximation.

    The two differ by at most 5e-4 (absolute), far below the int8 rounding of the same activations,
    and on CPUs erf costs half of what tanh does: about 3% of an int8 XL/2 forward on 2 cores.
    """
    for activation in module.modules():
        if isinstance(activation, GELU) and activation.approximate == "tanh":
            activation.approximate = "none"


# int8 pays where reading a layer's weights dominates its cost (DiT-XL/2's 1152-wide layers); on a
# small layer the per-call quantization of its activations costs more than the int8 product saves
# (the embedded model's 128-wide ones: the fast preset was slower than exact with all of them int8).
# Layers with fewer weights than this stay fp32.
INT8_MIN_WEIGHTS = 512 * 512  # Levers.describe says so


def _int8_layers(module: torch.nn.Module) -> list[str]:
    """The linear layers that int8 makes faster: those with at least ``INT8_MIN_WEIGHTS`` weights."""
    return [
        name
        for name, m in module.named_modules()
        if isinstance(m, torch.nn.Linear) and m.in_features * m.out_features >= INT8_MIN_WEIGHTS
    ]


def _quantize_int8(module: torch.nn.Module, fuse_qkv: bool = True, exact_gelu: bool = True) -> torch.nn.Module:
    """Large linear layers to int8 (with q/k/v fused and the erf GELU); a model without any stays as it is."""
    if not _int8_layers(module):
        return module
    if fuse_qkv:
        _fuse_qkv(module)
    if exact_gelu:
        _exact_gelu(module)
    return _quantize_dynamic(module, _int8_layers(module))


def _quantize_dynamic(module: torch.nn.Module, names: list[str]) -> torch.nn.Module:
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    spec = dict.fromkeys(names, per_channel_dynamic_qconfig)
    with warnings.catch_warnings(), _packing_engine(INT8_ENGINE):  # torch announces a future move of these
        warnings.simplefilter("ignore")  # kernels to torchao; they work today
        return quantize_dynamic(module, spec, dtype=torch.qint8, inplace=True)


# The weights are packed for one backend's kernels, which then run them whatever the global engine
# says later. oneDNN's run DiT-XL/2's 1152-wide layers 4-13% faster than the default x86/fbgemm
# ones on this CPU (2 and 12 rows; AVX-512 VNNI), but the embedded model's 128-wide ones 20-30%
# slower at 2-18 rows (README, under the performance table).
INT8_ENGINE = "onednn"


@contextmanager
def _packing_engine(name: str):
    before = torch.backends.quantized.engine
    if name in torch.backends.quantized.supported_engines:
        torch.backends.quantized.engine = name
    try:
        yield
    finally:
        torch.backends.quantized.engine = before


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
    hardware where it has run: the compiled transformer has not run on a GPU yet, so no preset takes it."""
    if name == "exact":
        return Levers()
    if name == "fast":
        cpu = torch.device(device).type == "cpu"
        int8 = cpu and has_int8_kernels()
        return Levers(
            dtype="bf16" if has_native_bf16(device) and not int8 else None,
            quantize="int8" if int8 else None,
            cache_threshold=FAST_CACHE_THRESHOLD if cpu else 0.0,  # measured on CPUs only so far
        )
    raise ValueError(f"Unknown preset {name!r}; choose one of {', '.join(PRESETS)}.")


def describe_preset(name: str, device: torch.device | str = "cpu") -> str:
    """What the preset does on this device, and on a GPU why it does not compile."""
    text = preset(name, device).describe()
    if name != "fast" or torch.device(device).type != "cuda":
        return text
    if on_zerogpu():
        return f"{text}; not compiled (ZeroGPU does not support torch.compile)"
    return f"{text}; not compiled (the compiled path is unverified on GPUs: --compile on to try it)"


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
        transformer, dtype = _quantize_int8(own(transformer).float()), torch.float32
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


def add_lever_args(parser: argparse.ArgumentParser, preset_default: str = "exact") -> None:
    """``--preset`` and one flag per lever; a flag given overrides the preset's value."""
    parser.add_argument(
        "--preset",
        choices=PRESETS,
        default=preset_default,
        help="exact: no shortcuts; fast: every lever that keeps quality (int8 on CPUs, bf16 where native)",
    )
    parser.add_argument("--dtype", default=None, help="fp32, bf16, fp16 or auto (default: the preset's)")
    parser.add_argument("--quantize", choices=("none", *QUANTIZE), default=None, help="int8 linear layers (CPU)")
    parser.add_argument(
        "--compile",
        choices=("on", "off"),
        default=None,
        help="torch.compile the transformer, static shapes in buckets (CUDA graphs on GPUs: unverified there)",
    )
    parser.add_argument(
        "--guidance-interval",
        default=None,
        help="lo,hi: guidance only at noise levels lo < sigma <= hi (Kynkaanniemi et al. 2024), e.g. 0.28,5.42",
    )
    parser.add_argument("--cache-threshold", type=float, default=None, help="first-block cache threshold (0: off)")


def levers_from_args(args: argparse.Namespace, device: torch.device | str) -> Levers:
    """The preset named by ``--preset``, with every lever flag that was given on top, checked."""
    levers = preset(args.preset, device)
    if args.dtype is not None:
        levers = replace(levers, dtype=None if args.dtype == "auto" else args.dtype)
    if args.quantize is not None:
        levers = replace(levers, quantize=None if args.quantize == "none" else args.quantize)
    if args.compile is not None:
        levers = replace(levers, compile=args.compile == "on")
        if levers.compile and torch.device(device).type == "cuda":
            warnings.warn(
                "the compiled transformer has not been verified on a GPU yet; compare it with --compile off",
                stacklevel=2,
            )
    if args.guidance_interval is not None:
        levers = replace(levers, guidance_interval=args.guidance_interval)
    if args.cache_threshold is not None:
        levers = replace(levers, cache_threshold=args.cache_threshold)
    return check_levers(levers, device)


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
