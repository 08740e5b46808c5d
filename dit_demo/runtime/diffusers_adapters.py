"""Every place this project changes or re-implements diffusers' DiT, in one module.

The speed work adapts a loaded ``DiTTransformer2DModel``, each adaptation computing what diffusers'
own code computes (the erf GELU, marked below, is the one deliberate change):

- **signed attention processors**: diffusers' ``AttnProcessor2_0`` objects become
  ``SignedAttnProcessor`` (``sign_processors``);
- **shared embedders**: each block's ``CombinedTimestepLabelEmbeddings`` and its ``Timesteps`` become
  ``SharedEmbedding`` / ``SharedTimesteps``, grouped by equal weights (``share_conditioning``; the
  memo and the scope they share in are ``runtime/conditioning.py``'s);
- **the int8 lever's rewrites**: q/k/v fused by diffusers' own ``Attention.fuse_projections`` and
  ``FusedAttnProcessor2_0`` (``fuse_qkv``), and the feed-forward's ``GELU`` by erf instead of tanh
  (``erf_gelu``; a deliberate change, what diffusers builds for ``activation_fn="gelu"``);
- **the split forward**: ``DiTTransformer2DModel.forward`` re-implemented in its three steps (input,
  blocks, output layer and unpatchify), so that the first-block cache (``runtime/block_cache.py``)
  can stop after the first block.

Nothing else in the project swaps a diffusers class or reads a diffusers module's internals for
speed. Each adaptation names the diffusers class or method it mirrors, and
``tests/test_diffusers_adapters.py`` compares each against diffusers' own unmodified forward on the
installed version (to the bit; fused q/k/v within a millionth of the output's size): a diffusers
release that changes one of them fails there, by name, instead of moving images silently.
``requirements.txt`` bounds diffusers to the versions those tests passed on (the README says how to
move the bound).

``adapt_in_place`` applies the class swaps that every bundle takes to the model it is handed: it does
not copy (a copy of DiT-XL/2 would double the memory of its weights). The int8 lever's rewrites run
on the copy that lever makes (``runtime/int8.py``).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import torch
import torch.nn.functional as F
from diffusers.models.activations import GELU
from diffusers.models.attention_processor import Attention, AttnProcessor2_0, FusedAttnProcessor2_0
from diffusers.models.embeddings import CombinedTimestepLabelEmbeddings, Timesteps

from dit_demo.runtime.conditioning import Memo, grouped, same_weights

# ---- signed attention processors (diffusers' Attention.forward, AttnProcessor2_0)


class SignedAttnProcessor(AttnProcessor2_0):
    """diffusers' ``AttnProcessor2_0`` (the DiT's scaled-dot-product processor), unchanged, with its
    ``__call__`` signature computed once.

    diffusers' ``Attention.forward`` asks ``inspect.signature(self.processor.__call__)`` on every call,
    to warn about keyword arguments the processor would not take: pure Python, once per attention
    layer and forward, which counts where an eager forward on a GPU is bound by the host's pace.
    ``inspect`` returns a function's ``__signature__`` when it has one, so this processor answers at
    once; it computes exactly what diffusers' does."""

    def __call__(self, *args, **kwargs) -> torch.Tensor:
        return super().__call__(*args, **kwargs)


SignedAttnProcessor.__call__.__signature__ = inspect.signature(AttnProcessor2_0.__call__)


def sign_processors(transformer: torch.nn.Module) -> int:
    """Swap each plain ``AttnProcessor2_0`` for the signed one in place (same object, same state); how
    many processors are signed after. Other processors (a user's, LoRA's) and wrappers that are not
    modules are left as they are."""
    signed = 0
    if not isinstance(transformer, torch.nn.Module):
        return signed
    for module in transformer.modules():
        processor = getattr(module, "processor", None)
        if type(processor) is AttnProcessor2_0:
            processor.__class__ = SignedAttnProcessor
        signed += type(processor) is SignedAttnProcessor
    return signed


# ---- shared embedders (diffusers' CombinedTimestepLabelEmbeddings and Timesteps, in AdaLayerNormZero)

# the attributes of diffusers' ``Timesteps`` that decide its features (it has no weights)
TIME_FEATURES = ("num_channels", "flip_sin_to_cos", "downscale_freq_shift", "scale")


class SharedEmbedding(CombinedTimestepLabelEmbeddings):
    """diffusers' ``CombinedTimestepLabelEmbeddings.forward`` (a block's ``norm1.emb``), handing back its
    group's result for the same inputs inside ``conditioning.sharing()``."""

    memo: Memo

    def forward(self, timestep, class_labels, hidden_dtype=None) -> torch.Tensor:
        compute = super().forward
        return self.memo.once(
            (timestep, class_labels, hidden_dtype), lambda: compute(timestep, class_labels, hidden_dtype)
        )


class SharedTimesteps(Timesteps):
    """diffusers' ``Timesteps.forward`` (sinusoidal features, no weights; ``norm1.emb.time_proj``),
    handing back its group's result for the same timesteps: blocks with embedders of their own still
    share these."""

    memo: Memo

    def forward(self, timesteps: torch.Tensor) -> torch.Tensor:
        compute = super().forward
        return self.memo.once((timesteps,), lambda: compute(timesteps))


def block_embedders(transformer) -> list[CombinedTimestepLabelEmbeddings]:
    """Each block's (timestep, class) embedder (``transformer_blocks[i].norm1.emb``, diffusers'
    ``BasicTransformerBlock`` with ``AdaLayerNormZero``); empty where the model has other blocks."""
    blocks = getattr(transformer, "transformer_blocks", None) or []
    embedders = [getattr(block.norm1, "emb", None) for block in blocks if hasattr(block, "norm1")]
    if not embedders or not all(isinstance(e, CombinedTimestepLabelEmbeddings) for e in embedders):
        return []
    return embedders


def share_conditioning(transformer) -> int:
    """Group the blocks' embedders by equal weights and time features, in place; the number of groups
    (0 where the model has no such embedders, 1 for a model converted from the original code).
    Decided once, when a bundle is made: an inference bundle's weights do not change after."""
    embedders = block_embedders(transformer)
    if not embedders:
        return 0
    if all(isinstance(e, SharedEmbedding) for e in embedders):  # grouped when the model was loaded
        return len({id(e.memo) for e in embedders})
    groups = grouped(embedders, lambda a, b: same_time_features(a.time_proj, b.time_proj) and same_weights(a, b))
    for embedder, memo in zip(embedders, groups):
        embedder.__class__ = SharedEmbedding  # same module, same state dict: only its forward differs
        embedder.memo = memo
    features = [e.time_proj for e in embedders]
    for time_proj, memo in zip(features, grouped(features, same_time_features)):
        if isinstance(time_proj, Timesteps):
            time_proj.__class__ = SharedTimesteps
            time_proj.memo = memo
    return len({id(memo) for memo in groups})


def same_time_features(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    """Whether two of diffusers' ``Timesteps`` make the same features (``TIME_FEATURES`` equal)."""
    return type(a) is type(b) and all(getattr(a, k, None) == getattr(b, k, None) for k in TIME_FEATURES)


# ---- the split forward (diffusers' DiTTransformer2DModel.forward, in its three steps)


def embed_patches(model, x: torch.Tensor) -> torch.Tensor:
    """``DiTTransformer2DModel.forward``, step 1 (input): latents -> (rows, tokens, hidden)."""
    return model.pos_embed(x)


def run_blocks(model, h: torch.Tensor, t: torch.Tensor, y: torch.Tensor, start: int = 0, stop: int | None = None):
    """``DiTTransformer2DModel.forward``, step 2 (blocks), for blocks ``start`` to ``stop`` (all by
    default), called as the forward calls them without gradient checkpointing."""
    for block in model.transformer_blocks[start:stop]:
        h = block(h, timestep=t, class_labels=y)
    return h


def output_layer(model, h: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``DiTTransformer2DModel.forward``, step 3 (output) and unpatchify: block 0's embedder, the adaLN
    modulation (``proj_out_1``), ``norm_out`` and ``proj_out_2``; (rows, tokens, hidden) -> latents."""
    conditioning = model.transformer_blocks[0].norm1.emb(t, y, hidden_dtype=h.dtype)
    shift, scale = model.proj_out_1(F.silu(conditioning)).chunk(2, dim=1)
    h = model.proj_out_2(model.norm_out(h) * (1 + scale[:, None]) + shift[:, None])  # (rows, tokens, p*p*C)
    side, patch, channels = int(h.shape[1] ** 0.5), model.patch_size, model.out_channels
    h = h.reshape(-1, side, side, patch, patch, channels)
    return torch.einsum("nhwpqc->nchpwq", h).reshape(-1, channels, side * patch, side * patch)


# ---- the int8 lever's rewrites (diffusers' Attention.fuse_projections, FusedAttnProcessor2_0, GELU)


def fuse_qkv(module: torch.nn.Module) -> int:
    """One q/k/v projection per self-attention, in place, by diffusers' own ``Attention.fuse_projections``
    and ``FusedAttnProcessor2_0``; the three layers it replaces are dropped. How many were fused."""
    fused = 0
    for attention in module.modules():
        if isinstance(attention, Attention) and not attention.is_cross_attention:
            with torch.no_grad():
                attention.fuse_projections()
            attention.set_processor(FusedAttnProcessor2_0())
            del attention.to_q, attention.to_k, attention.to_v  # the fused layer replaces them
            fused += 1
    return fused


def erf_gelu(module: torch.nn.Module) -> int:
    """Each of diffusers' ``GELU`` layers with the tanh approximation (the DiT's feed-forward) computing by
    erf instead, in place (its ``approximate`` attribute, read by ``GELU.gelu`` on every call): what
    diffusers builds for ``activation_fn="gelu"``. How many were switched."""
    switched = 0
    for activation in module.modules():
        if isinstance(activation, GELU) and activation.approximate == "tanh":
            activation.approximate = "none"
            switched += 1
    return switched


# ---- all of them


ADAPTATIONS: dict[str, Callable[[torch.nn.Module], int]] = {
    "shared embedders": share_conditioning,  # blocks with equal embedders embed once per engine forward
    "signed attention processors": sign_processors,  # no signature built per attention call
}


def adapt_in_place(transformer) -> dict[str, int]:
    """Apply every class swap above to ``transformer`` itself (no copy; its weights and outputs are
    unchanged); how many modules or groups each adaptation made. Applying it again changes nothing."""
    return {name: adapt(transformer) for name, adapt in ADAPTATIONS.items()}
