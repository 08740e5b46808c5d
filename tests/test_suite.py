"""The speed suite's JSON: the schema the README's performance table is made from (a quick run on tiny bundles)."""

from __future__ import annotations

import json
from pathlib import Path

from dit_demo.lab.bench import report as bench_report
from dit_demo.lab.bench import suite
from dit_demo.lab.quality import lever_quality
from dit_demo.runtime.levers import Levers, preset
from dit_demo.runtime.request import Lane

_EMPTY_SUITE = {"machine": suite.machine(), "steps": 25, "grid_steps": [5], "repeats": 1, "results": []}


def test_suite_json_has_the_schema(imagenet_bundle, small_bundle, tmp_path):
    data = suite.run_suite(
        {"tiny1000": imagenet_bundle, "tiny10": small_bundle},
        ("single", "grid3x3"),
        suite.RUNNERS,
        steps=3,
        grid_steps=(2, 3, 4),
        progress=lambda _: None,
    )
    bench_report.write_json(data, str(tmp_path / "bench.json"))
    data = json.loads((tmp_path / "bench.json").read_text())
    assert set(data["machine"]) >= {"cpu", "cores", "gpu", "torch", "diffusers", "threads", "fast_preset"}
    assert {(r["model"], r["workload"], r["runner"]) for r in data["results"]} == {
        (m, w, r) for m in ("tiny1000", "tiny10") for w in ("single", "grid3x3") for r in suite.RUNNERS
    }
    for r in data["results"]:
        assert set(r) == {"model", "workload", "runner", "seconds", "images", "nfe", "note"}
        assert r["images"] == (1 if r["workload"] == "single" else 9)
        assert r["nfe"] == (3 if r["workload"] == "single" else 27)
        pipeline_cannot = r["model"] == "tiny10" and r["runner"].startswith("pipeline")  # null class is not 1000
        assert (r["seconds"] is None) == pipeline_cannot and bool(r["note"]) == pipeline_cannot
        assert r["seconds"] is None or r["seconds"] > 0
    for f in data["flops"].values():
        assert f["transformer_gflop"] > 0 and f["transformer_gflops_per_s"] > 0 and f["matmul_gflops_per_s"] > 0
    table = bench_report.markdown(data)
    assert "| tiny1000 | grid3x3 |" in table and "| tiny10 | single |" in table and "n/a" in table


def test_the_fast_runner_on_random_weights_replays_a_trained_models_cache_decisions(imagenet_bundle, small_bundle):
    data = suite.run_suite(
        {"tiny-random": imagenet_bundle},
        ("single",),
        ("engine_exact", "engine_fast"),
        steps=8,
        grid_steps=(2,),
        progress=lambda _: None,
        recorder=small_bundle,
    )
    fast = next(r for r in data["results"] if r["runner"] == "engine_fast")
    if preset("fast").cache_threshold:
        assert fast["note"].startswith(f"first-block cache decisions replayed from {small_bundle.name}")
    jobs, note = suite.runner_jobs(imagenet_bundle, [Lane("dpmpp_2m", 8, 7, 0, 4.0)], ("engine_fast",), None)
    assert note == ""  # nothing to replay from: the fast runner takes its own decisions


def test_quality_rows_compare_each_lever_with_exact_on_the_same_seeds(embedded_bundle):
    rows = lever_quality.quality(embedded_bundle, per_class=2, steps=4)
    assert [r["preset"] for r in rows] == list(lever_quality.quality_levers(embedded_bundle.device))
    assert len({r["fd_exact"] for r in rows}) == 1 and len({r["accuracy_exact"] for r in rows}) == 1
    for r in rows:
        assert set(r) >= {"model", "preset", "samples", "fd", "accuracy", "fd_exact", "accuracy_exact"}
        assert r["model"] == "embedded" and r["samples"] == 20 and r["fd"] > 0 and 0 <= r["accuracy"] <= 1
    assert any(r["fd"] != r["fd_exact"] for r in rows)  # the levers changed something
    table = bench_report.markdown({**_EMPTY_SUITE, "quality": rows})
    assert "| engine_fast |" in table and "passes" in table


def test_an_interrupted_suite_resumes_without_timing_finished_workloads_again(imagenet_bundle):
    saved = []
    first = suite.run_suite(
        {"tiny1000": imagenet_bundle},
        ("single",),
        ("engine_exact",),
        3,
        (2,),
        progress=lambda _: None,
        checkpoint=lambda data: saved.append(json.loads(json.dumps(data))),
    )
    assert len(saved) == 1 and saved[0]["results"] == first["results"]
    lines = []
    resumed = suite.run_suite(
        {"tiny1000": imagenet_bundle},
        ("single", "grid3x3"),
        ("engine_exact",),
        3,
        (2,),
        progress=lines.append,
        previous=saved[-1],
    )
    assert lines[0] == "tiny1000 single: kept from the earlier run"
    assert resumed["results"][0] == first["results"][0]  # the same measurement, not a new one
    assert [(r["workload"], r["runner"]) for r in resumed["results"]] == [
        ("single", "engine_exact"),
        ("grid3x3", "engine_exact"),
    ]
    other = suite.run_suite(
        {"tiny1000": imagenet_bundle},
        ("single",),
        ("engine_exact",),
        4,
        (2,),
        progress=lines.append,
        previous=saved[-1],
    )
    assert other["results"][0]["nfe"] == 4  # another step count: nothing is kept


def test_a_resumed_suite_times_again_the_rows_an_earlier_run_left_untimed(imagenet_bundle):
    first = suite.run_suite({"tiny1000": imagenet_bundle}, ("single",), ("engine_exact",), 3, (2,), progress=print)
    untimed = json.loads(json.dumps(first))
    untimed["results"][0].update(seconds=None, note="not timed: the session's time ran out")
    resumed = suite.run_suite(
        {"tiny1000": imagenet_bundle}, ("single",), ("engine_exact",), 3, (2,), progress=print, previous=untimed
    )
    assert [r["runner"] for r in resumed["results"]] == ["engine_exact"]
    assert resumed["results"][0]["seconds"] > 0 and resumed["results"][0]["note"] == ""


def test_a_resumed_suite_keeps_its_rows_in_the_order_asked_for(imagenet_bundle):
    """A row timed again takes its place among the kept ones, so the README's table reads in order."""
    workloads = ("single", "grid3x3")
    first = suite.run_suite({"tiny1000": imagenet_bundle}, workloads, ("engine_exact",), 3, (2,), progress=print)
    untimed = json.loads(json.dumps(first))
    untimed["results"][0].update(seconds=None)  # single: timed again after grid3x3 is kept
    resumed = suite.run_suite(
        {"tiny1000": imagenet_bundle}, workloads, ("engine_exact",), 3, (2,), progress=print, previous=untimed
    )
    assert [r["workload"] for r in resumed["results"]] == ["single", "grid3x3"]
    assert resumed["results"][1] == first["results"][1] and resumed["results"][0]["seconds"] > 0


def test_the_readme_performance_section_is_made_from_the_committed_json():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    blocks = bench_report.readme_blocks(readme)
    assert "cpu.json" in blocks  # the CPU suite is measured and shown
    for name, body in blocks.items():
        assert body.strip() == bench_report.block(name).strip(), (
            f"README out of date: python -m dit_demo bench --readme README.md ({name})"
        )
    assert "per-image" in blocks  # the Spaces section's hardware table
    assert "samplers" in blocks and "| `dpmpp_2m` | DPM-Solver++ 2M |" in blocks["samplers"]  # from the registry
    for path in bench_report.BENCH_DIR.glob("*.json"):
        data = json.loads(path.read_text())
        assert {r["workload"] for r in data["results"]} == set(suite.WORKLOADS) and data.get("quality")


def test_refreshing_the_readme_rewrites_only_the_bench_blocks(tmp_path):
    (tmp_path / "bench").mkdir()
    data = {
        **_EMPTY_SUITE,
        "results": [
            {
                "model": "m",
                "workload": "single",
                "runner": "engine_exact",
                "seconds": 1.0,
                "images": 1,
                "nfe": 3,
                "note": "",
            }
        ],
    }
    (tmp_path / "bench" / "x.json").write_text(json.dumps(data))
    readme = tmp_path / "README.md"
    readme.write_text("before\n<!-- bench:x.json -->\nstale\n<!-- /bench:x.json -->\nafter\n")
    assert bench_report.refresh_readme(readme, tmp_path / "bench") == ["x.json"]
    text = readme.read_text()
    assert text.startswith("before\n<!-- bench:x.json -->\n") and text.endswith("<!-- /bench:x.json -->\nafter\n")
    assert "stale" not in text and "| m | single | 1 |" in text


def test_a_compiled_fast_model_is_warmed_per_workload_and_its_first_calls_are_kept(imagenet_bundle, monkeypatch):
    monkeypatch.setattr(suite, "preset", lambda name, device: Levers(compile=True))  # fast as on a GPU
    data = suite.run_suite(
        {"tiny1000": imagenet_bundle}, ("single", "batch8"), ("engine_fast",), 3, (2,), progress=lambda _: None
    )
    assert set(data["compile_seconds"]["tiny1000"]) == {"2", "16"}  # one image with guidance, then 8
    assert all(seconds > 0 for seconds in data["compile_seconds"]["tiny1000"].values())
    report = bench_report.markdown(data)
    assert "first call per bucket (compiling included): 2 rows" in report


def test_warm_up_runs_only_the_runners_named():
    calls = {"a": 0, "b": 0}

    def job(name):
        return lambda: calls.__setitem__(name, calls[name] + 1)

    timed = suite.time_interleaved({"a": job("a"), "b": job("b"), "c": None}, repeats=2, warm_up=("a",))
    # instant jobs: at least QUICK_RUNS rounds, since a machine's noise is larger than such a job
    assert calls == {"a": 1 + suite.QUICK_RUNS, "b": suite.QUICK_RUNS} and timed["c"] is None and timed["a"] >= 0


def test_workloads_that_take_a_second_or_more_a_round_run_the_repeats_asked_for(monkeypatch):
    calls = []
    monkeypatch.setattr(suite, "_seconds", lambda job: job() or 0.6)  # two runners: 1.2 s a round
    suite.time_interleaved({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, repeats=3, warm_up=())
    assert calls == ["a", "b"] * 3


def test_the_report_compares_fast_with_the_half_precision_pipeline_too():
    rows = [
        {"model": "m", "workload": "single", "runner": r, "seconds": s, "images": 1, "nfe": 25, "note": ""}
        for r, s in (("pipeline_fp32", 4.0), ("pipeline_half", 2.0), ("engine_exact", 4.0), ("engine_fast", 0.5))
    ]
    table = bench_report.markdown({**_EMPTY_SUITE, "results": rows})
    assert "| fast vs DiTPipeline half |" in table
    assert table.count("| m | single | 1 | 4.00 | 2.00 | 4.00 | 0.500 | 1.00x | 8.00x | 4.00x |") == 1  # ms below 1 s


def test_a_resumed_suite_keeps_the_earlier_quality_in_every_checkpoint(imagenet_bundle):
    earlier = {"repeats": 1, "steps": 3, "grid_steps": [2], "results": [], "quality": [{"preset": "engine_fast"}]}
    saved = []
    suite.run_suite(
        {"tiny1000": imagenet_bundle},
        ("single",),
        ("engine_exact",),
        3,
        (2,),
        progress=lambda _: None,
        previous=earlier,
        checkpoint=lambda data: saved.append(json.loads(json.dumps(data))),
    )
    assert saved and all(data["quality"] == earlier["quality"] for data in saved)
