"""QK-norm: a LayerNorm over each head's queries and keys (timm's ``Attention(qk_norm=True)``, REPA's blocks).

diffusers' ``Attention`` has the slots for it, ``norm_q`` and ``norm_k``, which its processors (and this
project's ``SignedAttnProcessor``, a subclass of ``AttnProcessor2_0``) apply to (rows, heads, tokens, head
dim) right after the q/k projections, where timm applies ``q_norm`` and ``k_norm``. A DiT's config cannot
say that its blocks have them, so ``model_index.json`` does ("qk_norm": :data:`QK_NORM`) and the loader
puts them back (:func:`load_qk_norms`) before reading their weights from the transformer's file.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import safe_open

QK_NORM = "layer_norm"  # diffusers' name for it (``Attention(qk_norm="layer_norm")``)
QK_NORM_EPS = 1e-5  # timm's default norm_layer is a plain nn.LayerNorm, with its default eps
ORIGINAL_NAMES = {"q_norm": "norm_q", "k_norm": "norm_k"}  # timm's name -> diffusers'


def add_qk_norms(transformer: torch.nn.Module) -> torch.nn.Module:
    """Give every block's self-attention a fresh per-head LayerNorm on q and on k, in the model's dtype, in place."""
    for block in transformer.transformer_blocks:
        attention = block.attn1
        head_dim = attention.inner_dim // attention.heads
        like = attention.to_out[0].weight
        for name in ORIGINAL_NAMES.values():
            norm = torch.nn.LayerNorm(head_dim, eps=QK_NORM_EPS, device=like.device, dtype=like.dtype)
            setattr(attention, name, norm)
    return transformer


def has_qk_norms(transformer: torch.nn.Module) -> bool:
    """Whether the blocks normalize q and k (an imported REPA model trained with ``--qk-norm``)."""
    return getattr(transformer.transformer_blocks[0].attn1, "norm_q", None) is not None


def qk_norms_from_original(state: dict, depth: int) -> dict:
    """The original code's ``blocks.N.attn.{q,k}_norm.{weight,bias}`` under diffusers' names."""
    mapped = {}
    for i in range(depth):
        for theirs, ours in ORIGINAL_NAMES.items():
            for kind in ("weight", "bias"):
                mapped[f"transformer_blocks.{i}.attn1.{ours}.{kind}"] = state[f"blocks.{i}.attn.{theirs}.{kind}"]
    return mapped


def qk_norms_to_original(transformer: torch.nn.Module) -> dict:
    """The blocks' q/k norms in the original code's key layout (``export``); empty where there are none."""
    if not has_qk_norms(transformer):
        return {}
    out = {}
    for i, block in enumerate(transformer.transformer_blocks):
        for theirs, ours in ORIGINAL_NAMES.items():
            norm = getattr(block.attn1, ours)
            out[f"blocks.{i}.attn.{theirs}.weight"] = norm.weight.detach().float().cpu().clone()
            out[f"blocks.{i}.attn.{theirs}.bias"] = norm.bias.detach().float().cpu().clone()
    return out


def load_qk_norms(transformer: torch.nn.Module, weights_file: Path, kind: str = QK_NORM) -> None:
    """Put the q/k norms back on a loaded transformer and read their weights from its safetensors file
    (diffusers' loader skipped them: its DiT has no such modules); ``ValueError`` in one sentence otherwise."""
    if kind != QK_NORM:
        raise ValueError(f"The model's q/k norm is {str(kind)[:30]!r}; this version runs {QK_NORM!r} (timm's) only.")
    add_qk_norms(transformer)
    wanted = {k: p for k, p in transformer.named_parameters() if ".norm_q." in k or ".norm_k." in k}
    with safe_open(str(weights_file), "pt") as f:
        missing = sorted(set(wanted) - set(f.keys()))
        if missing:
            raise ValueError(f"{weights_file} lacks the q/k norm weights the model announces (e.g. {missing[0]}).")
        with torch.no_grad():
            for key, target in wanted.items():
                target.copy_(f.get_tensor(key))
