"""DiT-XL/2-256's shapes with random weights: the stand-in for timing a hub-sized model without the hub
(right for timing, meaningless for images). The speed suite times it; the app check serves it."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from diffusers import AutoencoderKL, DDPMScheduler

from dit_demo.runtime.bundle import DiTBundle
from dit_demo.runtime.dit import build_named
from dit_demo.runtime.labels import Labels


def xl256_random(device: torch.device) -> DiTBundle:
    """DiT-XL/2-256's transformer and sd-vae-ft-ema's VAE, shapes only (random weights)."""
    torch.manual_seed(0)
    transformer = build_named("DiT-XL/2", num_classes=1000, latent_size=32)
    shared = transformer.transformer_blocks[0].norm1.emb.state_dict()
    for block in transformer.transformer_blocks[1:]:  # the hub's layout: one embedder, copied into every block
        block.norm1.emb.load_state_dict(shared)
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        block_out_channels=(128, 256, 512, 512),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        layers_per_block=2,
        sample_size=256,
    )
    scheduler = DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear", beta_start=1e-4, beta_end=0.02)
    labels = Labels.from_id2label({str(i): f"class {i}" for i in range(1000)})
    transformer.to(device).eval().requires_grad_(False)
    vae.to(device).eval().requires_grad_(False)
    name = "DiT-XL/2-256 architecture, random weights (timing only)"
    return DiTBundle(
        name=name,
        transformer=transformer,
        vae=vae,
        scheduler_config=dict(scheduler.config),
        labels=labels,
        device=device,
        dtype=torch.float32,
    )


def write_xl_random(folder: str | os.PathLike) -> Path:
    """DiT-XL/2-256's shapes with random weights, saved in the hub layout."""
    from dit_demo.runtime.loader import save_bundle

    bundle = xl256_random(torch.device("cpu"))
    scheduler = DDPMScheduler.from_config(bundle.scheduler_config)
    id2label = dict(enumerate(bundle.labels.names))
    return save_bundle(folder, bundle.transformer, bundle.vae, scheduler, id2label, default_cfg_scale=4.0)
