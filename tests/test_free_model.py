"""The loop-alone model: DiT-XL/2-256's shapes at no cost, timed by the suite with the two exact loops."""

from __future__ import annotations

import torch

from dit_demo.lab.bench import report as bench_report
from dit_demo.lab.bench import suite
from dit_demo.lab.bench.free_model import FREE_MODEL, xl256_free
from dit_demo.runtime import distinct_rows as distinct_rows_module
from dit_demo.runtime.engine import run
from dit_demo.runtime.request import Lane, check_lanes


def test_the_free_model_answers_as_the_xl_dit_does_and_depends_on_each_row():
    model = xl256_free(torch.device("cpu"))
    assert (model.latent_shape, model.num_classes, model.learned_sigma) == ((4, 32, 32), 1000, True)
    x = torch.randn(3, 4, 32, 32)
    x[1] = x[0]
    out = model.transformer(x, timestep=torch.full((3,), 999.0), class_labels=torch.tensor([1, 2, 2])).sample
    assert out.shape == (3, 8, 32, 32)
    assert not torch.equal(out[0], out[1]) and not torch.equal(out[1], out[2])  # another class, another latent
    assert model.decode(torch.zeros(2, 4, 32, 32)).shape == (2, 3, 256, 256)


def test_lanes_drift_apart_on_the_free_model_as_on_a_trained_one(monkeypatch):
    compared = []
    original = distinct_rows_module.distinct_rows
    monkeypatch.setattr(distinct_rows_module, "distinct_rows", lambda *c: compared.append(len(c[0])) or original(*c))
    model = xl256_free(torch.device("cpu"))
    results = run(model, check_lanes(model, [Lane("dpmpp_2m", 6, c, seed=0, cfg_scale=4.0) for c in range(8)]))
    assert compared == [8, 8]  # a constant output would keep eight lanes on one seed equal, and compared each round
    assert len({r.latents.sum().item() for r in results}) == 8


def test_the_suite_times_only_the_two_loops_on_the_free_model():
    data = suite.run_suite(
        {FREE_MODEL: xl256_free(torch.device("cpu"))},
        ("single", "batch8"),
        suite.RUNNERS,
        steps=3,
        grid_steps=(2,),
        progress=lambda _: None,
    )
    assert {(r["workload"], r["runner"]) for r in data["results"]} == {
        (w, r) for w in ("single", "batch8") for r in suite.FREE_RUNNERS
    }
    assert all(r["seconds"] > 0 and r["note"] == suite.FREE_NOTE for r in data["results"])
    assert FREE_MODEL not in data["flops"]  # nothing to count
    assert f"| {FREE_MODEL} | batch8 | 8 |" in bench_report.markdown(data)
