"""A comparison's model axis: which samplers run on which models (a sampler drives only its families' models),
the pairs left out, said in one line each, and each model's own reference."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import samplers
from dit_demo.runtime.parsing import shown

MAX_MODELS = 4


def parse_models(value) -> tuple[str, ...]:
    """Model names from a comma list or a list, in order and without repeats; empty: the loaded model only."""
    if value is None or value == "" or value == []:
        return ()
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, Sequence) or isinstance(items, bytes) or not all(isinstance(n, str) for n in items):
        raise ValueError(f"Models must be a list of model names, got {shown(value)}.")
    names = tuple(dict.fromkeys(n.strip() for n in items if n.strip()))
    if len(names) > MAX_MODELS:
        raise ValueError(f"Too many models ({len(names)}); at most {MAX_MODELS} per comparison.")
    return names


def model_families(models: tuple[str, ...], families: Mapping[str, str] | Sequence[str] | None) -> tuple[str, ...]:
    """Each model's family, in the order of ``models``, from a name -> family mapping or a list beside them."""
    if not models:
        return ()
    if isinstance(families, Mapping):
        missing = [m for m in models if m not in families]
        if missing:
            raise ValueError(f"The family of model {missing[0]!r} is not known; load it before comparing.")
        families = [families[m] for m in models]
    if (
        not isinstance(families, Sequence)
        or len(families) != len(models)
        or not all(isinstance(f, str) for f in families)
    ):
        raise ValueError(f"Models need one family each ({len(models)}), got {shown(families)}.")
    return tuple(families)


def runs_on(sampler: str, family: str | None) -> bool:
    """Whether ``sampler`` can drive a model of ``family`` (None: the loaded model, checked when the spec was built)."""
    return family is None or family in samplers.get(sampler).families


def check_model_axis(names: Sequence[str], models: tuple[str, ...], families: tuple[str, ...]) -> None:
    """One sentence for a model that no sampler asked for can drive, or a sampler that drives none of the models
    (no models: nothing to check here, the loaded model's family was checked with the names)."""
    if not models:
        return
    for model, family in zip(models, families):
        if not any(runs_on(n, family) for n in names):
            fitting = ", ".join(s.name for s in samplers.for_family(family)) or "none registered"
            raise ValueError(
                f"None of the samplers asked for drives {model} (a {family} model); add one of: {fitting}."
            )
    for name in names:
        if not any(runs_on(name, family) for family in families):
            raise ValueError(
                f"Sampler {name!r} drives {' and '.join(samplers.get(name).families)} models; none of the "
                f"models compared ({', '.join(models)}) is one."
            )


def left_out(names: Sequence[str], models: tuple[str, ...], families: tuple[str, ...]) -> list[str]:
    """One line per group of samplers that skip the same models: "ddim and euler run only on dit models: not
    on <model>" (a sampler alone "runs")."""
    groups: dict[tuple, list[str]] = {}
    for name in names:
        skipped = tuple(model for model, family in zip(models, families) if not runs_on(name, family))
        if skipped:
            groups.setdefault((samplers.get(name).families, skipped), []).append(name)
    lines = []
    for (kinds, skipped), group in groups.items():
        who = group[0] if len(group) == 1 else f"{', '.join(group[:-1])} and {group[-1]}"
        verb = "runs" if len(group) == 1 else "run"
        models_text = ", ".join(model_label(m) for m in skipped)
        lines.append(f"{who} {verb} only on {' and '.join(kinds)} models: not on {models_text}")
    return lines


def model_label(name: str) -> str:
    """A model's short name for labels: a folder's last part, a hub id or the model box's name as they are."""
    parts = [p for p in str(name).replace("\\", "/").split("/") if p]
    return parts[-1] if str(name).startswith(("/", ".", "~")) and parts else str(name)


def model_reference(
    names: Sequence[str], steps: Sequence[int], family: str | None, asked: tuple[str, int] | None
) -> tuple[str, int]:
    """(sampler, steps) of one model's reference: the one asked for where its sampler drives the model, else
    the model's first deterministic sampler (its first sampler if none is) at the highest step count."""
    if asked is not None and runs_on(asked[0], family):
        return asked
    own = [n for n in names if runs_on(n, family)]
    deterministic = [n for n in own if not samplers.get(n).stochastic]
    return (deterministic or own)[0], max(steps)
