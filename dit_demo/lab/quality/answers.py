"""Distribution-level answers from sweeps: which sampler, at how many steps, gives the best images, and
how sure that is. Reads one or more ``sweep.json`` files (``lab/sweep/run.py``), of one model or several
(each cell names its model), and answers with the quality curves, the Pareto front of quality against
cost, and the best cell within a budget together with every cell the paired bootstrap cannot tell from
it (``lab/quality/cell_metrics.py``), or why the test cannot compare a cell with it."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import samplers
from dit_demo.lab.quality.cell_metrics import distinguishable, unpaired
from dit_demo.runtime.levers import Levers

SHIPPED = Path(__file__).resolve().parents[2] / "assets" / "quality"
SHIPPED_SIT = SHIPPED.with_name("quality-sit")  # the embedded SiT's sweep, shown beside the DiT's where it exists
# metric -> (label, lower is better); annotated metrics (the ADM evaluator's) come after ours
METRICS = {
    "frechet": ("Frechet distance", True),
    "accuracy": ("Class accuracy", False),
    "precision": ("Precision", False),
    "recall": ("Recall", False),
    "frechet_class_spread": ("Per-class Frechet distance, sd", True),
    "fid": ("FID (ADM evaluator)", True),
    "sfid": ("sFID (ADM evaluator)", True),
    "inception_score": ("Inception Score (ADM evaluator)", False),
}
# fractions of the samples, shown in percent with one decimal, as the README's quality table does
PERCENT = ("accuracy", "precision", "recall")
SIGNIFICANT = 4  # digits of any other value; its interval's bounds keep the value's decimals
COSTS = {"nfe": "NFE", "seconds": "Wall time (s)"}
EXACT_LEVERS = Levers().describe()  # what a sweep that took no shortcuts records as its levers
MAX_CELLS = 10_000
_NEEDED = ("cell", "sampler", "steps", "nfe")


@dataclass
class QualityData:
    """The cells of one or more models' sweeps, merged; each cell names its model (a ``model`` key)."""

    model: str  # the models' names, joined where there are several
    cells: list[dict]
    sources: list[str] = field(default_factory=list)
    strips: dict[str, Path] = field(default_factory=dict)  # ``name(cell)`` -> a PNG of its first samples

    def __post_init__(self):
        self.cells = [c if isinstance(c.get("model"), str) else {**c, "model": self.model} for c in self.cells]

    def metrics(self) -> list[str]:
        """The metrics some cell has, ours first."""
        return [m for m in METRICS if any(value(c, m) is not None for c in self.cells)]

    def models(self) -> list[str]:
        """The models whose cells these are, in the order they were read."""
        return list(dict.fromkeys(c["model"] for c in self.cells))

    def several_models(self) -> bool:
        return len(self.models()) > 1

    def name(self, cell: dict) -> str:
        """A cell's name in the tab: its sweep's name for it, after its model's where there are several
        (two models' sweeps name their cells alike)."""
        return f"{cell['model']}: {cell['cell']}" if self.several_models() else str(cell["cell"])

    def find(self, name: str) -> dict | None:
        return next((c for c in self.cells if self.name(c) == name), None)


def load(paths: list[str | Path]) -> QualityData:
    """Sweeps from ``sweep.json`` files or sweep folders; one clear ``ValueError`` line for anything else."""
    merged: QualityData | None = None
    strips: dict[tuple[str, str], Path] = {}
    for path in paths:
        path = Path(path)
        file = path / "sweep.json" if path.is_dir() else path
        try:
            data = json.loads(file.read_text())
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise ValueError(f"{file.name} could not be read as JSON ({str(exc)[:80]}).") from None
        part = parse(data, f"{path.name}/{file.name}" if path.is_dir() else file.name)  # a folder names its sweep
        if path.is_dir():
            strips.update({(c["model"], c["cell"]): path / "strips" / f"{c['cell']}.png" for c in part.cells})
        merged = part if merged is None else _merge(merged, part)
    if merged is None:
        raise ValueError("No sweep given: pass a sweep folder or its sweep.json.")
    merged.strips = {
        merged.name(c): strips[c["model"], c["cell"]] for c in merged.cells if (c["model"], c["cell"]) in strips
    }
    return merged


def parse(data, name: str = "sweep.json") -> QualityData:
    """A sweep's manifest, checked: a dict with a spec and a list of cells, each naming its sampler,
    steps and NFE."""
    if not isinstance(data, dict) or not isinstance(data.get("cells"), list) or not data["cells"]:
        raise ValueError(
            f'{name} is not a DiT Sampler Lab sweep: expected a JSON object with a non-empty "cells" list '
            "(the sweep.json that `python -m dit_demo.sweep` writes)."
        )
    if len(data["cells"]) > MAX_CELLS:
        raise ValueError(f"{name} has {len(data['cells'])} cells; at most {MAX_CELLS} are read.")
    spec = data.get("spec") if isinstance(data.get("spec"), dict) else {}
    model = str(spec.get("model") or data.get("model") or "unnamed model")
    # each cell carries its sweep's model, levers and seed, so they survive a merge and ``ship``
    carried = {"model": model, **{k: spec[k] for k in ("levers", "seed", "classes") if k in spec}}
    cells = []
    for i, cell in enumerate(data["cells"]):
        missing = [k for k in _NEEDED if not isinstance(cell, dict) or k not in cell]
        if missing:
            raise ValueError(f"{name}: cell {i} has no {', '.join(missing)}; is this a sweep.json?")
        # a sampler's old name is spelled anew, so Compare finds the cell
        own = cell.get("model") if isinstance(cell.get("model"), str) and cell.get("model") else model
        cells.append({**carried, **cell, "model": own, "sampler": samplers.canonical_name(str(cell["sampler"]))})
    return QualityData(_joined(cells), cells, [name])


def _merge(a: QualityData, b: QualityData) -> QualityData:
    """``a``'s cells, then ``b``'s that ``a`` lacks (a model's cell is read once, from its first sweep)."""
    seen = {(c["model"], c["cell"]) for c in a.cells}
    cells = a.cells + [c for c in b.cells if (c["model"], c["cell"]) not in seen]
    return QualityData(_joined(cells), cells, a.sources + b.sources)


def _joined(cells: list[dict]) -> str:
    return ", ".join(dict.fromkeys(c["model"] for c in cells))


def value(cell: dict, metric: str) -> float | None:
    """A cell's metric: ours, or one attached with ``sweep annotate``."""
    found = cell.get(metric, (cell.get("annotations") or {}).get(metric))
    return float(found) if isinstance(found, (int, float)) and math.isfinite(found) else None


def interval(cell: dict, metric: str) -> tuple[float, float] | None:
    found = cell.get(f"{metric}_ci")
    return (float(found[0]), float(found[1])) if isinstance(found, (list, tuple)) and len(found) == 2 else None


def value_text(cell: dict, metric: str) -> str:
    """ "101.5 [79.9, 107.1]", "91.8% [90.0, 94.6]": the value and its 95% interval where there is one,
    as the README's quality table writes them."""
    shown = _shown(cell, metric)
    if shown is None:
        return "-"
    number, bounds = shown
    unit = "%" if metric in PERCENT else ""
    return number + unit + (f" [{bounds[0]}, {bounds[1]}]" if bounds else "")


def _shown(cell: dict, metric: str) -> tuple[str, list[str]] | None:
    """The value and its interval's bounds as text, all with the value's decimals (fractions in percent)."""
    v = value(cell, metric)
    if v is None:
        return None
    scale, decimals = (100, 1) if metric in PERCENT else (1, decimals_of(v))
    return f"{scale * v:.{decimals}f}", [f"{scale * b:.{decimals}f}" for b in interval(cell, metric) or ()]


def decimals_of(v: float) -> int:
    """The decimals that show ``v`` to ``SIGNIFICANT`` digits (none for a large value)."""
    return max(0, SIGNIFICANT - 1 - math.floor(math.log10(abs(v)))) if v else SIGNIFICANT - 1


def preset_of(cell: dict) -> str | None:
    """The speed preset a sweep cell ran with: "exact" when it took no shortcuts. None for any other
    levers (a sweep records the levers, and which ones "fast" takes depends on the machine) and for
    a sweep that did not record them."""
    return "exact" if cell.get("levers") == EXACT_LEVERS else None


def check_budget(budget, unit: str) -> float:
    """The budget as a number of 0 or more; a ``ValueError`` saying what is wrong and what is allowed."""
    try:
        limit = float(budget)
    except (TypeError, ValueError):
        limit = math.nan
    if limit >= 0:
        return limit
    if budget is None or str(budget).strip() == "":
        problem = "No budget is given"
    elif math.isnan(limit):
        problem = f"The budget {budget!r} is not a number"
    else:
        problem = f"The budget of {limit:g} {unit} is below 0"
    raise ValueError(f"{problem}: give a number of 0 or more (in {unit}).")


def cost(cell: dict, kind: str) -> float | None:
    found = cell.get(kind)
    return float(found) if isinstance(found, (int, float)) and found >= 0 else None


def within_budget(cell: dict, budget: float, kind: str) -> bool:
    """Whether the cell's cost is known and at most ``budget`` (a cell costing exactly the budget, or 0, is in)."""
    spent = cost(cell, kind)
    return spent is not None and spent <= budget


def better(metric: str, a: float, b: float) -> bool:
    return a < b if METRICS[metric][1] else a > b


def pareto_front(cells: list[dict], metric: str = "frechet", kind: str = "seconds") -> list[dict]:
    """The cells no other cell beats on both cost and ``metric``, cheapest first."""
    ranked = sorted(
        (c for c in cells if value(c, metric) is not None and cost(c, kind) is not None),
        key=lambda c: (cost(c, kind), value(c, metric) if METRICS[metric][1] else -value(c, metric)),  # best first
    )
    front: list[dict] = []
    for cell in ranked:
        if not front or better(metric, value(cell, metric), value(front[-1], metric)):
            front.append(cell)
    return front


def best_at_budget(
    cells: list[dict], budget: float, metric: str = "frechet", kind: str = "nfe"
) -> tuple[dict | None, list[dict], bool]:
    """The best cell costing at most ``budget``; the cells within budget that the paired bootstrap
    cannot tell from it; and whether that test could be run (replicates for both)."""
    within = [c for c in cells if value(c, metric) is not None and within_budget(c, budget, kind)]
    if not within:
        return None, [], False
    best = within[0]
    for cell in within[1:]:
        if better(metric, value(cell, metric), value(best, metric)):
            best = cell
    verdicts = [(c, distinguishable(best, c, metric)) for c in within if c is not best]
    tested = all(v is not None for _, v in verdicts)
    return best, [c for c, v in verdicts if v is False], tested


def untested(best: dict, cells: list[dict], metric: str = "frechet") -> list[tuple[dict, str]]:
    """The cells the paired test cannot compare with ``best`` on ``metric``, each with why: "no
    replicates", or the clause of ``cell_metrics.unpaired`` (their sweeps are not paired sample by sample)."""
    found = []
    for cell in cells:
        if cell is best or distinguishable(best, cell, metric) is not None:
            continue
        has = all((c.get("bootstrap") or {}).get(metric) is not None for c in (best, cell))
        found.append((cell, (unpaired(best, cell) or "replicates of another count") if has else "no replicates"))
    return found


def table(data: QualityData) -> tuple[list[str], list[list]]:
    """Every cell as a row: sampler, steps, NFE, time, then each metric with its interval; its model
    second where there are several."""
    metrics, several = data.metrics(), data.several_models()
    headers = ["Cell", *(["Model"] if several else []), "Sampler", "Steps", "NFE", "Wall time (s)"]
    for m in metrics:
        headers += [METRICS[m][0] + (" (%)" if m in PERCENT else ""), "95% interval"]
    rows = []
    for c in data.cells:
        row = [c["cell"], *([c["model"]] if several else []), c["sampler"], c["steps"], c["nfe"]]
        row.append(round(cost(c, "seconds") or 0.0, 1))
        for m in metrics:
            shown = _shown(c, m)
            # the value as a number, so a header click sorts it; both with the best line's decimals
            row += [None, ""] if shown is None else [float(shown[0]), " to ".join(shown[1])]
        rows.append(row)
    return headers, rows
