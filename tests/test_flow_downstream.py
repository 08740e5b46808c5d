"""A flow model everywhere a DiT goes: the app (Generate, Compare, Reproduce through gradio_client), the bench, a
sweep and its metrics, each on a random SiT imported as SiT's train.py saves it."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import serve
from sit_helpers import HEADS, make_sit

from app import create_app
from dit_demo.lab.bench.cells import format_bench, run_bench
from dit_demo.lab.interchange.dit_import import import_checkpoint
from dit_demo.lab.outputs.pngmeta import read_parameters
from dit_demo.runtime.loader import load_bundle


@pytest.fixture(scope="module")
def sit_dir(tmp_path_factory, small_bundle_dir):
    return make_sit(tmp_path_factory.mktemp("sit-app"), small_bundle_dir)


@pytest.fixture(scope="module")
def sit_client(sit_dir):
    from gradio_client import Client

    with serve(create_app(str(sit_dir), "cpu", "fp32")) as url:
        yield Client(url, verbose=False)


def test_the_app_generates_compares_and_reproduces_with_a_sit(sit_client):
    from gradio_client import handle_file

    _, gallery, summary = sit_client.predict(["8"], "sit_ode_heun", 3, 2.0, 0, 4, 1, api_name="/generate")
    params = read_parameters(gallery[0]["image"])
    assert (params["sampler"], params["steps"], params["family"]) == ("sit_ode_heun", 3, "sit")
    assert "NFE" in summary and "sit_ode_heun 3 steps" in gallery[0]["caption"]
    out = sit_client.predict(["sit_ode_euler", "sit_ode_heun"], "2,3", "2", "4", 5, 0, "", api_name="/compare")
    _, grid_path, _, table, _, _, _ = out
    assert read_parameters(grid_path)["family"] == "sit"
    assert [row[table["headers"].index("NFE")] for row in table["data"]] == [2, 3, 4, 6]
    restored = sit_client.predict(handle_file(grid_path), api_name="/reproduce")
    assert restored[-11][:2] == ["sit_ode_euler", "sit_ode_heun"] and "Restored a comparison" in restored[-1]


def test_a_sit_comparison_runs_on_every_axis(sit_client):
    # samplers with a variant, two steps, two cfg scales, two seeds, both presets (fast: int8 on a CPU)
    out = sit_client.predict(
        ["sit_ode_euler"], "2,3", "1,2", "4", 3, 0, "", "sit_sde_euler[diffusion=constant]", 2, ["exact", "fast"],
        "images", api_name="/compare",
    )  # fmt: skip
    _, grid_path, _, table, _, _, summary = out
    shown = read_parameters(grid_path)
    assert shown["samplers"] == ["sit_ode_euler", "sit_sde_euler[diffusion=constant]"] and shown["family"] == "sit"
    assert (shown["cfg_scales"], shown["seeds"], shown["presets"]) == ([1.0, 2.0], 2, ["exact", "fast"])
    assert len(table["data"]) == 2 * 2 * 2 * 2 and "mean (and sd) over 2 seeds" in summary


def test_the_app_refuses_a_dit_sampler_for_a_sit_naming_the_family(sit_client):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match=r"'ddim' drives dit models; the loaded model is a sit"):
        sit_client.predict(["ddim"], "3", "2", "4", 5, 0, "", api_name="/compare")


def test_the_bench_times_a_sit_alone_and_keeps_its_guidance(sit_dir):
    bundle = load_bundle(str(sit_dir), "cpu", "fp32")
    result = run_bench(bundle, ["sit_ode_euler", "sit_ode_heun"], [2], cfg=2.0)
    assert result["cfg"] == 2.0 and "DiTPipeline samples DiT models only" in result["note"]
    assert [r["nfe"] for r in result["rows"]] == [2, 4] and all(math.isnan(r["pipeline_s"]) for r in result["rows"])
    assert "| sit_ode_heun | 2 | 4 | n/a" in format_bench(result)


def test_a_sweep_of_a_sit_measures_its_cells(sit_dir, tmp_path):
    from dit_demo.cli.sweep import main as sweep_main

    sweep_main(
        ["--model", str(sit_dir), "--samplers", "sit_ode_euler", "--steps", "2", "--num-samples", "10",
         "--shard-size", "10", "--out", str(tmp_path / "sweep"), "--no-metrics"]
    )  # fmt: skip
    written = list((tmp_path / "sweep").rglob("*"))
    assert any("sit_ode_euler_2" in p.name for p in written), [p.name for p in written]


def test_the_bench_counts_what_an_adaptive_solver_took_not_its_cap(sit_dir):
    from dit_demo.runtime.engine import sample
    from dit_demo.runtime.request import Lane

    bundle = load_bundle(str(sit_dir), "cpu", "fp32")
    (row,) = run_bench(bundle, ["sit_ode_dopri5"], [5], cfg=1.0)["rows"]
    taken = sample(bundle, [Lane("sit_ode_dopri5", 5, 0, 0, 1.0)])[0].nfe
    assert row["nfe"] == taken < 1000  # 1000: the solver's cap, which the budget counts


def test_the_app_serves_a_repa_with_its_guidance_interval(tmp_path, small_bundle_dir):
    from gradio_client import Client
    from repa_reference import repa_checkpoint, repa_state

    args = {"num_classes": 10, "resolution": 16, "encoder_depth": 1, "qk_norm": True}
    args |= {"path_type": "linear", "prediction": "v", "proj_coeff": 0.5, "enc_type": "dinov2-vit-b"}
    torch.save(repa_checkpoint(repa_state(2, 64, HEADS, 2, 11, 8, qk_norm=True, seed=4), **args), tmp_path / "r.pt")
    folder = import_checkpoint(tmp_path / "r.pt", tmp_path / "repa", heads=HEADS, vae=str(small_bundle_dir / "vae"))
    with serve(create_app(str(folder), "cpu", "fp32")) as url:
        client = Client(url, verbose=False)
        sampler = "repa_euler[heun=true,guidance_high=0.7]"
        _, gallery, _ = client.predict(["2"], sampler, 4, 1.8, 0, 1, 1, api_name="/generate")
    params = read_parameters(gallery[0]["image"])
    assert (params["sampler"], params["family"], params["steps"]) == (sampler, "repa", 4)


def test_a_sweep_cell_of_an_adaptive_solver_reports_the_mean_nfe_its_samples_took(sit_dir, tmp_path):
    import json

    from dit_demo.cli.sweep import main as sweep_main
    from dit_demo.lab.sweep.run import sample_class_and_seed
    from dit_demo.runtime.engine import sample
    from dit_demo.runtime.request import Lane

    sweep_main(
        ["--model", str(sit_dir), "--samplers", "sit_ode_dopri5", "--steps", "5", "--num-samples", "4",
         "--shard-size", "2", "--cfg", "1", "--out", str(tmp_path / "sweep"), "--no-metrics"]
    )  # fmt: skip
    (cell,) = json.loads((tmp_path / "sweep" / "sweep.json").read_text())["cells"]
    bundle = load_bundle(str(sit_dir), "cpu", "fp32")
    pairs = [sample_class_and_seed(i, bundle.num_classes, 0) for i in range(4)]
    taken = [sample(bundle, [Lane("sit_ode_dopri5", 5, c, s, 1.0)])[0].nfe for c, s in pairs]
    assert cell["nfe"] == pytest.approx(sum(taken) / 4) and cell["nfe"] < 1000
