"""The samplers as Markdown tables: what ``python -m dit_demo samplers`` prints and the README shows
(its blocks are made from the registry and a test keeps the two equal)."""

from __future__ import annotations

from collections.abc import Iterable

from samplers.base import Sampler, family_label


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


def family_tables(entries: Iterable[Sampler]) -> str:
    """One table per model family, families in the order the samplers first name them, each listing the
    samplers that drive it in the order given (a sampler of two families is in both tables)."""
    entries = list(entries)
    families = dict.fromkeys(family for s in entries for family in s.families)
    return "\n\n".join(_family_table(family, [s for s in entries if family in s.families]) for family in families)


def _family_table(family: str, entries: list[Sampler]) -> str:
    lines = [
        f"**{family_label(family)}** models:",
        "",
        "| name | sampler | NFE per step | stochastic | default steps | paper | options (`name[key=value]`) |",
        "|---|---|---:|:-:|---:|---|---|",
    ]
    for s in entries:
        options = ", ".join(f"`{option}`" for option in s.noted_options) or "-"
        # an adaptive solver picks its own steps: its NFE is what it took, and a step count means nothing to it
        per_step, steps = (
            ("adaptive", "-") if getattr(s.scheduler_class, "adaptive", False) else (s.nfe_per_step, s.default_steps)
        )
        lines.append(
            f"| `{s.name}` | {s.label} | {per_step} | {'yes' if s.stochastic else 'no'} | "
            f"{steps} | {s.paper} | {options} |"
        )
    return "\n".join(lines)
