"""Comparison specs, step-count syntax, grids and the parameters stored in PNGs."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from dit_demo.lab.compare.run import run_comparison
from dit_demo.lab.outputs.grid import make_grid
from dit_demo.lab.outputs.pngmeta import read_parameters, save_png
from dit_demo.lab.specs.compare_spec import ComparisonSpec
from dit_demo.lab.specs.grammar import parse_steps


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10,25,50", [10, 25, 50]),
        ("10-50 (+10)", [10, 20, 30, 40, 50]),
        ("5-50 [4]", [5, 20, 35, 50]),
        ("5, 10-30 (+10), 25", [5, 10, 20, 30, 25]),
        ("10,10,20", [10, 20]),
    ],
)
def test_step_syntax(text, expected):
    assert parse_steps(text) == expected


@pytest.mark.parametrize(
    "text",
    ["", "ten", "50-10 (+10)", "10-50 (+0)", "1-100 (+1)", "10-20 [0]", "1-99999999999 (+1)", "1-2 [99999999999]"],
)
def test_bad_step_syntax_is_explained(text):
    with pytest.raises(ValueError, match="step|Range|range"):
        parse_steps(text)


def test_comparison_cells_reference_and_grid(small_bundle):
    spec = ComparisonSpec.build("ddim,euler_a", "3,6", "Sandal", seed=2, cfg_text="1.5,4")
    comparison = run_comparison(small_bundle, spec)
    assert [(c.sampler, c.steps, c.cfg_scale) for c in comparison.cells] == [
        (s, n, cfg)
        for cfg in (1.5, 4.0)
        for s in ("ddim", "euler_ancestral")
        for n in (3, 6)  # an old name spelled anew
    ]
    # default reference: the highest-step deterministic cell, once per cfg value
    assert [(r.sampler, r.steps, r.cfg_scale) for r in comparison.reference] == [("ddim", 6, 1.5), ("ddim", 6, 4.0)]
    assert all(c.distance == 0 for c in comparison.cells if c.is_reference)
    assert all(c.distance > 0 for c in comparison.cells if not c.is_reference)
    assert comparison.class_name == "Sandal" and comparison.grid.width > 2 * 160
    # every cell's sigmas fall from the largest noise level: sampling starts at t = T - 1
    assert all(
        c.sigmas[0] > 100 and c.sigmas == sorted(c.sigmas, reverse=True)
        for c in comparison.cells
        if c.sampler == "ddim"
    )


def test_reference_outside_the_grid_is_added(small_bundle):
    spec = ComparisonSpec.build(["dpmpp_2m"], "4", 1, reference="ddim@20", cfg_text="2")
    comparison = run_comparison(small_bundle, spec)
    assert len(comparison.cells) == 1 and comparison.reference[0].steps == 20
    assert comparison.cells[0].distance > 0


def test_reference_forms():
    assert ComparisonSpec.build("ddim", "5", 1, cfg_text="4", reference="heun@40").reference == ("heun", 40)
    assert ComparisonSpec.build("ddim", "5", 1, cfg_text="4", reference=("heun", 40)).reference == ("heun", 40)
    with pytest.raises(ValueError, match="sampler@steps"):
        ComparisonSpec.build("ddim", "5", 1, cfg_text="4", reference="heun")


def test_png_round_trip_of_parameters(tmp_path):
    spec = ComparisonSpec.build("ddim,heun", "10-30 (+10)", "Bag", seed=9, cfg_text="4", reference="ddim@50")
    path = save_png(Image.new("RGB", (8, 8)), tmp_path / "x.png", {"mode": "compare", **spec.to_dict()})
    restored = ComparisonSpec.from_dict(read_parameters(path))
    assert restored == spec
    Image.new("RGB", (4, 4)).save(tmp_path / "plain.png")
    with pytest.raises(ValueError, match="carries no DiT Sampler Lab parameters"):
        read_parameters(tmp_path / "plain.png")


def test_grid_layout_draws_labels():
    # light cells, so that the only dark pixels are the labels' text
    cells = [[Image.new("RGB", (32, 32), (255, 160, 160)), Image.new("RGB", (32, 32), (160, 160, 255))]]
    grid = make_grid(cells, ["DDIM"], ["10 steps", "20 steps"], [["a", "b"]], title="t")
    darkest = grid.convert("L").getextrema()[0]
    assert darkest < 100  # text was drawn
    assert grid.getpixel((grid.width - 5, grid.height // 2))[2] > 200  # the blue cell sits right


def test_previews_show_the_cells_in_grid_order_and_not_the_extra_reference():
    spec = ComparisonSpec.build("ddim,heun", "2,4", "Bag", cfg_text="1.5", reference="ddim@50")
    x0 = {k: torch.full((4, 8, 8), float(k)) for k in (4, 0, 3)}  # lane 4 is the appended reference
    previews = spec.cell_previews(x0)
    assert [name for name, _ in previews] == ["ddim 2", "heun 4"]
    assert [int(latent[0, 0, 0]) for _, latent in previews] == [0, 3]


def test_a_seed_axis_reports_the_mean_and_spread_of_each_cells_distance(small_bundle):
    spec = ComparisonSpec.build("ddim,dpmpp_2m", "3,8", "Bag", seed=4, cfg_text="3", seeds=3)
    comparison = run_comparison(small_bundle, spec)
    assert [(c.sampler, c.steps, c.seed) for c in comparison.cells] == [
        (s, n, seed) for s in ("ddim", "dpmpp_2m") for n in (3, 8) for seed in (4, 5, 6)
    ]
    assert [(r.sampler, r.steps, r.seed) for r in comparison.reference] == [("ddim", 8, seed) for seed in (4, 5, 6)]
    for c in comparison.cells:  # each seed is measured against the reference of its own seed
        ref = next(r for r in comparison.reference if r.seed == c.seed)
        assert c.distance == pytest.approx(float((c.latents - ref.latents).pow(2).mean().sqrt()))
    rows = comparison.table()
    assert len(rows) == 4 and list(rows[0])[:4] == ["Sampler", "Steps", "Latent RMSE to reference", "± (sd over seeds)"]
    for row, (_, cells) in zip(rows, comparison.series()):
        distances = torch.tensor([c.distance for c in cells], dtype=torch.float64)
        assert row["Latent RMSE to reference"] == pytest.approx(float(distances.mean()), abs=1e-4)
        assert row["± (sd over seeds)"] == pytest.approx(float(distances.std()), abs=1e-4)
    assert rows[1]["Reference"] == "reference" and rows[1]["± (sd over seeds)"] == 0
    assert rows[0]["± (sd over seeds)"] > 0  # seeds differ: one seed's luck is not the answer
    one = run_comparison(small_bundle, ComparisonSpec.build("ddim,dpmpp_2m", "3,8", "Bag", seed=5, cfg_text="3"))
    # seed 5 is the same image either way (up to fp32 rounding: the two batches differ in size)
    a, b = one.cells[0].latents, comparison.cells[1].latents
    assert (a - b).abs().max() < 1e-5 * a.abs().max()


@pytest.mark.usefixtures("every_layer_int8")
def test_a_preset_axis_runs_exact_and_fast_against_the_exact_reference(small_bundle):
    spec = ComparisonSpec.build("dpmpp_2m", "4,8", "Bag", seed=1, cfg_text="3", presets="fast,exact")
    assert spec.presets == ("exact", "fast")  # the reference runs at exact, listed first
    reports = []
    comparison = run_comparison(small_bundle, spec, callback=reports.append)
    exact_only = run_comparison(small_bundle, ComparisonSpec.build("dpmpp_2m", "4,8", "Bag", seed=1, cfg_text="3"))
    exact = [c for c in comparison.cells if c.preset == "exact"]
    fast = [c for c in comparison.cells if c.preset == "fast"]
    assert [torch.equal(a.latents, b.latents) for a, b in zip(exact, exact_only.cells)] == [True, True]
    assert all(c.distance > 0 for c in fast) and comparison.reference[0].preset == "exact"
    # one request as far as progress goes: rounds run on across the two groups, lanes keep their places
    assert [p.round for p in reports] == list(range(1, 17)) and {p.total_rounds for p in reports} == {16}
    assert set(reports[-1].x0) == {3} and set(reports[0].x0) == {0, 1}
    assert [row["Preset"] for row in comparison.table()] == ["exact", "exact", "fast", "fast"]


def test_seed_and_preset_axes_are_stored_and_read_back(tmp_path):
    spec = ComparisonSpec.build("ddim,dpmpp_2m[karras=true]", "5", "Bag", cfg_text="2", seeds=4, presets="exact,fast")
    data = spec.to_dict()
    assert (
        data["seeds"] == 4 and data["presets"] == ["exact", "fast"] and data["samplers"][1] == "dpmpp_2m[karras=true]"
    )
    assert ComparisonSpec.from_dict(data) == spec
    plain = ComparisonSpec.build("ddim", "5", "Bag", cfg_text="2").to_dict()
    assert "seeds" not in plain and "presets" not in plain  # older PNGs and plain ones read the same


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"seeds": 0}, "Seeds must be"),
        ({"seeds": 17}, "Seeds must be"),
        ({"presets": "exact,turbo"}, "Unknown preset 'turbo'; choose from exact, fast"),
        ({"presets": 5}, "Presets must be a list of exact, fast"),
        (
            {"seeds": 16, "presets": "exact,fast"},
            "1 step count x 1 cfg scale x 16 seeds x 2 presets = 96 cells; at most 64",
        ),
    ],
)
def test_bad_axes_are_explained(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ComparisonSpec.build("ddim,heun,euler", "5", "Bag", cfg_text="2", **kwargs)
