"""The original DiT code's model, written again from its published facts for the tests: its checkpoint
key layout, a functional forward pass over such a state dict, and checkpoints of both forms with
random weights. The import is checked against this, never against itself."""

from __future__ import annotations

import argparse
import math

import torch
import torch.nn.functional as F


def timestep_features(t: torch.Tensor, dim: int = 256, max_period: float = 10000.0) -> torch.Tensor:
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32) / half)  # / half
    args = t[:, None].float() * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


def sincos_table(hidden: int, grid: int) -> torch.Tensor:
    """The fixed 2-D sin-cos position table (MAE's): half the channels for each axis, column first."""

    def one_axis(dim: int, pos: torch.Tensor) -> torch.Tensor:
        omega = 1.0 / 10000 ** (torch.arange(dim // 2, dtype=torch.float64) / (dim / 2))
        out = pos.double()[:, None] * omega[None]
        return torch.cat([torch.sin(out), torch.cos(out)], dim=1)

    row, col = torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing="ij")
    table = torch.cat([one_axis(hidden // 2, col.flatten()), one_axis(hidden // 2, row.flatten())], dim=1)
    return table.float()[None]


def random_state(depth, hidden, heads, patch, channels, learned_sigma, rows, latent, seed=0) -> dict:
    """A state dict in the original layout (``rows``: the label table's rows), random but not degenerate."""
    g = torch.Generator().manual_seed(seed)

    def w(*shape, scale=0.05):
        return torch.randn(*shape, generator=g) * scale

    out = 2 * channels if learned_sigma else channels
    state = {
        "x_embedder.proj.weight": w(hidden, channels, patch, patch, scale=0.2),
        "x_embedder.proj.bias": w(hidden),
        "pos_embed": sincos_table(hidden, latent // patch),
        "t_embedder.mlp.0.weight": w(hidden, 256),
        "t_embedder.mlp.0.bias": w(hidden),
        "t_embedder.mlp.2.weight": w(hidden, hidden),
        "t_embedder.mlp.2.bias": w(hidden),
        "y_embedder.embedding_table.weight": w(rows, hidden, scale=0.5),
        "final_layer.adaLN_modulation.1.weight": w(2 * hidden, hidden),
        "final_layer.adaLN_modulation.1.bias": w(2 * hidden),
        "final_layer.linear.weight": w(patch * patch * out, hidden),
        "final_layer.linear.bias": w(patch * patch * out),
    }
    for i in range(depth):
        b = f"blocks.{i}."
        state.update({
            b + "attn.qkv.weight": w(3 * hidden, hidden), b + "attn.qkv.bias": w(3 * hidden),
            b + "attn.proj.weight": w(hidden, hidden), b + "attn.proj.bias": w(hidden),
            b + "mlp.fc1.weight": w(4 * hidden, hidden), b + "mlp.fc1.bias": w(4 * hidden),
            b + "mlp.fc2.weight": w(hidden, 4 * hidden), b + "mlp.fc2.bias": w(hidden),
            b + "adaLN_modulation.1.weight": w(6 * hidden, hidden, scale=0.2), b + "adaLN_modulation.1.bias": w(6 * hidden),
        })  # fmt: skip
    return state


def train_checkpoint(state: dict, **args) -> dict:
    """train.py's form: raw and EMA weights, the optimizer's state and its argparse arguments."""
    raw = {k: v + 0.01 for k, v in state.items()}  # the raw weights differ from the EMA ones
    opt = {"state": {}, "param_groups": [{"lr": 1e-4, "weight_decay": 0, "params": [0, 1]}]}
    return {"model": raw, "ema": state, "opt": opt, "args": argparse.Namespace(**args)}


def forward(state: dict, heads: int, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The original DiT's forward on a state dict (fp32): patches, adaLN-Zero blocks, final layer."""
    hidden, channels, patch, _ = state["x_embedder.proj.weight"].shape
    n, grid = x.shape[0], x.shape[-1] // patch
    h = F.conv2d(x, state["x_embedder.proj.weight"], state["x_embedder.proj.bias"], stride=patch)
    h = h.flatten(2).transpose(1, 2) + state["pos_embed"]
    temb = F.linear(timestep_features(t), state["t_embedder.mlp.0.weight"], state["t_embedder.mlp.0.bias"])
    temb = F.linear(F.silu(temb), state["t_embedder.mlp.2.weight"], state["t_embedder.mlp.2.bias"])
    c = F.silu(temb + state["y_embedder.embedding_table.weight"][y])
    depth = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("blocks."))
    for i in range(depth):
        b = f"blocks.{i}."
        mod = F.linear(c, state[b + "adaLN_modulation.1.weight"], state[b + "adaLN_modulation.1.bias"]).chunk(6, dim=1)
        a = _modulate(F.layer_norm(h, (hidden,), eps=1e-6), mod[0], mod[1])
        h = h + mod[2][:, None] * _attention(state, b, a, heads)
        m = _modulate(F.layer_norm(h, (hidden,), eps=1e-6), mod[3], mod[4])
        m = F.gelu(F.linear(m, state[b + "mlp.fc1.weight"], state[b + "mlp.fc1.bias"]), approximate="tanh")
        h = h + mod[5][:, None] * F.linear(m, state[b + "mlp.fc2.weight"], state[b + "mlp.fc2.bias"])
    shift, scale = F.linear(
        c, state["final_layer.adaLN_modulation.1.weight"], state["final_layer.adaLN_modulation.1.bias"]
    ).chunk(2, 1)
    h = _modulate(F.layer_norm(h, (hidden,), eps=1e-6), shift, scale)
    h = F.linear(h, state["final_layer.linear.weight"], state["final_layer.linear.bias"])
    out = h.shape[-1] // (patch * patch)
    h = h.reshape(n, grid, grid, patch, patch, out)
    return torch.einsum("nhwpqc->nchpwq", h).reshape(n, out, grid * patch, grid * patch)


def _modulate(x, shift, scale):
    return x * (1 + scale[:, None]) + shift[:, None]


def _attention(state: dict, b: str, x: torch.Tensor, heads: int) -> torch.Tensor:
    n, tokens, hidden = x.shape
    qkv = F.linear(x, state[b + "attn.qkv.weight"], state[b + "attn.qkv.bias"])
    q, k, v = qkv.reshape(n, tokens, 3, heads, hidden // heads).permute(2, 0, 3, 1, 4)
    weights = (q @ k.transpose(-2, -1) / math.sqrt(hidden // heads)).softmax(dim=-1)
    return F.linear(
        (weights @ v).transpose(1, 2).reshape(n, tokens, hidden),
        state[b + "attn.proj.weight"],
        state[b + "attn.proj.bias"],
    )
