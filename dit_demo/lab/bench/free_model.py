"""DiT-XL/2-256's shapes with a transformer and a VAE that cost nothing: the sampling loop alone.

Timed on this model, DiTPipeline and the engine spend their time only on what surrounds the model
(scheduler steps, guidance, batching, copies, waiting on the device), which is the part a fast
model leaves exposed: on a GPU a compiled DiT-XL/2 forward takes milliseconds, and a loop that
costs as much again halves the speed-up. The speed suite times it next to the real models.

The stand-in's output depends on each row's latent and class (one multiply-add), so lanes drift
apart as they do under a trained model; a constant output would keep them equal forever.
"""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import torch

from dit_demo.runtime.bundle import DiTBundle

FREE_MODEL = "xl256-free"


class _Placed(torch.nn.Module):
    """A module with no weights that still answers ``device`` and ``dtype`` as diffusers' models do."""

    def __init__(self, config, device: torch.device):
        super().__init__()
        self.config = config
        self.register_buffer("anchor", torch.zeros((), device=device))

    @property
    def device(self) -> torch.device:
        return self.anchor.device

    @property
    def dtype(self) -> torch.dtype:
        return self.anchor.dtype


class FreeTransformer(_Placed):
    """Called like the DiT: ``(x, timestep=, class_labels=)`` -> ``.sample`` with the DiT's output channels."""

    def forward(self, hidden_states, timestep=None, class_labels=None, return_dict: bool = True, **kwargs):
        shift = 1e-3 * class_labels.to(hidden_states.dtype).view(-1, 1, 1, 1)
        out = (0.01 * hidden_states + shift).repeat(1, self.config.out_channels // hidden_states.shape[1], 1, 1)
        return SimpleNamespace(sample=out) if return_dict else (out,)


class FreeVAE(_Placed):
    """Decodes any latent to a black image of the VAE's size (8 pixels a latent)."""

    def decode(self, z: torch.Tensor, return_dict: bool = True):
        shape = (len(z), self.config.out_channels, 8 * z.shape[2], 8 * z.shape[3])
        pixels = torch.zeros(shape, device=z.device, dtype=z.dtype)
        return SimpleNamespace(sample=pixels) if return_dict else (pixels,)


def xl256_free(device: torch.device) -> DiTBundle:
    """The XL stand-in's configs (built on the meta device: no weights) around modules that cost nothing."""
    from dit_demo.lab.bench.xl_random import xl256_random

    with torch.device("meta"):
        shapes = xl256_random(torch.device("meta"))
    return replace(
        shapes,
        name="DiT-XL/2-256 shapes, a transformer and VAE that cost nothing (the loop alone)",
        transformer=FreeTransformer(shapes.transformer.config, device),
        vae=FreeVAE(shapes.vae.config, device),
        device=device,
    )
