"""Parsing at the request boundary: values from the UI, the CLI and the API -> checked Python values.

Everything a person (or a client) sends passes through one of these functions once, and every
refusal is a ``ValueError`` whose message names the field, what was read and what is allowed.
Texts and lists are sized before anything is built from them, so a hostile request costs no
more memory than its own bytes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import numpy as np

MAX_CFG = 50.0
MAX_SEED = 2**63 - 1
SPACINGS = ("trailing", "linspace", "leading")  # diffusers' timestep_spacing values

DIGITS = re.compile(r"[0-9]+")  # ASCII only: "²".isdigit() is True but int("²") fails
_INT_TEXT = re.compile(r"[+-]?[0-9]{1,30}")


def shown(value: object, limit: int = 40) -> str:
    """repr() cut to ``limit`` characters: a message must not echo a 34 KB request back."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


def as_int(name: str, value: object, low: int, high: int) -> int:
    """A whole number in [low, high] from an int, an integral float or a decimal string."""
    allowed = f"a whole number between {low} and {high}"
    if value is None or (isinstance(value, str) and not value.strip()):
        raise ValueError(f"{name} is missing; give {allowed}.")
    if isinstance(value, str):
        text = value.strip()
        if _INT_TEXT.fullmatch(text):
            value = int(text)
        else:
            try:
                value = float(text) if len(text) <= 40 else math.nan
            except ValueError:
                raise ValueError(f"{name} must be {allowed}, got {shown(value)}.") from None
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name} must be {allowed}, got {shown(value)}.")
    if isinstance(value, (float, np.floating)):
        if not math.isfinite(value) or not float(value).is_integer():
            raise ValueError(f"{name} must be {allowed}, got {shown(value)}.")
        value = int(value)
    if not low <= value <= high:
        raise ValueError(f"{name} must be between {low} and {high}, got {shown(int(value))}.")
    return int(value)


def as_float(name: str, value: object, low: float, high: float) -> float:
    """A finite number in [low, high] from a number or a decimal string."""
    allowed = f"a number between {low:g} and {high:g}"
    if value is None or (isinstance(value, str) and not value.strip()):
        raise ValueError(f"{name} is missing; give {allowed}.")
    if isinstance(value, bool) or not isinstance(value, (int, float, str, np.integer, np.floating)):
        raise ValueError(f"{name} must be {allowed}, got {shown(value)}.")
    try:
        number = float(value) if not isinstance(value, str) or len(value) <= 40 else math.nan
    except (ValueError, OverflowError):
        raise ValueError(f"{name} must be {allowed}, got {shown(value)}.") from None
    if not math.isfinite(number) or not low <= number <= high:
        raise ValueError(f"{name} must be a finite number between {low:g} and {high:g}, got {shown(value)}.")
    return number


def parse_cfg_channels(value: object, latent_channels: int) -> int:
    """Channels that get guidance: 0, None or "" mean all of them; 3 is the original DiT code."""
    allowed = sorted({latent_channels, min(3, latent_channels)})
    if value is None or value == "" or (not isinstance(value, bool) and value in (0, "0")):
        return latent_channels
    try:
        channels = as_int("cfg_channels", value, 0, latent_channels)
    except ValueError:
        channels = -1
    if channels not in allowed:
        raise ValueError(
            f"cfg_channels must be one of {allowed} (all latent channels, or 3 as in the original DiT; 0 also means all), "
            f"got {shown(value)}."
        )
    return channels


def parse_spacing(value: object) -> str | None:
    """The step grid: None keeps the sampler's default ("trailing": every sampler starts at t = T - 1)."""
    if value is None or value == "":
        return None
    if value not in SPACINGS:
        raise ValueError(
            f"Step spacing must be one of {', '.join(SPACINGS)} (linspace is DiT's own grid), got {shown(value)}."
        )
    return str(value)


def parse_interval(value: object) -> tuple[float, float] | None:
    """A guidance interval of noise levels, "lo,hi" in sigma (hi may be "inf"); None or "" means everywhere."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    items = value.split(",") if isinstance(value, str) else value
    example = "0.28,5.42 (guidance only where 0.28 < sigma <= 5.42)"
    if isinstance(items, (str, bytes)) or not isinstance(items, Sequence) or len(items) != 2:
        raise ValueError(f"A guidance interval is two noise levels lo,hi, e.g. {example}; got {shown(value)}.")
    lo = as_float("The guidance interval's low end", items[0], 0.0, 1e6)
    high_text = str(items[1]).strip().lower()
    hi = (
        math.inf
        if high_text in ("inf", "infinity")
        else as_float("The guidance interval's high end", items[1], 0.0, 1e6)
    )
    if not lo < hi:
        raise ValueError(f"A guidance interval needs lo < hi, e.g. {example}; got {shown(value)}.")
    return lo, hi
