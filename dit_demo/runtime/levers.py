"""Speed levers of a request, and the presets that bundle them: ``exact`` (none) and ``fast``.

A lever is an option of the request, not of a sampler: it changes how the engine runs any
sampler. Each is measured for speed and quality in the README's performance section.

- ``guidance_interval``: classifier-free guidance only at noise levels lo < sigma <= hi
  (Kynkaanniemi et al. 2024, "Applying guidance in a limited interval improves sample and
  distribution quality in diffusion models"); outside it only the conditional row runs.
- ``dtype``: the transformer's arithmetic; bf16 where the hardware has it natively (CPUs with
  AVX-512 BF16 or AMX, GPUs), chosen when the model is loaded. The scheduler math stays fp32.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

# Measured on the embedded model, DPM-Solver++ 2M, 25 steps, 1000 samples (README, "Speed levers"):
# bf16 keeps the Frechet distance within 5% and class accuracy within 1 point of exact, so ``fast``
# takes it. The guidance interval (0.28, 5.42] at the same cfg 1.5 costs 3 points of accuracy (its
# Frechet distance improves); it meets the bar only with cfg raised to 2.0, a change of the request's
# meaning that a preset must not make behind the user's back, so it stays a lever to opt into.


def has_native_bf16(device: torch.device | str = "cpu") -> bool:
    """bf16 without emulation: AVX-512 BF16 or AMX on CPUs, bf16 support on CUDA GPUs."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return False
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


@dataclass(frozen=True)
class Levers:
    """The shortcuts one request takes; the default takes none."""

    guidance_interval: tuple[float, float] | None = None
    dtype: str | None = None  # None: the dtype the model was loaded with

    def describe(self) -> str:
        parts = []
        if self.guidance_interval:
            lo, hi = self.guidance_interval
            parts.append(f"guidance only at {lo:g} < sigma <= {hi:g}")
        if self.dtype:
            parts.append(f"{self.dtype} transformer")
        return ", ".join(parts) or "no shortcuts (exact)"


PRESETS = ("exact", "fast")


def preset(name: str, device: torch.device | str = "cpu") -> Levers:
    """``exact``: every result as the sampler defines it. ``fast``: every lever that passed the quality bar
    (Frechet distance within 5% of exact, class accuracy within 1 point) on the embedded model."""
    if name == "exact":
        return Levers()
    if name == "fast":
        return Levers(dtype="bf16" if has_native_bf16(device) else None)
    raise ValueError(f"Unknown preset {name!r}; choose one of {', '.join(PRESETS)}.")
