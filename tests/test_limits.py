"""Caps on what one request may cost: estimated work, disk, uploads."""

from __future__ import annotations

import os
import time

import pytest
from helpers import wrapped

from dit_demo.lab.compare.run import run_comparison
from dit_demo.lab.specs.compare_spec import ComparisonSpec
from dit_demo.runtime.budget import Budget, CostModel
from dit_demo.runtime.engine import sample
from dit_demo.runtime.request import Lane


def test_a_request_over_budget_is_refused_before_any_sampling(small_bundle):
    counted, counter = wrapped(small_bundle)
    budget = Budget(60.0, CostModel(per_call=0.01, per_row=0.002, per_decode=0.05), where_set="--max-seconds")
    heavy = [Lane("heun", 1000, c, seed=j, cfg_scale=4.0) for c in range(8) for j in range(8)]
    with pytest.raises(ValueError) as info:
        sample(counted, heavy, budget=budget)
    message = str(info.value)
    # 64 lanes x 1999 evaluations x 2 rows: 255,872 rows; 1999 rounds of 2 chunks of 64 rows
    assert "64 image(s), 127936 model evaluations (255872 transformer rows" in message
    assert "the limit is 60 s per request" in message and "sets the limit (--max-seconds)" in message
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
    from dit_demo.lab.outputs.pngmeta import MAX_PNG_BYTES

    demo = create_app(str(small_bundle_dir), "cpu", "fp32")
    assert LAUNCH_SETTINGS["max_file_size"] == MAX_PNG_BYTES
    frequency, age = demo.delete_cache
    assert 0 < frequency <= age <= 2 * 3600


def test_the_learned_overhead_ignores_short_requests_and_stays_bounded(small_bundle):
    from dit_demo.app import costs as costs_module

    cost = CostModel(0.01, 0.001, 0.0)
    costs = costs_module.CostCache(measure=lambda bundle: cost)
    costs.get(small_bundle)
    small = costs.budget(small_bundle, 60)
    small.check([(10, 2)])  # 0.24 s estimated: dominated by fixed costs, so it teaches nothing
    costs.observe(small, 0.5)
    assert costs.overhead == costs_module.START_OVERHEAD
    big = costs.budget(small_bundle, 60)
    big.check([(500, 2)])  # 12 s estimated (6 s for the engine alone)
    for _ in range(10):
        costs.observe(big, 600.0)  # a machine that was busy with something else
    assert costs.overhead == costs_module.OVERHEAD_RANGE[1]
    for _ in range(10):
        costs.observe(big, 1.5)  # the busy moment is over, and this server is faster than measured
    assert costs.overhead < 1.1 * costs_module.OVERHEAD_RANGE[0]


def test_a_measurement_taken_on_a_busy_machine_does_not_refuse_what_fits(small_bundle):
    from dit_demo.app.costs import CostCache

    quiet, busy = CostModel(0.01, 0.001, 0.01), CostModel(1.0, 0.1, 1.0)  # busy: 100x too slow
    measured = [busy]
    costs = CostCache(measure=lambda bundle: measured.pop(0) if measured else quiet)
    costs.get(small_bundle)  # at start-up, while another process had the cores
    budget = costs.budget(small_bundle, 60)
    seconds = budget.check([(100, 2)] * 4)  # 100 x (1 + 0.8) + 4 = 184 s busy; 1.84 s quiet
    assert seconds == pytest.approx(2 * (100 * 0.01 + 800 * 0.001 + 4 * 0.01))  # measured again, then accepted
    with pytest.raises(ValueError, match="too big for this server"):
        costs.budget(small_bundle, 1).check([(100, 2)] * 4)  # still refused where it really is too big


def test_reality_far_from_the_estimate_makes_the_next_request_measure_again(small_bundle):
    from dit_demo.app.costs import CostCache

    measured = [CostModel(0.1, 0.01, 0.1), CostModel(0.01, 0.001, 0.01)]
    costs = CostCache(measure=lambda bundle: measured.pop(0))
    budget = costs.budget(small_bundle, 0)
    budget.check([(100, 2)])  # engine estimate 10 + 2 + 0.1 = 12.1 s
    costs.observe(budget, 1.2)  # ten times faster: the measurement was wrong
    assert costs.get(small_bundle).per_row == 0.001 and not measured


def test_a_server_started_on_a_busy_machine_accepts_what_fits_once_the_load_is_gone(tmp_path):
    import subprocess
    import sys

    from conftest import make_bundle, serve
    from gradio_client import Client

    from app import create_app
    from dit_demo.app.costs import START_OVERHEAD
    from dit_demo.runtime.loader import load_bundle

    # a model whose forward spans many of the scheduler's time slices, so sharing the cores slows every
    # measured run (a 1 ms forward can slip between the other processes and measure as if alone)
    names = {str(i): f"class {i}" for i in range(10)}
    small_bundle_dir = make_bundle(tmp_path / "model", 10, names, heads=8, layers=6, latent=16)
    work = [(200, 2)]  # one guided image, 200 DDIM steps
    quiet = START_OVERHEAD * CostModel.measure(load_bundle(small_bundle_dir, "cpu", "fp32")).estimate(work)
    limit = 2 * quiet  # fits on a quiet machine, not when measured while the cores are shared 9 ways
    spin = "print('spinning', flush=True)\nwhile True: pass"
    burners = [
        subprocess.Popen([sys.executable, "-c", spin], stdout=subprocess.PIPE) for _ in range(8 * (os.cpu_count() or 1))
    ]
    try:
        for burner in burners:  # every one is on the cores before anything is measured
            burner.stdout.readline()
        busy = START_OVERHEAD * CostModel.measure(load_bundle(small_bundle_dir, "cpu", "fp32")).estimate(work)
        demo = create_app(str(small_bundle_dir), "cpu", "fp32", max_request_seconds=limit)  # measured now, busy
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()
    assert busy > limit, "the load did not slow the measurement down: this test shows nothing here"
    with serve(demo) as url:
        _, gallery, summary = Client(url, verbose=False).predict(
            ["class 8"], "ddim", 200, 4.0, 0, 0, 1, api_name="/generate"
        )
    assert len(gallery) == 1 and "200 NFE each" in summary


def test_the_estimate_counts_the_calls_the_engine_makes_when_lanes_end_at_different_rounds(small_bundle):
    from helpers import wrapped

    bundle, counter = wrapped(small_bundle)
    # cfg 1: one row a lane; ddim 4 steps ends after round 4, the 6-step lanes run on alone in 2 chunks of 2
    lanes = [Lane("ddim", 4, 1, seed, cfg_scale=1.0) for seed in range(3)] + [
        Lane("ddim", 6, 2, seed, cfg_scale=1.0) for seed in range(4)
    ]
    sample(bundle, lanes, max_batch=2)
    calls_only = CostModel(per_call=1.0, per_row=0.0, per_decode=0.0)
    # rounds 1-4: 7 rows -> 4 calls each; rounds 5-6: 4 rows -> 2 calls each
    assert counter.calls == 4 * 4 + 2 * 2 == calls_only.estimate([(4, 1)] * 3 + [(6, 1)] * 4, max_batch=2)
