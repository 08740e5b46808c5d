"""A tiny random SiT in the hub layout, imported as SiT's train.py saves it, on a DiT test bundle's VAE."""

from __future__ import annotations

from pathlib import Path

import torch
from original_reference import random_state, train_checkpoint

from dit_demo.lab.interchange.dit_import import import_checkpoint

HEADS = 4
SIT_ARGS = {"path_type": "Linear", "prediction": "velocity", "num_classes": 10, "image_size": 16}


def make_sit(folder: Path, vae_from: Path) -> Path:
    """A SiT (Linear path, velocity) with 10 classes and 8x8 latents, like conftest's ``small_bundle_dir``."""
    state = random_state(2, 64, HEADS, 2, 4, True, 11, 8, seed=3)
    torch.save(train_checkpoint(state, **SIT_ARGS), folder / "ckpt.pt")
    return import_checkpoint(folder / "ckpt.pt", folder / "sit", heads=HEADS, vae=str(vae_from / "vae"))
