"""The README's cross-model quality block (``lab/quality/tables.py``): each model's best cell within a
budget, their paired difference with its interval, and every pair of cells within the budget counted by
verdict; on constructed sweeps paired with the shipped DiT sweep, and one that is not paired."""

from __future__ import annotations

import pytest
from quality_pairs import DIT, SIT, write_sit_sweep

from dit_demo.lab.quality import answers, tables
from dit_demo.lab.quality.cell_metrics import distinguishable, paired_difference


def _rows(text: str) -> dict[tuple[int, str], list[str]]:
    """(budget, metric label) -> the row's cells."""
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if line.startswith("| ") and cells[0].isdigit():
            rows[int(cells[0]), cells[1]] = cells
    return rows


def _best(data, model, budget, metric):
    own = [c for c in data.cells if c["model"] == model and answers.within_budget(c, budget, "nfe")]
    return answers.best_at_budget(own, budget, metric)[0], own


@pytest.mark.parametrize("scale", [0.8, 1.0])
def test_each_budget_names_both_models_best_cells_and_their_paired_difference(tmp_path, scale):
    folder = write_sit_sweep(tmp_path / "sit", scale=scale, seed=0)
    text = tables.families_table([answers.SHIPPED, folder])
    data = answers.load([answers.SHIPPED, folder])
    rows = _rows(text)
    assert {budget for budget, _ in rows} == set(tables.BUDGETS)
    for budget in tables.BUDGETS:
        for metric in tables.COMPARED:
            row = rows[budget, answers.METRICS[metric][0]]
            dit, dits = _best(data, DIT, budget, metric)
            sit, sits = _best(data, SIT, budget, metric)
            assert row[2].startswith(f"{dit['sampler']}, {dit['steps']} steps") and row[3].startswith(sit["sampler"])
            found = paired_difference(sit, dit, metric)
            assert row[5] == ("yes" if distinguishable(sit, dit, metric) else "no")
            scale = 100 if metric in answers.PERCENT else 1
            assert row[4].startswith(f"{scale * found[0]:+.1f}")
            counts = [int(n) for n in row[6].split(" / ")]
            assert len(counts) == 3 and sum(counts) == len(dits) * len(sits)  # every pair tested, none unpaired
    if scale == 1.0:  # the constructed SiT's Euler cells are the DiT's: that pair is counted as not told apart
        euler = next(c for c in data.cells if c["model"] == DIT and c["cell"].startswith("euler_5_"))
        twin = next(c for c in data.cells if c["model"] == SIT and c["cell"].startswith("sit_ode_euler_5_"))
        assert paired_difference(twin, euler) == (0.0, 0.0, 0.0)
        assert int(rows[5, "Frechet distance"][6].split(" / ")[2]) >= 1


def test_a_sweep_not_paired_with_the_other_says_so_instead_of_a_verdict(tmp_path):
    text = tables.families_table([answers.SHIPPED, write_sit_sweep(tmp_path / "sit", seed=1)])
    row = _rows(text)[5, "Frechet distance"]
    assert row[4] == "not paired" and row[5] == "-"
    assert row[6].split(" / ")[:3] == ["0", "0", "0"]  # and every pair counted as not comparable, last
    assert int(row[6].split(" / ")[3]) > 0


def test_one_models_sweeps_are_refused_with_what_is_needed():
    with pytest.raises(ValueError, match="needs two models' sweeps; these hold 1"):
        tables.families_table([answers.SHIPPED])
