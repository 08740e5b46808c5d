"""Comparison specs, step-count syntax, grids and the parameters stored in PNGs."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from dit_demo.lab.compare import ComparisonSpec, run_comparison
from dit_demo.lab.grid import make_grid
from dit_demo.lab.pngmeta import read_parameters, save_png
from dit_demo.runtime.parsing import parse_steps


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
        (s, n, cfg) for cfg in (1.5, 4.0) for s in ("ddim", "euler_a") for n in (3, 6)
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
