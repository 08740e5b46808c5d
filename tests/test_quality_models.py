"""The Quality tab across models: two models' sweeps in one view (each cell naming its model), the Pareto
front over both, the best within a budget naming its model, the table's Model column, the paired test
across models only where the sweeps share samples sample by sample, and the app's ``--quality`` list."""

from __future__ import annotations

import json

import numpy as np
import pytest
from quality_pairs import DIT, SIT, write_sit_sweep

import app
from dit_demo.app import quality_link, quality_plots, quality_tab
from dit_demo.app.mcp_tools import AgentTools
from dit_demo.lab.quality import answers, cell_metrics


@pytest.fixture
def both(tmp_path):
    """The shipped DiT sweep and a constructed SiT sweep paired with it (the same samples and seed)."""
    return answers.load([answers.SHIPPED, write_sit_sweep(tmp_path / "sit", seed=0)])


def _cell(name, model, nfe, fd, reps=None, **record):
    cell = {"cell": name, "sampler": "ddim", "steps": nfe, "nfe": nfe, "seconds": nfe / 10, "frechet": fd, **record}
    bootstrap = {"method": cell_metrics.METHOD, "frechet": list(reps)} if reps is not None else None
    return {**cell, "model": model, **({"bootstrap": bootstrap} if bootstrap else {})}


def test_two_models_load_as_one_view_and_one_models_sweeps_still_merge(tmp_path, both):
    shipped = answers.load([answers.SHIPPED])
    assert both.models() == [DIT, SIT] and both.several_models() and not shipped.several_models()
    assert len(both.cells) == len(shipped.cells) + 8 and {c["model"] for c in both.cells[-8:]} == {SIT}
    assert both.model == f"{DIT}, {SIT}"
    # the same model's sweep twice: one model, each cell once (as before)
    again = answers.load([answers.SHIPPED, answers.SHIPPED])
    assert again.models() == [DIT] and len(again.cells) == len(shipped.cells)
    # two models naming a cell alike keep both cells, told apart by their names in the tab
    for model in ("m", "n"):
        (tmp_path / model).mkdir()
        (tmp_path / model / "sweep.json").write_text(json.dumps({"spec": {"model": model}, "cells": [_cell("c", None, 5, 1.0)]}))  # fmt: skip
    alike = answers.load([tmp_path / "m", tmp_path / "n"])
    assert [alike.name(c) for c in alike.cells] == ["m: c", "n: c"] and alike.find("n: c")["model"] == "n"
    assert [shipped.name(c) for c in shipped.cells] == [c["cell"] for c in shipped.cells]  # one model: as before
    assert both.strips[both.name(both.cells[0])].is_file()  # the DiT's strips keep their cells
    # the tab says which folder each model's sweep came from
    assert quality_tab.describe(both).endswith("from quality/sweep.json, sit/sweep.json.")


def test_the_table_gets_a_model_column_only_with_several_models(both):
    headers, rows = answers.table(both)
    assert headers[:3] == ["Cell", "Model", "Sampler"]
    assert {r[1] for r in rows} == {DIT, SIT} and all(r[2] == c["sampler"] for r, c in zip(rows, both.cells))
    single, _ = answers.table(answers.load([answers.SHIPPED]))
    assert "Model" not in single


def test_the_pareto_front_runs_over_both_models(both):
    for kind in ("nfe", "seconds"):
        front = answers.pareto_front(both.cells, "frechet", kind)
        assert {c["model"] for c in front} == {DIT, SIT}, kind
        on = {both.name(c) for c in front}
        ranked = [c for c in both.cells if answers.cost(c, kind) is not None]
        assert all(not _beaten(c, ranked, kind) for c in ranked if both.name(c) in on), kind
        assert all(_beaten(c, ranked, kind) for c in ranked if both.name(c) not in on), kind


def _beaten(cell: dict, cells: list[dict], kind: str) -> bool:
    """Whether another cell is at most as costly and better, or as good and cheaper."""
    a, v = answers.cost(cell, kind), cell["frechet"]
    return any(
        (answers.cost(o, kind) <= a and o["frechet"] < v) or (answers.cost(o, kind) < a and o["frechet"] <= v)
        for o in cells
    )


def test_the_best_within_a_budget_names_its_model(both):
    text = quality_tab.best_text(both, "frechet", "nfe", 10)
    first = text.splitlines()[0]
    assert first.startswith("**Best Frechet distance within 10 NFE: sit_ode_heun @ 5 steps (9 NFE) on " + SIT)
    text = quality_tab.best_text(both, "frechet", "nfe", 4)  # nothing costs so little
    assert text == "No cell costs 4 NFE or less."


def test_the_best_names_the_other_model_where_that_one_wins(tmp_path):
    worse = answers.load([answers.SHIPPED, write_sit_sweep(tmp_path / "sit", scale=1.5, seed=0)])
    first = quality_tab.best_text(worse, "frechet", "nfe", 10).splitlines()[0]
    dit = min((c for c in answers.load([answers.SHIPPED]).cells if c["nfe"] <= 10), key=lambda c: c["frechet"])
    assert first.startswith(f"**Best Frechet distance within 10 NFE: {dit['sampler']} @ {dit['steps']} steps")
    assert f"NFE) on {DIT}: " in first


def test_the_paired_test_applies_across_models_whose_sweeps_share_samples(both):
    dit = next(c for c in both.cells if c["cell"] == "heun_5_cfg1.5")
    sit = next(c for c in both.cells if c["cell"] == "sit_ode_heun_5_cfg1.5")
    assert cell_metrics.unpaired(dit, sit) is None
    # Frechet distance moved by a fifth on the same samples: told apart; accuracy the same: cannot tell apart
    assert cell_metrics.distinguishable(dit, sit, "frechet") is True
    assert cell_metrics.distinguishable(dit, sit, "accuracy") is False
    best, ties, tested = answers.best_at_budget(both.cells, 9, "accuracy", "nfe")
    assert tested and any(c["model"] == SIT for c in ties) and any(c["model"] == DIT for c in ties + [best])
    assert "Not distinguishable from it" in quality_tab.best_text(both, "accuracy", "nfe", 9)


@pytest.mark.parametrize(
    ("record", "why"),
    [({"seed": 1}, "seed 0 against 1"), ({}, "does not record its seed"), ({"seed": 0, "classes": 5}, "classes 10 against 5")],
)  # fmt: skip
def test_sweeps_not_paired_sample_by_sample_are_neither_told_apart_nor_called_alike(tmp_path, record, why):
    data = answers.load([answers.SHIPPED, write_sit_sweep(tmp_path / "sit", **record)])
    dit = next(c for c in data.cells if c["cell"] == "heun_5_cfg1.5")
    sit = next(c for c in data.cells if c["cell"] == "sit_ode_heun_5_cfg1.5")
    assert why in cell_metrics.unpaired(dit, sit)
    assert cell_metrics.distinguishable(dit, sit, "accuracy") is None  # identical replicates, yet no verdict
    best, ties, tested = answers.best_at_budget(data.cells, 9, "accuracy", "nfe")
    assert not tested and all(c["model"] == best["model"] for c in ties)
    text = quality_tab.best_text(data, "accuracy", "nfe", 9)
    other = SIT if best["model"] == DIT else DIT
    sentence = next(line for line in text.splitlines() if "paired test does not compare" in line)
    assert other in sentence and why in sentence and sentence.count(". ") == 0  # one sentence
    listed = text.split("Not distinguishable from it")[-1] if "Not distinguishable" in text else ""
    assert f" on {other}" not in listed


def test_other_sample_counts_are_not_paired_and_one_models_cells_without_records_still_are():
    reps = 5.0 + np.random.default_rng(0).normal(size=cell_metrics.REPLICATES)
    a = _cell("a", "m", 5, 5.0, reps, samples=1000, seed=0, classes=10)
    assert cell_metrics.unpaired(a, {**a, "model": "n", "samples": 500}) == "samples 1000 against 500"
    assert cell_metrics.distinguishable(a, {**a, "model": "n", "samples": 500}) is None
    assert cell_metrics.distinguishable(a, {**a, "model": "n"}) is False  # the same record: paired, no difference
    bare = {k: v for k, v in a.items() if k not in ("samples", "seed", "classes")}
    assert cell_metrics.distinguishable(bare, {**bare, "frechet": 9.0, "bootstrap": {"frechet": list(reps + 4)}})
    assert cell_metrics.distinguishable(bare, {**bare, "model": "n"}) is None  # across models a record must be there


def test_the_resampled_sets_pair_samples_by_index_whatever_the_cell():
    # two cells of n samples draw the same resampled indices: replicate r of each is over the same samples
    assert np.array_equal(cell_metrics.resamples(50), cell_metrics.resamples(50))
    assert cell_metrics.pairing({"samples": 1000, "frechet_per_class": [1.0] * 10, "seed": 3}) == {
        "samples": 1000, "classes": 10, "seed": 3, "bootstrap": None,
    }  # fmt: skip
    parsed = answers.parse({"spec": {"model": "m", "seed": 7}, "cells": [_cell("a", None, 5, 1.0)]})
    assert parsed.cells[0]["seed"] == 7 and parsed.cells[0]["model"] == "m"  # the sweep's record, on its cells


def test_the_curve_has_a_colour_per_model_and_a_line_style_per_sampler(both):
    spec = quality_plots.curve_chart(both, "frechet").to_dict()
    line = next(layer for layer in spec["layer"] if layer["mark"]["type"] == "line")
    colour, dash = line["encoding"]["color"], line["encoding"]["strokeDash"]
    assert colour["field"] == "model" and colour["scale"]["domain"] == [DIT, SIT]
    assert dash["field"] == "series" and len(set(map(tuple, dash["scale"]["range"]))) == len(dash["scale"]["domain"])
    assert colour["legend"]["labelLimit"] == 0 and dash["legend"]["labelLimit"] == 0  # never cut
    frame = quality_plots.curve_frame(both, "frechet")
    assert set(frame["model"]) == {DIT, SIT} and "SiT ODE Heun" in set(frame["series"])
    single = quality_plots.curve_chart(answers.load([answers.SHIPPED]), "frechet").to_dict()
    single_line = next(layer for layer in single["layer"] if layer["mark"]["type"] == "line")
    assert single_line["encoding"]["color"]["field"] == "series" and "strokeDash" not in single_line["encoding"]
    pareto = quality_plots.pareto_chart(both, "frechet", "nfe").to_dict()
    rows = next(iter(pareto["datasets"].values()))
    assert {r["model"] for r in rows if r["front"] == "on the front"} == {DIT, SIT}


def test_the_tab_offers_each_models_cells_by_name_and_shows_the_chosen_one(both):
    outputs = quality_tab.views(both, "frechet", "nfe", 25)
    assert f"**{DIT}**: 49 cells, 1000 samples each; **{SIT}**: 8 cells" in outputs[0]
    choices = [value for _, value in outputs[-1].choices]
    assert len(choices) == len(set(choices)) == len(both.cells) and f"{SIT}: sit_ode_euler_5_cfg1.5" in choices
    strip, details = quality_tab.cell_view(both, f"{DIT}: ddim_5_cfg1.5")
    assert strip is not None and details.startswith(f"**{DIT}: ddim_5_cfg1.5**")


def test_a_compare_cell_links_to_each_models_sweep_that_holds_it(tmp_path):
    data = answers.load([answers.SHIPPED, write_sit_sweep(tmp_path / "sit", seed=0, scale=1.0)])
    data.cells += [{**c, "model": SIT} for c in data.cells if c["cell"] == "ddim_5_cfg1.5"]  # both hold DDIM 5
    note, chooser, _ = quality_link.link({"cells": [("ddim", 5, 1.5, "exact", 0.0)]}, data)
    lines = note.splitlines()[1:]
    assert len(lines) == 2 and lines[0].endswith(f"({DIT}'s sweep)") and lines[1].endswith(f"({SIT}'s sweep)")
    assert [v for _, v in chooser.choices] == [f"{DIT}: ddim_5_cfg1.5", f"{SIT}: ddim_5_cfg1.5"]


def test_a_compare_cell_that_names_its_model_links_to_that_models_sweep_only(tmp_path):
    """A comparison's series carry the model they ran on (a model axis' too): the sweep of that model is the
    one shown; a model no loaded sweep is of falls back to every sweep holding the cell, and the line says whose."""
    data = answers.load([answers.SHIPPED, write_sit_sweep(tmp_path / "sit", seed=0, scale=1.0)])
    data.cells += [{**c, "model": SIT} for c in data.cells if c["cell"] == "ddim_5_cfg1.5"]  # both hold DDIM 5
    note, chooser, _ = quality_link.link({"cells": [("ddim", 5, 1.5, "exact", 0.0, SIT)]}, data)
    assert [v for _, v in chooser.choices] == [f"{SIT}: ddim_5_cfg1.5"] and note.endswith(f"({SIT}'s sweep)")
    note, chooser, _ = quality_link.link({"cells": [("ddim", 5, 1.5, "exact", 0.0, "my-dit")]}, data)
    assert len(chooser.choices) == 2 and note.splitlines()[1].endswith(f"({DIT}'s sweep; this cell ran on my-dit)")
    one = answers.load([answers.SHIPPED])  # one model: whose sweep is said only when it is not the cell's model
    assert "sweep" not in quality_link.link({"cells": [("ddim", 5, 1.5, "exact", 0.0, DIT)]}, one)[0].splitlines()[1]


def test_a_model_axis_comparison_hands_each_series_its_models_name(small_bundle, tmp_path, small_bundle_dir):
    from sit_helpers import make_sit

    from dit_demo.app.compare_results import comparison_outputs
    from dit_demo.lab.compare.run import run_comparison
    from dit_demo.lab.specs.compare_spec import ComparisonSpec
    from dit_demo.runtime.loader import load_bundle

    sit = load_bundle(str(make_sit(tmp_path, small_bundle_dir)), "cpu", "fp32")
    names = (str(small_bundle_dir), "sit")
    spec = ComparisonSpec.build(
        "ddim,sit_ode_euler", "2", "3", cfg_text="2", models=names, families={names[0]: "dit", "sit": "sit"}
    )
    comparison = run_comparison({names[0]: small_bundle, "sit": sit}, spec)
    _, kept, *_ = comparison_outputs(small_bundle.name, comparison)
    # each series names its model as its records (and a sweep of that model) do: the bundles' names
    assert [(c[0], c[5]) for c in kept["cells"]] == [("ddim", small_bundle.name), ("sit_ode_euler", sit.name)]


def test_the_agents_quality_lookup_names_the_model_of_each_answer(both):
    answer = AgentTools(None, both).quality_at_budget(10, "frechet", "nfe")
    assert f"sit_ode_heun @ 5 steps (9 NFE) on {SIT}" in answer and "| Cell | Model | Sampler |" in answer


def test_quality_folders_repeat_on_the_command_line_or_come_as_a_comma_list(monkeypatch, tmp_path):
    monkeypatch.delenv("DIT_QUALITY", raising=False)
    assert app.parse_args(["--quality", "a"]).quality == ["a"]
    assert app.parse_args(["--quality", "a", "--quality", "b"]).quality == ["a", "b"]
    assert app.parse_args([]).quality is None
    monkeypatch.setenv("DIT_QUALITY", "a, b")
    assert app.parse_args([]).quality == ["a", "b"] and app.parse_args(["--quality", "c"]).quality == ["c"]
    sit = write_sit_sweep(tmp_path / "sit", seed=0)
    data, warning = app._quality_data([str(answers.SHIPPED), str(sit)])
    assert data.models() == [DIT, SIT] and not warning
    assert app._quality_data(str(sit))[0].models() == [SIT]  # one folder as a string, as before


def test_the_default_is_the_shipped_dit_sweep_and_the_sit_sweep_where_it_exists(monkeypatch, tmp_path):
    monkeypatch.setattr(answers, "SHIPPED_SIT", tmp_path / "quality-sit")
    assert app._quality_data(None)[0].models() == [DIT]  # no SiT sweep shipped: the DiT's alone
    write_sit_sweep(tmp_path / "quality-sit", seed=0)
    assert app._quality_data(None)[0].models() == [DIT, SIT]
