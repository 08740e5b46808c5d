"""Test helpers: a transformer wrapper that counts calls and can rewrite the output; a counted function;
tiny DiTs with weights that matter."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import torch

from dit_demo.runtime.bundle import DiTBundle
from dit_demo.runtime.dit import build_dit


class CountingTransformer:
    """Stands in for the DiT: forwards, counts calls and their rows, optionally edits the output tensor."""

    def __init__(self, model, edit=None):
        self.model, self.edit, self.calls, self.rows = model, edit, 0, []
        self.config, self.dtype = model.config, model.dtype

    def __call__(self, *args, **kwargs):
        self.calls += 1
        self.rows.append(len(args[0]))  # rows of this call
        out = self.model(*args, **kwargs).sample
        return SimpleNamespace(sample=self.edit(out) if self.edit else out)


def wrapped(bundle: DiTBundle, edit=None) -> tuple[DiTBundle, CountingTransformer]:
    counter = CountingTransformer(bundle.transformer, edit)
    return replace(bundle, transformer=counter), counter


def counted(monkeypatch, owner, name: str, count: list[int] | None = None) -> list[int]:
    """Replace ``owner.name`` by a wrapper that counts its calls; a one-item list holding the count
    (``count``, where several wrappers add to one: a module's ``forward`` in every block)."""
    count = [0] if count is None else count
    original = getattr(owner, name)

    def wrapper(*args, **kwargs):
        count[0] += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, wrapper)
    return count


def perturb(model: torch.nn.Module, scale: float = 0.02) -> torch.nn.Module:
    """Every weight moved by Gaussian noise from the global generator. A fresh DiT leaves its adaLN-zero
    gates at 0 (a constant model); perturbed, its output depends on x, t and the class."""
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * scale)
    return model


def fresh_dit(
    num_classes: int = 10, equal: bool = True, shift_block: int | None = None, depth: int = 3, **sizes
) -> torch.nn.Module:
    """A perturbed tiny DiT (32 wide, 2 heads, 8x8 latents), in eval mode, as diffusers builds it
    (nothing adapted): one embedder copied into every block (the hub's layout) where ``equal``, else
    each block's own; block ``shift_block`` makes its timestep features as the original code does."""
    torch.manual_seed(3)
    model = perturb(build_dit(depth, 32, 2, num_classes, 8, **sizes))
    blocks = model.transformer_blocks
    if equal:
        for block in blocks[1:]:
            block.norm1.emb.load_state_dict(blocks[0].norm1.emb.state_dict())
    if shift_block is not None:
        blocks[shift_block].norm1.emb.time_proj.downscale_freq_shift = 0
    return model.eval().requires_grad_(False)
