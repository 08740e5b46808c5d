"""The samplers as a Markdown table: what ``python -m dit_demo samplers`` prints and the README shows
(its block is made from the registry and a test keeps the two equal)."""

from __future__ import annotations

from collections.abc import Iterable

from samplers.base import Sampler


def markdown_table(entries: Iterable[Sampler]) -> str:
    lines = [
        "| name | sampler | NFE per step | stochastic | uses learned variance | default steps | paper |",
        "|---|---|---:|:-:|:-:|---:|---|",
    ]
    for s in entries:
        lines.append(
            f"| `{s.name}` | {s.label} | {s.nfe_per_step} | {'yes' if s.stochastic else 'no'} | "
            f"{'yes' if s.uses_variance else 'no'} | {s.default_steps} | {s.paper} |"
        )
    return "\n".join(lines)
