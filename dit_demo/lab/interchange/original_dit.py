"""Checkpoints of the original DiT training code (facebookresearch/DiT and its forks) and the diffusers
DiT this project runs: reading them safely, inferring the architecture from the tensors, and mapping
the weights both ways.

Facts of that code's layout: ``x_embedder.proj`` is the patch convolution; ``pos_embed`` a fixed
sin-cos table stored in the checkpoint; ``t_embedder.mlp.{0,2}`` and ``y_embedder.embedding_table``
(one extra row, the null class, when trained with class dropout) are shared by every block, which
diffusers copies into each; ``blocks.{i}.attn.qkv`` stacks q, k and v; ``final_layer.linear``
writes (patch row, patch column, channel), eps channels before variance ones. Every LayerNorm has
eps 1e-6, and the timestep features divide the frequency exponent by half the width.
"""

from __future__ import annotations

import argparse
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from dit_demo.runtime.checkpoints import reason
from dit_demo.runtime.dit import CONFIGS, ORIGINAL_NORM_EPS, build_dit, use_original_frequencies

ALLOWED_GLOBALS = ("argparse.Namespace",)  # what train.py puts in a checkpoint besides tensors
PARTS = ("ema", "model")  # train.py's two sets of weights; a plain state dict is neither


@dataclass(frozen=True, kw_only=True)
class Arch:
    """What a checkpoint's tensors say about the DiT that made them."""

    depth: int
    hidden: int
    heads: int
    patch: int
    in_channels: int
    learned_sigma: bool
    num_classes: int
    has_null_class: bool
    latent_size: int
    name: str | None = None  # the paper's configuration it matches ("DiT-XL/2"), if any


def read_checkpoint(path: str | os.PathLike, weights: str = "ema") -> tuple[dict, argparse.Namespace | None]:
    """The state dict (``weights``: "ema" or "model" of a train.py checkpoint; a plain state dict as it
    is) and train.py's ``args`` if stored. Weights-only: nothing in the file runs; a global other than
    ``argparse.Namespace`` is refused by name."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No checkpoint at {path}.")
    try:
        found = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception:  # a legacy (non-zip) pickle, or not a checkpoint: the weights-only loader vets it
        found = []
    _refuse(path.name, [g for g in found if g not in ALLOWED_GLOBALS])
    try:
        with torch.serialization.safe_globals([argparse.Namespace]), warnings.catch_warnings():
            # the unpickler's notes on odd bytes would print around the one line that says what is wrong
            warnings.filterwarnings("ignore", category=UserWarning, module="torch")
            data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # bytes that are no pickle fail in it every way: KeyError, IndexError, struct.error, ...
        _refuse(path.name, re.findall(r"GLOBAL ([\w.]+)", str(exc)))  # a legacy pickle's refused global
        # PyTorch's own text is left out: it advises weights_only=False, which would run whatever the file holds
        raise ValueError(
            f"{path.name} is not a PyTorch checkpoint, or it is cut short: import reads what torch.save wrote, "
            "a train.py checkpoint (results/NNN-DiT-*/checkpoints/NNNNNNN.pt) or a plain state dict of tensors."
        ) from None
    return _state_dict(data, weights, path.name)


def _refuse(name: str, foreign: list[str]) -> None:
    if foreign:
        raise ValueError(
            f"{name} asks to create {', '.join(foreign[:3])}, which a DiT checkpoint never holds; it was "
            f"not loaded (only tensors and {ALLOWED_GLOBALS[0]} are read)."
        )


def _state_dict(data, weights: str, name: str) -> tuple[dict, argparse.Namespace | None]:
    if not isinstance(data, dict):
        raise ValueError(f"{name} holds {type(data).__name__}, not a state dict or a train.py checkpoint.")
    args = data.get("args") if isinstance(data.get("args"), argparse.Namespace) else None
    if any(part in data for part in PARTS):  # train.py: {"model", "ema", "opt", "args"}
        if weights not in PARTS or not isinstance(data.get(weights), dict):
            there = ", ".join(p for p in PARTS if isinstance(data.get(p), dict))
            raise ValueError(f"{name} has no {weights!r} weights; it has {there} (--weights {'|'.join(PARTS)}).")
        data = data[weights]
    elif weights == "model":
        raise ValueError(
            f"{name} is a plain state dict, one set of weights; --weights model is for train.py checkpoints."
        )
    state = {key.removeprefix("module."): value for key, value in data.items()}  # DDP's prefix, if saved so
    if not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{name} is not a state dict of tensors.")
    return state, args


def infer_arch(
    state: dict,
    args: argparse.Namespace | None = None,
    arch: str | None = None,
    num_classes: int | None = None,
    heads: int | None = None,
) -> Arch:
    """The architecture from the tensors; ``arch``, ``num_classes`` and ``heads`` (flags, else train.py's
    ``args``) fill in what the tensors cannot say and must agree with what they do. The image size is not
    checked here: its pixels depend on the VAE as well (``dit_import.vae_misfit``)."""
    _check_keys(state)
    hidden, in_channels, patch, _ = state["x_embedder.proj.weight"].shape
    depth = 1 + max(int(m[1]) for k in state if (m := re.match(r"blocks\.(\d+)\.", k)))
    out_channels = state["final_layer.linear.weight"].shape[0] // (patch * patch)
    if out_channels not in (in_channels, 2 * in_channels):
        raise ValueError(
            f"The final layer writes {out_channels} channels per pixel; a DiT writes {in_channels} or {2 * in_channels}."
        )
    rows = state["y_embedder.embedding_table.weight"].shape[0]
    named = arch or getattr(args, "model", None)
    classes, null = _classes(rows, num_classes if num_classes is not None else getattr(args, "num_classes", None), args)
    latent = _latent_size(state, patch)
    sizes = (depth, hidden, patch)
    name = None
    if heads is None or named is not None:
        config_heads, name = _heads(sizes, named, arch is not None)
        if heads is not None and heads != config_heads:
            raise ValueError(f"--heads {heads} contradicts {name}, which has {config_heads} heads.")
        heads = config_heads
    if hidden % heads:
        raise ValueError(f"--heads {heads} does not divide the hidden size {hidden}.")
    learned_sigma = out_channels == 2 * in_channels
    return Arch(depth=depth, hidden=hidden, heads=heads, patch=patch, in_channels=in_channels, learned_sigma=learned_sigma,
                num_classes=classes, has_null_class=null, latent_size=latent, name=name)  # fmt: skip


def _check_keys(state: dict) -> None:
    needed = ["x_embedder.proj.weight", "x_embedder.proj.bias", "pos_embed", "t_embedder.mlp.0.weight"]
    needed += ["y_embedder.embedding_table.weight", "final_layer.linear.weight", "blocks.0.attn.qkv.weight"]
    missing = [k for k in needed if k not in state]
    if missing:
        raise ValueError(
            f"This is not a checkpoint of the original DiT code: {', '.join(missing[:4])} "
            f"{'is' if len(missing) == 1 else 'are'} missing (it has {', '.join(list(state)[:4])}, ...)."
        )


def _classes(rows: int, asked: int | None, args) -> tuple[int, bool]:
    """(class count, whether the table's last row is the null class)."""
    if asked is not None:
        if rows not in (asked, asked + 1):
            raise ValueError(
                f"The label table has {rows} rows, which fits {rows - 1} classes and the null class, or {rows} "
                f"classes without one; --num-classes (or args.num_classes) says {asked}."
            )
        if args is not None and getattr(args, "class_dropout_prob", None) == 0 and rows == asked + 1:
            raise ValueError("train.py's args say no class dropout, but the label table has a null-class row.")
        return asked, rows == asked + 1
    if rows == 1001:  # the released ImageNet checkpoints: 1000 classes and the null class
        return 1000, True
    raise ValueError(
        f"The label table has {rows} rows: {rows - 1} classes and the null class (trained with class dropout), "
        f"or {rows} classes without one. Say which with --num-classes."
    )


def _latent_size(state: dict, patch: int) -> int:
    tokens = state["pos_embed"].shape[-2]
    side = round(tokens**0.5)
    if side * side != tokens:
        raise ValueError(f"The position embedding has {tokens} tokens, not a square grid of patches.")
    return side * patch


def _heads(sizes: tuple[int, int, int], named: str | None, from_flag: bool) -> tuple[int, str | None]:
    matches = [name for name, (d, h, _, p) in CONFIGS.items() if (d, h, p) == sizes]
    if named is not None:
        # SiT's models.py names DiT's twelve networks "SiT-XL/2" and so on
        config = CONFIGS.get(f"DiT-{named[4:]}" if str(named).startswith("SiT-") else named)
        if config is None:
            raise ValueError(f"Unknown DiT configuration {str(named)[:30]!r}; choose one of {', '.join(CONFIGS)}.")
        depth, hidden, heads, patch = config
        if (depth, hidden, patch) != sizes:
            where = "--arch" if from_flag else "args.model"
            raise ValueError(
                f"{where} says {named} (depth {depth}, hidden {hidden}, patch {patch}), but the tensors are "
                f"depth {sizes[0]}, hidden {sizes[1]}, patch {sizes[2]}."
            )
        return heads, named
    if matches:
        return CONFIGS[matches[0]][2], matches[0]
    raise ValueError(
        f"The tensors (depth {sizes[0]}, hidden {sizes[1]}, patch {sizes[2]}) match none of the paper's DiT "
        "configurations, so the number of attention heads is unknown: give --arch (one of those twelve) or --heads N."
    )


def to_diffusers(state: dict, arch: Arch) -> torch.nn.Module:
    """The diffusers DiT with the checkpoint's weights, running as the original code does (its timestep
    frequencies and LayerNorm eps). A model without a null class gets an unused zero row in its place."""
    model = build_dit(
        arch.depth, arch.hidden, arch.heads, arch.num_classes, arch.latent_size, arch.patch, arch.in_channels,
        arch.learned_sigma, norm_eps=ORIGINAL_NORM_EPS,
    )  # fmt: skip
    use_original_frequencies(model)
    table = state["y_embedder.embedding_table.weight"]
    if not arch.has_null_class:
        table = torch.cat([table, table.new_zeros(1, table.shape[1])])
    mapped = {
        "pos_embed.proj.weight": state["x_embedder.proj.weight"],
        "pos_embed.proj.bias": state["x_embedder.proj.bias"],
        "proj_out_1.weight": state["final_layer.adaLN_modulation.1.weight"],
        "proj_out_1.bias": state["final_layer.adaLN_modulation.1.bias"],
        "proj_out_2.weight": state["final_layer.linear.weight"],
        "proj_out_2.bias": state["final_layer.linear.bias"],
    }
    for i in range(arch.depth):
        mapped.update(_block_to_diffusers(state, i, table))
    expected = set(model.state_dict())
    missing, extra = sorted(expected - set(mapped)), sorted(set(mapped) - expected)
    if missing or extra:
        raise ValueError(f"The weights do not fit a DiT: missing {missing[:3]}, unexpected {extra[:3]}.")
    try:
        model.load_state_dict({k: v.float() for k, v in mapped.items()}, strict=True)
    except RuntimeError as exc:
        raise ValueError(f"The weights' shapes fit no DiT of these sizes ({reason(exc)}).") from None
    _check_position_table(model, state["pos_embed"])
    return model


def _block_to_diffusers(state: dict, i: int, table: torch.Tensor) -> dict:
    old, new = f"blocks.{i}.", f"transformer_blocks.{i}."
    q, k, v = state[old + "attn.qkv.weight"].chunk(3)
    qb, kb, vb = state[old + "attn.qkv.bias"].chunk(3)
    emb = new + "norm1.emb."
    return {
        emb + "timestep_embedder.linear_1.weight": state["t_embedder.mlp.0.weight"],
        emb + "timestep_embedder.linear_1.bias": state["t_embedder.mlp.0.bias"],
        emb + "timestep_embedder.linear_2.weight": state["t_embedder.mlp.2.weight"],
        emb + "timestep_embedder.linear_2.bias": state["t_embedder.mlp.2.bias"],
        emb + "class_embedder.embedding_table.weight": table,
        new + "norm1.linear.weight": state[old + "adaLN_modulation.1.weight"],
        new + "norm1.linear.bias": state[old + "adaLN_modulation.1.bias"],
        new + "attn1.to_q.weight": q,
        new + "attn1.to_k.weight": k,
        new + "attn1.to_v.weight": v,
        new + "attn1.to_q.bias": qb,
        new + "attn1.to_k.bias": kb,
        new + "attn1.to_v.bias": vb,
        new + "attn1.to_out.0.weight": state[old + "attn.proj.weight"],
        new + "attn1.to_out.0.bias": state[old + "attn.proj.bias"],
        new + "ff.net.0.proj.weight": state[old + "mlp.fc1.weight"],
        new + "ff.net.0.proj.bias": state[old + "mlp.fc1.bias"],
        new + "ff.net.2.weight": state[old + "mlp.fc2.weight"],
        new + "ff.net.2.bias": state[old + "mlp.fc2.bias"],
    }


def _check_position_table(model, stored: torch.Tensor) -> None:
    ours = model.pos_embed.pos_embed.float()
    if stored.shape != ours.shape or not torch.allclose(stored.float(), ours, atol=1e-5):
        raise ValueError("The checkpoint's position embedding is not DiT's fixed sin-cos table; it cannot be run here.")


def to_original(model, has_null_class: bool = True) -> dict:
    """The diffusers DiT's weights in the original code's key layout (``export``): the inverse of
    :func:`to_diffusers` (shared embedders taken from the first block)."""
    sd = {k: v.detach().float().cpu() for k, v in model.state_dict().items()}
    emb = "transformer_blocks.0.norm1.emb."
    table = sd[emb + "class_embedder.embedding_table.weight"]
    out = {
        "x_embedder.proj.weight": sd["pos_embed.proj.weight"],
        "x_embedder.proj.bias": sd["pos_embed.proj.bias"],
        "pos_embed": model.pos_embed.pos_embed.detach().float().cpu().clone(),
        "t_embedder.mlp.0.weight": sd[emb + "timestep_embedder.linear_1.weight"],
        "t_embedder.mlp.0.bias": sd[emb + "timestep_embedder.linear_1.bias"],
        "t_embedder.mlp.2.weight": sd[emb + "timestep_embedder.linear_2.weight"],
        "t_embedder.mlp.2.bias": sd[emb + "timestep_embedder.linear_2.bias"],
        "y_embedder.embedding_table.weight": table if has_null_class else table[:-1],
        "final_layer.adaLN_modulation.1.weight": sd["proj_out_1.weight"],
        "final_layer.adaLN_modulation.1.bias": sd["proj_out_1.bias"],
        "final_layer.linear.weight": sd["proj_out_2.weight"],
        "final_layer.linear.bias": sd["proj_out_2.bias"],
    }
    for i in range(len(model.transformer_blocks)):
        new, old = f"transformer_blocks.{i}.", f"blocks.{i}."
        out[old + "adaLN_modulation.1.weight"] = sd[new + "norm1.linear.weight"]
        out[old + "adaLN_modulation.1.bias"] = sd[new + "norm1.linear.bias"]
        out[old + "attn.qkv.weight"] = torch.cat([sd[new + f"attn1.to_{x}.weight"] for x in "qkv"])
        out[old + "attn.qkv.bias"] = torch.cat([sd[new + f"attn1.to_{x}.bias"] for x in "qkv"])
        out[old + "attn.proj.weight"] = sd[new + "attn1.to_out.0.weight"]
        out[old + "attn.proj.bias"] = sd[new + "attn1.to_out.0.bias"]
        for a, b in (("fc1", "ff.net.0.proj"), ("fc2", "ff.net.2")):
            out[old + f"mlp.{a}.weight"] = sd[new + f"{b}.weight"]
            out[old + f"mlp.{a}.bias"] = sd[new + f"{b}.bias"]
    return out
