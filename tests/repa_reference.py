"""REPA's code (sihyun-yu/REPA), written again from its published facts for the tests: its SiT's forward with
timm's q/k norms, checkpoints as its train.py saves them, and its two samplers from ``samplers.py``. The import
and the REPA schedulers are checked against this, never against themselves."""

from __future__ import annotations

import argparse
import math

import torch
import torch.nn.functional as F
from original_reference import random_state, timestep_features

QK_EPS = 1e-5  # timm's Attention normalizes q and k with a default nn.LayerNorm


def repa_state(depth, hidden, heads, patch, rows, latent, qk_norm, z_dim=32, projector_dim=48, seed=0) -> dict:
    """A REPA SiT's state dict: DiT's layout with 4 output channels, projector heads and, with ``qk_norm``, per-head
    LayerNorms on q and k (random, not identity, so that a dropped norm shows)."""
    state = random_state(depth, hidden, heads, patch, 4, False, rows, latent, seed=seed)
    g = torch.Generator().manual_seed(seed + 100)
    head_dim = hidden // heads
    if qk_norm:
        for i in range(depth):
            for name in ("q_norm", "k_norm"):
                state[f"blocks.{i}.attn.{name}.weight"] = 1 + 0.3 * torch.randn(head_dim, generator=g)
                state[f"blocks.{i}.attn.{name}.bias"] = 0.1 * torch.randn(head_dim, generator=g)
    sizes = [(projector_dim, hidden), (projector_dim, projector_dim), (z_dim, projector_dim)]
    for j, (rows_out, cols) in enumerate(sizes):  # build_mlp: Linear, SiLU, Linear, SiLU, Linear
        state[f"projectors.0.{2 * j}.weight"] = 0.05 * torch.randn(rows_out, cols, generator=g)
        state[f"projectors.0.{2 * j}.bias"] = 0.05 * torch.randn(rows_out, generator=g)
    return state


def repa_checkpoint(state: dict, **args) -> dict:
    """REPA's train.py: ``{"model", "ema", "opt", "args", "steps"}``, the EMA weights apart from the raw ones."""
    raw = {k: v + 0.01 for k, v in state.items()}
    opt = {"state": {}, "param_groups": [{"lr": 1e-4, "weight_decay": 0, "params": [0, 1]}]}
    return {"model": raw, "ema": state, "opt": opt, "args": argparse.Namespace(**args), "steps": 400000}


def repa_forward(state: dict, heads: int, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """REPA's ``SiT.forward`` (models/sit.py), fp32, t as it is: patches + position table, c = t_emb + y_emb,
    adaLN-Zero blocks whose attention is timm's (q/k LayerNorm per head when present), final layer."""
    hidden, _, patch, _ = state["x_embedder.proj.weight"].shape
    n, grid = x.shape[0], x.shape[-1] // patch
    h = F.conv2d(x, state["x_embedder.proj.weight"], state["x_embedder.proj.bias"], stride=patch)
    h = h.flatten(2).transpose(1, 2) + state["pos_embed"]
    temb = F.linear(timestep_features(t), state["t_embedder.mlp.0.weight"], state["t_embedder.mlp.0.bias"])
    temb = F.linear(F.silu(temb), state["t_embedder.mlp.2.weight"], state["t_embedder.mlp.2.bias"])
    c = F.silu(temb + state["y_embedder.embedding_table.weight"][y])  # adaLN_modulation = SiLU, Linear
    depth = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("blocks."))
    for i in range(depth):
        b = f"blocks.{i}."
        mod = F.linear(c, state[b + "adaLN_modulation.1.weight"], state[b + "adaLN_modulation.1.bias"]).chunk(6, dim=1)
        a = F.layer_norm(h, (hidden,), eps=1e-6) * (1 + mod[1][:, None]) + mod[0][:, None]
        h = h + mod[2][:, None] * timm_attention(state, b, a, heads)
        m = F.layer_norm(h, (hidden,), eps=1e-6) * (1 + mod[4][:, None]) + mod[3][:, None]
        m = F.gelu(F.linear(m, state[b + "mlp.fc1.weight"], state[b + "mlp.fc1.bias"]), approximate="tanh")
        h = h + mod[5][:, None] * F.linear(m, state[b + "mlp.fc2.weight"], state[b + "mlp.fc2.bias"])
    final = "final_layer."
    shift, scale = F.linear(c, state[final + "adaLN_modulation.1.weight"], state[final + "adaLN_modulation.1.bias"]).chunk(2, 1)  # fmt: skip
    h = F.layer_norm(h, (hidden,), eps=1e-6) * (1 + scale[:, None]) + shift[:, None]
    h = F.linear(h, state[final + "linear.weight"], state[final + "linear.bias"])
    out = h.shape[-1] // (patch * patch)  # out_channels = in_channels: no learned sigma
    h = h.reshape(n, grid, grid, patch, patch, out)
    return torch.einsum("nhwpqc->nchpwq", h).reshape(n, out, grid * patch, grid * patch)


def timm_attention(state: dict, b: str, x: torch.Tensor, heads: int) -> torch.Tensor:
    """timm's ``Attention.forward``: qkv -> (3, n, heads, tokens, head_dim), q_norm and k_norm, softmax(q k^T / sqrt d) v."""
    n, tokens, hidden = x.shape
    qkv = F.linear(x, state[b + "attn.qkv.weight"], state[b + "attn.qkv.bias"])
    q, k, v = qkv.reshape(n, tokens, 3, heads, hidden // heads).permute(2, 0, 3, 1, 4)
    if b + "attn.q_norm.weight" in state:
        q = F.layer_norm(q, (hidden // heads,), state[b + "attn.q_norm.weight"], state[b + "attn.q_norm.bias"], QK_EPS)
        k = F.layer_norm(k, (hidden // heads,), state[b + "attn.k_norm.weight"], state[b + "attn.k_norm.bias"], QK_EPS)
    weights = (q @ k.transpose(-2, -1) / math.sqrt(hidden // heads)).softmax(dim=-1)
    out = (weights @ v).transpose(1, 2).reshape(n, tokens, hidden)
    return F.linear(out, state[b + "attn.proj.weight"], state[b + "attn.proj.bias"])


class Model:
    """REPA's call of its model in samplers.py: float64 state cast to the model's dtype, output back to float64;
    guidance mixes the first ``guided`` channels (REPA: all 4) of what ``mix`` is given."""

    def __init__(self, state, heads, y, null, cfg_scale, low, high, guided=4):
        self.state, self.heads, self.y, self.null = state, heads, y, null
        self.cfg_scale, self.low, self.high, self.guided = cfg_scale, low, high, guided

    def guides(self, t_cur) -> bool:
        return self.cfg_scale > 1.0 and t_cur <= self.high and t_cur >= self.low  # REPA's test, bounds inclusive

    def __call__(self, x, t, guide):
        y = torch.cat([self.y, torch.full_like(self.y, self.null)]) if guide else self.y
        x_in = torch.cat([x, x]) if guide else x
        time = torch.ones(len(x_in), dtype=torch.float64) * t
        with torch.no_grad():
            out = repa_forward(self.state, self.heads, x_in.float(), time.float(), y).double()
        return out, x_in, time

    def mix(self, d):
        cond, uncond = d.chunk(2)
        mixed = cond.clone()
        k = self.guided
        mixed[:, :k] = uncond[:, :k] + self.cfg_scale * (cond[:, :k] - uncond[:, :k])
        return mixed


def euler_sampler(model: Model, latents, num_steps, heun=False):
    """REPA's ``euler_sampler``: linspace(1, 0, n + 1) in float64; Heun's correction at t_next, guided by t_cur's
    test, skipped on the last step."""
    t_steps = torch.linspace(1, 0, num_steps + 1, dtype=torch.float64)
    x_next = latents.to(torch.float64)
    for i, (t_cur, t_next) in enumerate(zip(t_steps[:-1], t_steps[1:])):
        x_cur = x_next
        guide = model.guides(t_cur)
        d_cur = model(x_cur, t_cur, guide)[0]
        d_cur = model.mix(d_cur) if guide else d_cur
        x_next = x_cur + (t_next - t_cur) * d_cur
        if heun and i < num_steps - 1:
            d_prime = model(x_next, t_next, guide)[0]
            d_prime = model.mix(d_prime) if guide else d_prime
            x_next = x_cur + (t_next - t_cur) * (0.5 * d_cur + 0.5 * d_prime)
    return x_next


def score_from_velocity(v, x, t, path_type):
    """REPA's ``get_score_from_velocity`` on the model's path (t broadcast per row)."""
    t = t.view(-1, 1, 1, 1)
    if path_type == "linear":
        alpha, sigma, d_alpha, d_sigma = 1 - t, t, -torch.ones_like(x), torch.ones_like(x)
    else:
        alpha, sigma = torch.cos(t * math.pi / 2), torch.sin(t * math.pi / 2)
        d_alpha, d_sigma = -math.pi / 2 * torch.sin(t * math.pi / 2), math.pi / 2 * torch.cos(t * math.pi / 2)
    ratio = alpha / d_alpha
    return (ratio * v - x) / (sigma**2 - ratio * d_sigma * sigma)


def euler_maruyama_sampler(model: Model, latents, num_steps, generator, path_type="linear"):
    """REPA's ``euler_maruyama_sampler``: linspace(1, 0.04, n) then 0; per step a float64 randn like the state
    (drawn before the model call, here from ``generator``), diffusion 2 t, the drift v - t score guided; last: the
    mean step."""
    t_steps = torch.cat(
        [torch.linspace(1.0, 0.04, num_steps, dtype=torch.float64), torch.zeros(1, dtype=torch.float64)]
    )
    x_next = latents.to(torch.float64)

    def drift(x_cur, t_cur):
        guide = model.guides(t_cur)
        v, x_in, time = model(x_cur, t_cur, guide)
        d = v - 0.5 * (2 * t_cur) * score_from_velocity(v, x_in, time, path_type)
        return model.mix(d) if guide else d

    for t_cur, t_next in zip(t_steps[:-2], t_steps[1:-1]):
        dt = t_next - t_cur
        x_cur = x_next
        eps = torch.randn(x_cur.shape, generator=generator, dtype=torch.float64)
        deps = eps * torch.sqrt(torch.abs(dt))
        x_next = x_cur + drift(x_cur, t_cur) * dt + torch.sqrt(2 * t_cur) * deps
    t_cur, t_next = t_steps[-2], t_steps[-1]
    return x_next + (t_next - t_cur) * drift(x_next, t_cur)
