"""The speed levers as command-line flags: ``--preset`` and one flag per lever, shared by ``generate``,
``compare``, ``bench``, ``evaluate`` and ``sweep``; a flag given overrides the preset's value."""

from __future__ import annotations

import argparse
from dataclasses import Field, fields, replace

import torch

from dit_demo.runtime.levers import PRESETS, Levers, check_levers, preset


def add_lever_args(parser: argparse.ArgumentParser, preset_default: str = "exact") -> None:
    """``--preset`` and one flag per lever; a flag given overrides the preset's value."""
    parser.add_argument(
        "--preset",
        choices=PRESETS,
        default=preset_default,
        help="exact: no shortcuts; fast: every lever that keeps quality (int8 on CPUs, bf16 and compiled on GPUs)",
    )
    for f in fields(Levers):  # one flag per lever field, its help and choices from the field
        parser.add_argument(_flag(f), default=None, choices=f.metadata["choices"], help=f.metadata["help"])


def _flag(f: Field) -> str:
    return "--" + f.name.replace("_", "-")


def levers_from_args(args: argparse.Namespace, device: torch.device | str) -> Levers:
    """The preset named by ``--preset``, with every lever flag that was given on top, checked."""
    levers = preset(args.preset, device)
    given = {
        f.name: f.metadata["from_text"](getattr(args, f.name))
        for f in fields(Levers)
        if getattr(args, f.name) is not None
    }
    return check_levers(replace(levers, **given), device)
