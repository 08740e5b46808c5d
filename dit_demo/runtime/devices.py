"""Which device and dtype a model runs on (flags like "auto", "cuda:1", "bf16" -> torch objects), and
what the hardware offers."""

from __future__ import annotations

import os
from pathlib import Path

import torch

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def on_zerogpu() -> bool:
    """Whether this process runs on a ZeroGPU Space: CUDA exists only inside ``spaces.GPU`` calls, so
    nothing may ask the driver anything outside them (the GPU is an H200 slice: bf16 natively)."""
    return os.environ.get("SPACES_ZERO_GPU", "").lower() in ("1", "t", "true")


def has_native_bf16(device: torch.device | str = "cpu") -> bool:
    """bf16 without emulation: AVX-512 BF16 or AMX on CPUs, bf16 support on CUDA GPUs."""
    device = torch.device(device)
    if device.type == "cuda":
        return on_zerogpu() or (torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    if device.type != "cpu":
        return False
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def default_device() -> torch.device:
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def default_dtype(device: torch.device) -> torch.dtype:
    # half precision where the hardware is built for it; fp32 on CPUs (exact and not slower there)
    if device.type == "cuda":
        return torch.bfloat16 if has_native_bf16(device) else torch.float16
    if device.type == "mps":
        return torch.float16
    return torch.float32


def parse_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    if dtype is None or dtype == "auto":
        return default_dtype(device)
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in DTYPES:
        raise ValueError(f"Unknown dtype {dtype!r}; allowed: auto, {', '.join(DTYPES)}.")
    return DTYPES[dtype]


def parse_device(device: str | torch.device | None) -> torch.device:
    if device is None or device == "auto":
        return default_device()
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"Unknown device {device!r}; allowed: auto, cpu, cuda, cuda:N, mps.") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("Device 'cuda' was asked for but no CUDA GPU is available; use --device cpu.")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError("Device 'mps' was asked for but Apple MPS is not available; use --device cpu.")
    return device


def host_values(values: list, dtype: torch.dtype, device: torch.device | str) -> torch.Tensor:
    """A small tensor of host values on ``device``, queued without making the host wait.

    A plain copy to a GPU waits until every kernel queued before it has run, so the host cannot
    prepare the next round while the device works; a copy from pinned memory is queued instead.
    """
    tensor = torch.tensor(values, dtype=dtype)
    if torch.device(device).type != "cuda":
        return tensor.to(device)
    return tensor.pin_memory().to(device, non_blocking=True)
