"""Cheap latent -> RGB previews of the current x0 prediction while sampling."""

from __future__ import annotations

import torch
from PIL import Image

from dit_demo.runtime.bundle import DiTBundle

# linear fit from Stable Diffusion's VAE latents (sd-vae-ft-ema, DiT's VAE) to RGB, as used
# for live previews in popular UIs: far cheaper than decoding a 256/512 image on every step
SD_VAE_LATENT_RGB = torch.tensor(
    [
        [0.298, 0.207, 0.208],
        [0.187, 0.286, 0.173],
        [-0.158, 0.189, 0.264],
        [-0.184, -0.271, -0.473],
    ]
)
DECODE_UP_TO = 64  # small VAEs (the embedded model) decode in a millisecond: show the real thing


def preview_images(bundle: DiTBundle, latents: list[torch.Tensor], size: int = 128) -> list[Image.Image]:
    """(C, H, W) x0 latents -> small RGB previews."""
    if not latents:
        return []
    z = torch.stack(latents).float()  # (N, C, H, W)
    if bundle.image_size <= DECODE_UP_TO or z.shape[1] != SD_VAE_LATENT_RGB.shape[0]:
        images = bundle.decode_images(z)
    else:
        rgb = torch.einsum("nchw,cr->nrhw", bundle.unscaled(z), SD_VAE_LATENT_RGB)
        arr = ((rgb.clamp(-1, 1) + 1) * 127.5).to(torch.uint8).permute(0, 2, 3, 1).numpy()
        images = [Image.fromarray(a) for a in arr]
    return [im.resize((size, size), Image.NEAREST if im.width < size else Image.BILINEAR) for im in images]
