"""The Compare tab's plots: series merged when they coincide, a log distance axis, legends never cut."""

from __future__ import annotations

from dit_demo.app.plots import chart, comparison_plots, merge_identical, plot_series
from dit_demo.lab.compare.run import run_comparison
from dit_demo.lab.specs.compare_spec import ComparisonSpec


def test_series_that_coincide_are_drawn_once_and_named_together():
    merged = merge_identical({"DDIM": [(1, 0.5), (2, 0.25)], "Euler": [(1, 0.5), (2, 0.2501)], "Heun": [(1, 0.9)]})
    assert list(merged) == ["DDIM = Euler", "Heun"]


def test_a_log_axis_leaves_out_the_reference_and_says_so():
    spec = chart({"DDIM": [(10.0, 0.3), (50.0, 0.0)], "Heun": [(19.0, 0.1)]}, "NFE", "RMSE", log_y=True).to_dict()
    assert spec["encoding"]["y"]["scale"]["type"] == "log"
    assert [row["y"] for row in spec["datasets"][next(iter(spec["datasets"]))]] == [0.3, 0.1]
    assert any("not drawn on a log axis" in line for line in spec["title"]["text"])
    assert spec["encoding"]["color"]["legend"]["labelLimit"] == 0  # long sampler names are never cut
    linear = chart({"DDIM": [(10.0, 0.3), (50.0, 0.0)]}, "NFE", "RMSE").to_dict()
    assert (
        len(linear["datasets"][next(iter(linear["datasets"]))]) == 2
        and linear["encoding"]["y"]["scale"]["zero"] is False
    )


def test_plot_data_of_a_comparison_names_every_sampler_once(small_bundle):
    comparison = run_comparison(small_bundle, ComparisonSpec.build("ddim,heun", "2,4", "Bag", seed=1, cfg_text="2"))
    series = plot_series(comparison)
    assert set(series["distances"]) == {"DDIM", "Heun"}
    assert [nfe for nfe, _ in series["distances"]["Heun"]] == [3.0, 7.0]  # Heun pays 2 per step but the last
    distance, schedule = comparison_plots(series, "log")
    assert (
        distance.to_dict()["encoding"]["y"]["scale"]["type"] == "log" and schedule.to_dict()["mark"]["type"] == "line"
    )
    # one point per model evaluation (Heun's two a step), and the axis says so
    assert (
        len(series["schedules"]["Heun 4"]) == 7 and schedule.to_dict()["encoding"]["x"]["title"] == "model evaluation"
    )
