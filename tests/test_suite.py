"""The speed suite's JSON: the schema the README's performance table is made from (a quick run on tiny bundles)."""

from __future__ import annotations

import json

from dit_demo.lab import suite


def test_suite_json_has_the_schema(imagenet_bundle, small_bundle, tmp_path):
    data = suite.run_suite(
        {"tiny1000": imagenet_bundle, "tiny10": small_bundle},
        ("single", "grid3x3"),
        suite.RUNNERS,
        steps=3,
        grid_steps=(2, 3, 4),
        progress=lambda _: None,
    )
    suite.write_json(data, str(tmp_path / "bench.json"))
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
    table = suite.markdown(data)
    assert "| tiny1000 | grid3x3 |" in table and "| tiny10 | single |" in table and "n/a" in table
