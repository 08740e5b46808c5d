"""A model axis through the app (gradio_client's /compare and /reproduce, the MCP tool), the CLI, and the cache of
extra models that keeps them within a memory budget."""

from __future__ import annotations

import os

import pytest
from conftest import make_bundle, serve
from sit_helpers import make_sit

from app import create_app
from dit_demo.app.context import AppContext
from dit_demo.app.mcp_tools import AgentTools
from dit_demo.app.model_cache import budget_from_env, weight_bytes
from dit_demo.app.model_slot import ModelSlot, allowed_models
from dit_demo.lab.outputs.pngmeta import read_parameters


@pytest.fixture(scope="module")
def sit_dir(tmp_path_factory, small_bundle_dir):
    return make_sit(tmp_path_factory.mktemp("sit-app-axis"), small_bundle_dir)


@pytest.fixture(scope="module")
def other_dit_dir(tmp_path_factory):
    names = {str(i): f"class {i}" for i in range(10)}
    return make_bundle(tmp_path_factory.mktemp("dit-b"), 10, names, seed=7)


@pytest.fixture(scope="module")
def axis_client(small_bundle_dir, sit_dir):
    from gradio_client import Client

    with serve(create_app(str(small_bundle_dir), "cpu", "fp32", offered=(str(sit_dir),))) as url:
        yield Client(url, verbose=False)


def test_compare_takes_models_as_its_last_argument_and_reproduce_restores_them(axis_client, small_bundle_dir, sit_dir):
    from gradio_client import handle_file

    dit, sit = str(small_bundle_dir), str(sit_dir)
    out = axis_client.predict(
        ["ddim", "sit_ode_euler"], "2,3", "2", "8: Bag", 4, 0, "", "", 1, ["exact"], "images", "linear", [dit, sit],
        api_name="/compare",
    )  # fmt: skip
    _, grid_path, zip_path, table, _, _, summary = out
    params = read_parameters(grid_path)
    assert (params["models"], params["families"], params["class_id"]) == ([dit, sit], ["dit", "sit"], 8)
    headers = table["headers"]
    assert headers[:2] == ["Model", "Sampler"]
    models_ = [row[0] for row in table["data"]]
    assert models_ == [dit.rstrip("/").rsplit("/", 1)[-1]] * 2 + ["sit"] * 2
    assert [row[headers.index("Reference")] for row in table["data"]] == ["", "reference"] * 2
    assert "ddim runs only on dit models: not on sit" in summary and "its own reference" in summary
    restored = axis_client.predict(handle_file(grid_path), api_name="/reproduce")
    assert restored[-12] == [dit, sit] and restored[-11] == ["ddim", "sit_ode_euler"]
    assert "on 2 models" in restored[-1]
    # the old positional call (no models) runs on the loaded model, as before
    plain = axis_client.predict(["ddim"], "2", "2", "8: Bag", 4, 0, "", api_name="/compare")
    assert "models" not in read_parameters(plain[1]) and plain[3]["headers"][0] == "Sampler"


def test_a_model_that_is_not_offered_or_fits_no_sampler_is_refused_in_one_sentence(
    axis_client, small_bundle_dir, sit_dir
):
    from gradio_client.exceptions import AppError

    args = ["ddim"], "2", "2", "8: Bag", 4, 0, "", "", 1, ["exact"], "images", "linear"
    with pytest.raises(AppError, match=r"Model '/nowhere' is not offered here; choose one of: "):
        axis_client.predict(*args, ["/nowhere"], api_name="/compare")
    with pytest.raises(AppError, match=r"None of the samplers asked for drives .*\(a sit model\)"):
        axis_client.predict(*args, [str(small_bundle_dir), str(sit_dir)], api_name="/compare")


def test_the_cache_drops_the_least_recently_used_extra_model_past_its_budget(small_bundle_dir, sit_dir, other_dit_dir):
    dit, sit, other = str(small_bundle_dir), str(sit_dir), str(other_dit_dir)
    slot = ModelSlot("cpu", "fp32", allowed_models(dit, sit, other, "/nowhere"), cache_bytes=0)
    slot.load(dit)
    slot.extras.budget_bytes = weight_bytes(slot.get()) + 1  # room for one extra model of this size
    models, dropped = slot.models_for([dit, sit])
    assert models[dit] is slot.copies() and dropped == [] and slot.extras.names() == [sit]
    kept_sit = models[sit]
    assert slot.models_for([sit])[0][sit] is kept_sit  # loaded once, then kept
    models, dropped = slot.models_for([other, dit])
    assert dropped == [sit] and slot.extras.names() == [other] and models[dit] is slot.copies()
    # a request that needs both extra models keeps both, past the budget, and drops nothing it uses
    models, dropped = slot.models_for([sit, other])
    assert dropped == [] and set(slot.extras.names()) == {sit, other} and models[sit] is not kept_sit
    with pytest.raises(ValueError, match="is not offered here"):
        slot.models_for([dit, "/elsewhere"])
    with pytest.raises((ValueError, FileNotFoundError), match="nowhere"):
        slot.models_for(["/nowhere"])
    assert set(slot.extras.names()) == {sit, other} and slot.name == dit  # a failed load loses nothing


def test_the_cache_budget_comes_from_its_environment_variable(monkeypatch):
    monkeypatch.setenv("DIT_MODEL_CACHE_GB", "1.5")
    assert budget_from_env() == int(1.5 * 2**30)
    monkeypatch.setenv("DIT_MODEL_CACHE_GB", "lots")
    with pytest.raises(ValueError, match="DIT_MODEL_CACHE_GB must be a number of gigabytes"):
        budget_from_env()


def test_the_agent_tool_and_the_command_line_take_models(small_bundle_dir, sit_dir, tmp_path, capsys):
    from dit_demo.cli.main import main

    dit, sit = str(small_bundle_dir), str(sit_dir)
    slot = ModelSlot("cpu", "fp32", allowed_models(dit, sit))
    slot.load(dit)
    tools = AgentTools(AppContext(slot, 0), None)
    grid, _, table, summary = tools.compare_samplers("Bag", ["ddim", "sit_ode_heun"], [2], [2.0], models=[dit, sit])
    assert read_parameters(grid.path)["models"] == [dit, sit] and "each model's own reference" in summary
    assert table.count("\n") == 2 + 1 and "sit_ode_heun runs only on sit models" in summary
    main(["compare", "--models", f"{dit},{sit}", "--samplers", "ddim,sit_ode_euler", "--steps", "2", "--class", "3",
          "--out", str(tmp_path / "c.png")])  # fmt: skip
    printed = capsys.readouterr().out
    assert "| SiT ODE Euler |" in printed and "ddim runs only on dit models: not on sit" in printed
    assert read_parameters(tmp_path / "c.png")["families"] == ["dit", "sit"]


def test_the_command_line_offers_more_models_from_flags_and_the_environment(monkeypatch):
    import app

    monkeypatch.delenv("DIT_OFFER", raising=False)
    assert app.parse_args(["--offer", "models/a", "--offer", "models/b"]).offer == ["models/a", "models/b"]
    monkeypatch.setenv("DIT_OFFER", "models/a, models/b")
    assert app.parse_args([]).offer == ["models/a", "models/b"]


def test_the_embedded_sit_is_offered_and_loads_by_name_once_its_weights_are_there(monkeypatch, tmp_path, sit_dir):
    from dit_demo.app import model_slot
    from dit_demo.runtime import loader

    missing = tmp_path / "fashion-mnist-sit"
    monkeypatch.setattr(model_slot, "EMBEDDED_SIT_MODEL", missing)
    monkeypatch.setitem(loader._EMBEDDED, "embedded-sit", (missing, "Train it with `python -m dit_demo.train sit`."))
    assert model_slot.EMBEDDED_SIT_NAME not in model_slot.allowed_models()
    with pytest.raises(FileNotFoundError, match="embedded model is missing from .*fashion-mnist-sit"):
        loader.load_bundle("embedded-sit", "cpu", "fp32")
    monkeypatch.setattr(model_slot, "EMBEDDED_SIT_MODEL", sit_dir)
    monkeypatch.setattr(loader, "EMBEDDED_SIT_MODEL", sit_dir)
    monkeypatch.setitem(loader._EMBEDDED, "embedded-sit", (sit_dir, "-"))
    offered = model_slot.allowed_models()
    assert offered[:2] == [model_slot.EMBEDDED_NAME, model_slot.EMBEDDED_SIT_NAME]  # the DiT stays the default
    slot = model_slot.ModelSlot("cpu", "fp32", offered)
    bundle = slot.load(model_slot.EMBEDDED_SIT_NAME)
    assert bundle.parameterization.family == "sit" and bundle.name == "embedded Fashion-MNIST SiT"


def test_the_shipped_models_keep_their_names_by_any_path(monkeypatch):
    """A sweep or a Compare row names the embedded model alike whether it was asked for by name or by folder."""
    from dit_demo.runtime import loader

    monkeypatch.chdir(loader.EMBEDDED_MODEL.parents[2])
    for name, folder in (("embedded-sit", loader.EMBEDDED_SIT_MODEL), (None, loader.EMBEDDED_MODEL)):
        by_name = loader.load_bundle(name, "cpu", "fp32").name
        relative = os.path.relpath(folder)
        assert not os.path.isabs(relative) and loader.load_bundle(relative, "cpu", "fp32").name == by_name
    assert by_name == "embedded Fashion-MNIST DiT"


def test_the_time_asked_before_a_model_axis_runs_prices_each_model_once_it_is_measured(small_bundle_dir, sit_dir):
    """What a ZeroGPU request asks for before it runs: the second model at the loaded model's cost until a
    request has measured it, then at its own; nothing is measured by the estimate itself."""
    from dit_demo.app.costs import CostCache
    from dit_demo.lab.compare.run import comparison_work
    from dit_demo.lab.specs.compare_spec import ComparisonSpec
    from dit_demo.runtime.budget import CostModel

    dit, sit = str(small_bundle_dir), str(sit_dir)
    slot = ModelSlot("cpu", "fp32", allowed_models(dit, sit))
    slot.load(dit)
    cheap, slow = CostModel(0.001, 0.0001, 0.0), CostModel(1.0, 0.1, 0.0)
    ctx = AppContext(slot, 0, CostCache(lambda b: cheap if b is slot.get() else slow))
    copies, _ = slot.models_for([dit, sit])
    spec = ComparisonSpec.build("ddim,sit_ode_euler", "2,3", "3", cfg_text="2", models=(dit, sit),
                                families={dit: "dit", sit: "sit"})  # fmt: skip
    (_, dit_work), (sit_model, sit_work) = comparison_work(copies, spec)
    assert ctx.estimate_groups(comparison_work(copies, spec)) is None  # the loaded model is not measured yet
    ctx.costs.get(slot.get())
    overhead = ctx.costs.overhead
    assert ctx.estimate_groups(comparison_work(copies, spec)) == pytest.approx(
        overhead * (cheap.estimate(dit_work) + cheap.estimate(sit_work))
    )
    ctx.costs.price(sit_model)  # what the SiT's first request does
    assert ctx.estimate_groups(comparison_work(copies, spec)) == pytest.approx(
        overhead * (cheap.estimate(dit_work) + slow.estimate(sit_work))
    )
