"""A loaded DiT and what the rest of the code asks of it: facts from its configs, its parameterization
(what its output means and its noise level at any timestep) and the VAE in both directions, with its
scaling. Nobody else re-derives these: the engine, previews, comparisons and the evaluator all ask here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from diffusers import AutoencoderKL, DiTTransformer2DModel
from PIL import Image

from dit_demo.runtime.diffusers_adapters import adapt_in_place
from dit_demo.runtime.labels import Labels
from dit_demo.runtime.parameterization import DEFAULT_FAMILY, Parameterization, parameterization_for

DIT_VISUAL_CFG = 4.0  # the DiT paper's scale for pictures; a model_index.json may name its own


@dataclass(kw_only=True)
class DiTBundle:
    """A loaded model and the facts the samplers need, all read from its configs.

    Making a bundle adapts the transformer it is handed, in place (``diffusers_adapters.adapt_in_place``:
    shared embedders and signed attention processors, a few diffusers classes swapped for subclasses
    that compute the same bits). It does not copy: a copy of DiT-XL/2's weights would double their
    memory. A caller that needs diffusers' own classes on that module afterwards passes a copy."""

    name: str
    transformer: DiTTransformer2DModel
    vae: AutoencoderKL
    scheduler_config: dict
    labels: Labels
    device: torch.device
    dtype: torch.dtype
    extras: dict = field(default_factory=dict)
    # what the model's output means and its noise level at a step: the one place that knows the family
    parameterization: Parameterization = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        adapt_in_place(self.transformer)  # the speed work's diffusers adaptations; no copy
        family = self.extras.get("family", DEFAULT_FAMILY)
        if family != DEFAULT_FAMILY:  # samplers shared by flow families read its time convention from here
            self.scheduler_config = {**self.scheduler_config, "family": family}
        self.parameterization = parameterization_for(family, self.scheduler_config, self.transformer.config)

    @property
    def null_class(self) -> int:
        # the CFG "no class" embedding sits right after the real classes
        return int(self.transformer.config.num_embeds_ada_norm)

    @property
    def num_classes(self) -> int:
        return self.null_class

    @property
    def has_null_class(self) -> bool:
        """Whether it was trained with class dropout: without a null class there is no guidance."""
        return bool(self.extras.get("has_null_class", True))

    @property
    def latent_channels(self) -> int:
        return int(self.transformer.config.in_channels)

    @property
    def latent_size(self) -> int:
        return int(self.transformer.config.sample_size)

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        return self.latent_channels, self.latent_size, self.latent_size

    @property
    def learned_sigma(self) -> bool:
        """DiT-XL/2 predicts eps and a variance: twice the latent channels."""
        return self.parameterization.learned_variance

    @property
    def default_cfg(self) -> float:
        """The guidance scale the model's authors recommend (model_index.json), else DiT's visual 4.0."""
        return float(self.extras.get("default_cfg_scale", DIT_VISUAL_CFG))

    @property
    def num_train_timesteps(self) -> int:
        return int(self.scheduler_config.get("num_train_timesteps", 1000))

    @property
    def image_size(self) -> int:
        return self.latent_size * 2 ** (len(self.vae.config.block_out_channels) - 1)

    # ---- the VAE: latents here are always in the scaled space the transformer works in

    def unscaled(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents in the VAE's own units (what its decoder takes): divided by its ``scaling_factor``."""
        return latents / self.vae.config.scaling_factor

    def decode(self, latents: torch.Tensor, batch: int = 8) -> torch.Tensor:
        """(N, C, h, w) scaled latents -> (N, 3 or 1, H, W) pixels in [-1, 1], float32 on the CPU."""
        if latents.ndim == 3:
            latents = latents[None]
        out = []
        with torch.inference_mode():
            for i in range(0, len(latents), batch):
                z = self.unscaled(latents[i : i + batch].to(self.device, self.vae.dtype))
                out.append(self.vae.decode(z).sample.float().clamp(-1, 1).cpu())
        return torch.cat(out)

    def encode(self, pixels: torch.Tensor, batch: int = 256) -> torch.Tensor:
        """(N, C, H, W) pixels in [-1, 1] -> (N, C, h, w) scaled latents (the posterior mean)."""
        with torch.inference_mode():
            means = [
                self.vae.encode(pixels[i : i + batch].to(self.device, self.vae.dtype)).latent_dist.mean
                for i in range(0, len(pixels), batch)
            ]
        return torch.cat(means).float().cpu() * self.vae.config.scaling_factor

    def decode_images(self, latents: torch.Tensor) -> list[Image.Image]:
        """(N, C, h, w) scaled latents -> RGB PIL images (grayscale VAEs are widened to RGB)."""
        pixels = self.decode(latents)  # (N, 1 or 3, H, W)
        if pixels.shape[1] == 1:
            pixels = pixels.expand(-1, 3, -1, -1)
        arr = ((pixels + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
        return [Image.fromarray(a) for a in arr]
