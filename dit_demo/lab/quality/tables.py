"""The README's quality blocks, made from shipped sweeps: one model's cells with their intervals
(``quality``, ``quality-sit``), and what the paired test says between two models budget by budget
(``quality-families``). ``python -m dit_demo bench --readme README.md`` writes them; a test keeps the
committed README equal to them."""

from __future__ import annotations

import os
import re

from dit_demo.lab.quality import answers
from dit_demo.lab.quality.cell_metrics import LEVEL, METHOD, paired_difference

BUDGETS = (5, 10, 25)  # NFE: where a user of a fast sampler decides between the families
COMPARED = ("frechet", "accuracy")  # the metrics every shipped sweep keeps paired replicates for


def quality_table(folder: str | os.PathLike | None = None) -> str:
    """A shipped quality sweep (the DiT's by default) as a table, each metric with its 95% interval."""
    data = answers.load([folder or answers.SHIPPED])
    cells = data.cells  # in the sweeps' order: sampler after sampler, steps rising
    samples = data.cells[0].get("samples")
    lines = [
        f"{data.model}, {samples} samples a cell, cfg {data.cells[0].get('cfg', '')}; [95% interval]: basic bootstrap over "
        "samples. Frechet distance on the classifier's features against the 10k test images (lower is better); "
        "precision and recall with k = 3 against as many test images; spread: sd of the per-class Frechet distances.",
        "",
        "| sampler | steps | NFE | Frechet distance | class accuracy | precision | recall | spread | wall time (s) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for c in cells:
        numbers = [
            _with_ci(c, "frechet", 1, ".1f"),
            *(_with_ci(c, m, 100, ".1f", "%") for m in ("accuracy", "precision", "recall")),
        ]
        spread = c.get("frechet_class_spread")
        lines.append(
            f"| {c['sampler']} | {c['steps']} | {_nfe(c['nfe'])} | "
            + " | ".join(numbers)
            + f" | {'-' if spread is None else f'{spread:.1f}'} | {c.get('seconds', 0):.1f} |"
        )
    return "\n".join(lines)


def _nfe(nfe: float) -> str:
    """A fixed-step cell's NFE as it is; an adaptive solver's mean over its samples to a tenth."""
    return f"{nfe:g}" if float(nfe).is_integer() else f"{nfe:.1f}"


def _with_ci(cell: dict, metric: str, scale: float, fmt: str, unit: str = "") -> str:
    value, ci = cell.get(metric), cell.get(f"{metric}_ci")
    if value is None:
        return "-"
    text = f"{scale * value:{fmt}}{unit}"
    return text + (f" [{scale * ci[0]:{fmt}}, {scale * ci[1]:{fmt}}]" if ci else "")


def families_table(folders: list[str | os.PathLike] | None = None, budgets: tuple[int, ...] = BUDGETS) -> str:
    """Two models' sweeps against each other: at each NFE budget and metric, each model's best cell within
    it, the paired difference (second model minus first) with its 95% interval, and how every pair of
    their cells within the budget comes out."""
    data = answers.load(folders or [answers.SHIPPED, answers.SHIPPED_SIT])
    models = data.models()
    if len(models) != 2:
        raise ValueError(f"a cross-model table needs two models' sweeps; these hold {len(models)}.")
    first, second = models
    lines = [
        f"{second} against {first}: at each budget, each model's best cell within it and the paired difference "
        f"{_short(second)} - {_short(first)} with its {LEVEL:.0%} interval ({METHOD}); then every pair of their cells "
        "within the budget: told apart with one model better, or not told apart.",
        "",
        f"| NFE at most | metric | {_short(first)}: best cell | {_short(second)}: best cell | difference [95% interval] "
        f"| told apart | all pairs: {_short(second)} better / {_short(first)} better / not told apart (/ not paired) |",
        "|---:|---|---|---|---:|:-:|---:|",
    ]
    for budget in budgets:
        for metric in COMPARED:
            lines.append(_budget_row(data, budget, metric, first, second))
    return "\n".join(lines)


def _budget_row(data: answers.QualityData, budget: int, metric: str, first: str, second: str) -> str:
    own = {
        m: [c for c in data.cells if c["model"] == m and answers.within_budget(c, budget, "nfe")]
        for m in (first, second)
    }
    best = {m: answers.best_at_budget(cells, budget, metric)[0] for m, cells in own.items()}
    if best[first] is None or best[second] is None:
        return f"| {budget} | {answers.METRICS[metric][0]} | - | - | - | - | - |"
    found = paired_difference(best[second], best[first], metric)
    counts = _verdicts(own[first], own[second], metric)
    return (
        f"| {budget} | {answers.METRICS[metric][0]} | {_cell(best[first], metric)} | {_cell(best[second], metric)} "
        f"| {_difference(found, metric)} | {_told(found)} | {' / '.join(map(str, counts))} |"
    )


def _verdicts(firsts: list[dict], seconds: list[dict], metric: str) -> tuple[int, ...]:
    """Over every (first, second) pair: second better, first better, not told apart, and (where any) not paired."""
    counts = [0, 0, 0, 0]
    for a in firsts:
        for b in seconds:
            found = paired_difference(b, a, metric)
            if found is None:
                counts[3] += 1
            elif found[1] <= 0 <= found[2]:
                counts[2] += 1
            else:
                counts[0 if answers.better(metric, b[metric], a[metric]) else 1] += 1
    return tuple(counts[:3]) if counts[3] == 0 else tuple(counts)


def _cell(cell: dict, metric: str) -> str:
    return f"{cell['sampler']}, {cell['steps']} steps ({_nfe(cell['nfe'])} NFE): {_number(cell[metric], metric)}"


def _difference(found: tuple[float, float, float] | None, metric: str) -> str:
    """The paired difference and its interval; in points for a percentage."""
    if found is None:
        return "not paired"
    scale, unit = (100, " points") if metric in answers.PERCENT else (1, "")
    difference, lo, hi = (scale * v for v in found)
    return f"{difference:+.1f}{unit} [{lo:.1f}, {hi:.1f}]"


def _told(found: tuple[float, float, float] | None) -> str:
    return "-" if found is None else ("no" if found[1] <= 0 <= found[2] else "yes")


def _number(value: float, metric: str) -> str:
    return f"{100 * value:.1f}%" if metric in answers.PERCENT else f"{value:.1f}"


def _short(model: str) -> str:
    """A model's name in a column head: its last word, where that is its family ("... DiT" -> "DiT"),
    a closing remark in brackets left out."""
    words = re.sub(r"\s*\([^)]*\)\s*$", "", model).split()
    return words[-1] if words else model
