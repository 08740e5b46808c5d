"""A tiny random SiT in the hub layout, imported as SiT's train.py saves it, on a DiT test bundle's VAE: the
sizes the SiT tests share and the one way they build it."""

from __future__ import annotations

from pathlib import Path

import torch
from original_reference import random_state, train_checkpoint

from dit_demo.lab.interchange.dit_import import import_checkpoint

DEPTH, HIDDEN, HEADS, PATCH, ROWS, CLASSES, LATENT = 2, 64, 4, 2, 11, 10, 8  # ROWS: the classes and the null one
SIT_ARGS = {"path_type": "Linear", "prediction": "velocity", "num_classes": CLASSES, "image_size": 2 * LATENT}


def tiny_state(seed: int) -> dict:
    """A random SiT-shaped state dict of the sizes above (learned sigma channels included, as SiT saves them)."""
    return random_state(DEPTH, HIDDEN, HEADS, PATCH, 4, True, ROWS, LATENT, seed=seed)


def import_sit(state: dict, folder: Path, vae_from: Path, name: str = "model", **args) -> Path:
    """``state`` saved as SiT's train.py saves it (model, ema, opt, args; ``args`` over SIT_ARGS) and imported
    into ``folder/name`` with ``vae_from``'s VAE."""
    torch.save(train_checkpoint(state, **{**SIT_ARGS, **args}), folder / "0400000.pt")
    return import_checkpoint(folder / "0400000.pt", folder / name, heads=HEADS, vae=str(vae_from / "vae"))


def make_sit(folder: Path, vae_from: Path) -> Path:
    """A SiT (Linear path, velocity) with 10 classes and 8x8 latents, like conftest's ``small_bundle_dir``."""
    return import_sit(tiny_state(3), folder, vae_from, name="sit")
