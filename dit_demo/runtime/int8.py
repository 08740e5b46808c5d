"""The int8 lever: the transformer's large linear layers with int8 weights (per output channel) and
activations quantized per call (PyTorch's dynamic quantization, CPU only). DiT-XL/2 at 2 rows is bound
by reading its weights, a third of them adaLN modulation, which int8 quarters."""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from functools import cache

import torch

from dit_demo.runtime import diffusers_adapters


@cache
def has_int8_kernels() -> bool:
    """Whether this torch still ships dynamic int8 quantization with an x86 or fbgemm backend."""
    try:
        _quantize_dynamic(torch.nn.Sequential(torch.nn.Linear(4, 4)), ["0"])
    except Exception:  # removed or unsupported in this build: the lever is simply unavailable
        return False
    return True


# int8 pays where reading a layer's weights dominates its cost (DiT-XL/2's 1152-wide layers); on a
# small layer the per-call quantization of its activations costs more than the int8 product saves.
# Layers with fewer weights than this stay fp32 (the quantize lever's description says so).
INT8_MIN_WEIGHTS = 512 * 512


def _int8_layers(module: torch.nn.Module) -> list[str]:
    """The linear layers that int8 makes faster: those with at least ``INT8_MIN_WEIGHTS`` weights."""
    return [
        name
        for name, m in module.named_modules()
        if isinstance(m, torch.nn.Linear) and m.in_features * m.out_features >= INT8_MIN_WEIGHTS
    ]


def quantize_int8(module: torch.nn.Module, fuse_qkv: bool = True, exact_gelu: bool = True) -> torch.nn.Module:
    """Large linear layers to int8 (with q/k/v fused and the erf GELU); a model without any stays as it is.

    Fused q/k/v: with int8 weights quantized per output channel and the activation quantized once per
    call, the fused layer computes exactly what the three did (the same scales, bit for bit), in one
    matrix product instead of three. The erf GELU differs from the tanh approximation far below the
    int8 rounding of the same activations, and on CPUs erf costs less than tanh. Both are diffusers
    adaptations (``diffusers_adapters.fuse_qkv`` and ``erf_gelu``)."""
    if not _int8_layers(module):
        return module
    if fuse_qkv:
        diffusers_adapters.fuse_qkv(module)
    if exact_gelu:
        diffusers_adapters.erf_gelu(module)
    return _quantize_dynamic(module, _int8_layers(module))


def _quantize_dynamic(module: torch.nn.Module, names: list[str]) -> torch.nn.Module:
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    spec = dict.fromkeys(names, per_channel_dynamic_qconfig)
    with warnings.catch_warnings(), _packing_engine(INT8_ENGINE):  # torch announces a future move of these
        warnings.simplefilter("ignore")  # kernels to torchao; they work today
        return quantize_dynamic(module, spec, dtype=torch.qint8, inplace=True)


# The weights are packed for one backend's kernels, which then run them whatever the global engine
# says later. oneDNN's run wide layers (DiT-XL/2's) faster than the default x86/fbgemm ones on CPUs
# with AVX-512 VNNI, and the small ones it is slower on stay fp32 anyway (the README's performance
# section has the measurements).
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
