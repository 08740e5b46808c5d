"""The DiT transformer, built in one place: from a named configuration of the DiT paper (S, B, L, XL
x patch 2, 4, 8) or from explicit sizes. Training, the timing stand-in and the tests all build it here."""

from __future__ import annotations

from diffusers import DiTTransformer2DModel

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
    )


def build_named(name: str, num_classes: int, latent_size: int, **sizes) -> DiTTransformer2DModel:
    """One of the paper's configurations by name ("DiT-XL/2"); ``ValueError`` naming the twelve."""
    if name not in CONFIGS:
        raise ValueError(f"Unknown DiT configuration {name[:30]!r}; choose one of {', '.join(CONFIGS)}.")
    depth, hidden, heads, patch = CONFIGS[name]
    return build_dit(depth, hidden, heads, num_classes, latent_size, patch, **sizes)
