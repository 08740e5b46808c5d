"""Caps on what one request may cost: estimated work, disk, uploads."""

from __future__ import annotations

import os
import time

import pytest
from helpers import wrapped

from dit_demo.lab.compare import ComparisonSpec, run_comparison
from dit_demo.runtime.budget import Budget, CostModel
from dit_demo.runtime.engine import sample
from dit_demo.runtime.request import Lane


def test_a_request_over_budget_is_refused_before_any_sampling(small_bundle):
    counted, counter = wrapped(small_bundle)
    budget = Budget(60.0, CostModel(per_call=0.01, per_row=0.002, per_decode=0.05))
    heavy = [Lane("heun", 1000, c, seed=j, cfg_scale=4.0) for c in range(8) for j in range(8)]
    with pytest.raises(ValueError) as info:
        sample(counted, heavy, budget=budget)
    message = str(info.value)
    # 64 lanes x 1999 evaluations x 2 rows: 255,872 rows; 1999 rounds of 2 chunks of 64 rows
    assert "64 image(s), 127936 model evaluations (255872 transformer rows" in message
    assert "the limit is 60 s per request" in message and "DIT_MAX_REQUEST_SECONDS" in message
    assert counter.calls == 0


def test_a_request_under_budget_runs_and_the_estimate_counts_rows_and_chunks(small_bundle):
    cost = CostModel(per_call=0.01, per_row=0.002, per_decode=0.05)
    light = [Lane("ddim", 10, 1, cfg_scale=4.0), Lane("heun", 3, 2, cfg_scale=1.0)]
    # rounds 1-5: 2 + 1 rows, rounds 6-10: 2 rows -> 10 calls, 10 * 2 + 5 * 1 = 25 rows, 2 decodes
    assert cost.estimate([(10, 2), (5, 1)]) == pytest.approx(10 * 0.01 + 25 * 0.002 + 2 * 0.05)
    assert cost.estimate([(3, 40), (3, 40)], max_batch=64) == pytest.approx(6 * 0.01 + 240 * 0.002 + 2 * 0.05)
    assert len(sample(small_bundle, light, budget=Budget(1.0, cost))) == 2
    assert len(sample(small_bundle, light, budget=Budget(0, CostModel(1e3, 1e3, 1e3)))) == 2  # 0: no limit


def test_comparison_reference_lanes_count_against_the_budget(small_bundle):
    spec = ComparisonSpec.build("ddim", "2,4", "Bag", cfg_text="1", reference="ddim@900")
    with pytest.raises(ValueError, match="3 image\\(s\\), 906 model evaluations"):
        run_comparison(small_bundle, spec, budget=Budget(1.0, CostModel(0.01, 0.01, 0.0)))


def test_measured_cost_is_positive_and_grows_with_rows(small_bundle):
    cost = CostModel.measure(small_bundle)
    assert cost.per_call >= 0 and cost.per_row >= 0 and cost.per_decode > 0
    assert cost.estimate([(100, 2)] * 4) > cost.estimate([(10, 1)])


def test_old_output_files_are_swept(tmp_path):
    from dit_demo.app.outputs import sweep_outputs

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    old, old_flat, new = tmp_path / "a" / "old.png", tmp_path / "old.png", tmp_path / "b" / "new.png"
    for path in (old, old_flat, new):
        path.write_bytes(b"x")
    hour_ago = time.time() - 3700
    for path in (old, old_flat):
        os.utime(path, (hour_ago, hour_ago))
    assert sweep_outputs(tmp_path, max_age=3600) == 2
    assert not old.exists() and not old_flat.exists() and new.exists()
    assert not (tmp_path / "a").exists() and (tmp_path / "b").exists()  # emptied folders go too


def test_the_app_limits_uploads_and_cleans_gradios_cache(small_bundle_dir):
    from app import LAUNCH_SETTINGS, create_app
    from dit_demo.lab.pngmeta import MAX_PNG_BYTES

    demo = create_app(str(small_bundle_dir), "cpu", "fp32")
    assert LAUNCH_SETTINGS["max_file_size"] == MAX_PNG_BYTES
    frequency, age = demo.delete_cache
    assert 0 < frequency <= age <= 2 * 3600


def test_the_learned_overhead_ignores_short_requests_and_stays_bounded():
    from dit_demo.app.context import CostCache

    costs, cost = CostCache(), CostModel(0.01, 0.001, 0.0, overhead=2.0)
    small = Budget(60, cost)
    small.check([(10, 2)])  # 0.24 s estimated: dominated by fixed costs, so it teaches nothing
    costs.observe(small, 30.0)
    assert costs.overhead == CostCache.START_OVERHEAD
    big = Budget(60, cost)
    big.check([(500, 2)])  # 12 s estimated (6 s for the engine alone)
    for _ in range(10):
        costs.observe(big, 600.0)  # a machine that was busy with something else
    assert 3.9 < costs.overhead <= 4.0
    costs.observe(big, 6.0)
    assert 1.0 <= costs.overhead < 4.0
