"""The DiT transformer, built in one place: from a named configuration of the DiT paper (S, B, L, XL
x patch 2, 4, 8) or from explicit sizes. Training, the timing stand-in and the tests all build it here."""

from __future__ import annotations

import torch
from diffusers import DiTTransformer2DModel

ORIGINAL_NORM_EPS = 1e-6  # every LayerNorm of the original code (diffusers' pre-MLP norm defaults to 1e-5)
ORIGINAL_FEATURES = "original"  # model_index.json's "timestep_features" for models from the original code

# the paper's Table 1: depth, hidden size, heads; each with patch sizes 2, 4 and 8 ("DiT-XL/2")
SIZES = {"S": (12, 384, 6), "B": (12, 768, 12), "L": (24, 1024, 16), "XL": (28, 1152, 16)}
CONFIGS = {f"DiT-{size}/{patch}": (*dims, patch) for size, dims in SIZES.items() for patch in (2, 4, 8)}


def build_dit(
    depth: int,
    hidden: int,
    heads: int,
    num_classes: int,
    latent_size: int,
    patch_size: int = 2,
    latent_channels: int = 4,
    learned_sigma: bool = True,
    norm_eps: float = 1e-5,
) -> DiTTransformer2DModel:
    """A class-conditional DiT with random weights (``learned_sigma``: eps and variance channels)."""
    if hidden % heads:
        raise ValueError(f"The hidden size {hidden} does not split into {heads} heads.")
    return DiTTransformer2DModel(
        num_attention_heads=heads,
        attention_head_dim=hidden // heads,
        in_channels=latent_channels,
        out_channels=latent_channels * (2 if learned_sigma else 1),
        num_layers=depth,
        sample_size=latent_size,
        patch_size=patch_size,
        num_embeds_ada_norm=num_classes,
        norm_eps=norm_eps,
    )


def use_original_frequencies(model: DiTTransformer2DModel) -> DiTTransformer2DModel:
    """Timestep features as the original DiT code makes them: the frequency exponent divided by half the
    feature width (128), where diffusers divides by one less (127). Mid frequencies differ by a third
    of a radian at t = 999, so a model trained with one must run with it; no weight mapping can fix it."""
    for block in model.transformer_blocks:
        block.norm1.emb.time_proj.downscale_freq_shift = 0
    return model


def as_original_code(model: DiTTransformer2DModel) -> DiTTransformer2DModel:
    """A model that came from the original code (imported, or the hub's two, which diffusers' script
    converted from it) run as that code ran it: its timestep features and LayerNorm eps everywhere."""
    use_original_frequencies(model)
    for module in model.modules():
        if isinstance(module, torch.nn.LayerNorm):
            module.eps = ORIGINAL_NORM_EPS
    return model


def build_named(name: str, num_classes: int, latent_size: int, **sizes) -> DiTTransformer2DModel:
    """One of the paper's configurations by name ("DiT-XL/2"); ``ValueError`` naming the twelve."""
    if name not in CONFIGS:
        raise ValueError(f"Unknown DiT configuration {name[:30]!r}; choose one of {', '.join(CONFIGS)}.")
    depth, hidden, heads, patch = CONFIGS[name]
    return build_dit(depth, hidden, heads, num_classes, latent_size, patch, **sizes)
