"""Test helpers: a transformer wrapper that counts calls and can rewrite the output; a counted function."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

from dit_demo.runtime.bundle import DiTBundle


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


def counted(monkeypatch, owner, name: str) -> list[int]:
    """Replace ``owner.name`` by a wrapper that counts its calls; a one-item list holding the count."""
    count = [0]
    original = getattr(owner, name)

    def wrapper(*args, **kwargs):
        count[0] += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, wrapper)
    return count
