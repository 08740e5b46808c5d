"""The speed levers as command-line flags: ``--preset`` and one flag per lever, shared by ``generate``,
``compare``, ``bench``, ``evaluate`` and ``sweep``; a flag given overrides the preset's value."""

from __future__ import annotations

import argparse
from dataclasses import replace

import torch

from dit_demo.runtime.levers import PRESETS, QUANTIZE, Levers, check_levers, preset


def add_lever_args(parser: argparse.ArgumentParser, preset_default: str = "exact") -> None:
    """``--preset`` and one flag per lever; a flag given overrides the preset's value."""
    parser.add_argument(
        "--preset",
        choices=PRESETS,
        default=preset_default,
        help="exact: no shortcuts; fast: every lever that keeps quality (int8 on CPUs, bf16 and compiled on GPUs)",
    )
    parser.add_argument("--dtype", default=None, help="fp32, bf16, fp16 or auto (default: the preset's)")
    parser.add_argument("--quantize", choices=("none", *QUANTIZE), default=None, help="int8 linear layers (CPU)")
    parser.add_argument(
        "--compile",
        choices=("on", "off"),
        default=None,
        help="torch.compile the transformer, static shapes in buckets (CUDA graphs on GPUs)",
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
    if args.guidance_interval is not None:
        levers = replace(levers, guidance_interval=args.guidance_interval)
    if args.cache_threshold is not None:
        levers = replace(levers, cache_threshold=args.cache_threshold)
    return check_levers(levers, device)
