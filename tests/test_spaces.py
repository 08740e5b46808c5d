"""Hugging Face Spaces and ZeroGPU: the app serves as a Space, each model event asks ZeroGPU for a GPU slot
sized from its own request, and nothing on ZeroGPU compiles or asks CUDA anything outside a request."""

from __future__ import annotations

import sys
import types

import pytest
import spaces  # noqa: F401  (a requirement: the Space installs it; these tests need it importable)

import app
from dit_demo.app import compare_tab, generate_tab, zerogpu
from dit_demo.app.context import AppContext
from dit_demo.app.model_slot import ModelSlot, allowed_models
from dit_demo.runtime.budget import CostModel
from dit_demo.runtime.devices import has_native_bf16
from dit_demo.runtime.levers import Levers, check_levers, describe_preset, preset

ZEROGPU_ENV = {"SPACES_ZERO_GPU": "true", "SPACES_ZERO_DEVICE_API_URL": "http://127.0.0.1:9/"}


def test_app_starts_and_serves_as_a_space(monkeypatch, tmp_path):
    import huggingface_hub.constants
    from conftest import serve
    from gradio_client import Client

    monkeypatch.setenv("SPACE_ID", "someone/dit-sampler-lab")
    monkeypatch.delenv("DIT_MODEL", raising=False)
    # no hub here: the Space's model (DiT-XL/2-256) cannot load, so the app says so and serves the embedded one
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    args = app.parse_args([])
    assert args.model == "facebook/DiT-XL-2-256" and args.host == "0.0.0.0"
    with serve(app.create_app(args.model, "cpu", "fp32", args.max_request_seconds)) as url:
        _, gallery, summary = Client(url, verbose=False).predict(["Bag"], "ddim", 3, 1.5, 0, 0, 1, api_name="/generate")
    assert len(gallery) == 1 and "1 image(s), 3 NFE each" in summary


@pytest.fixture
def fake_spaces(monkeypatch):
    """A stand-in for ``spaces`` that records what each wrapped event would ask ZeroGPU for."""
    asked = {}

    def gpu(handler, duration):
        asked[handler.__name__] = duration
        return handler

    monkeypatch.setitem(sys.modules, "spaces", types.SimpleNamespace(GPU=gpu))
    monkeypatch.delenv(zerogpu.CAP_ENV, raising=False)
    return asked


@pytest.fixture
def context(small_bundle_dir) -> AppContext:
    slot = ModelSlot("cpu", "fp32", allowed_models(str(small_bundle_dir)))
    slot.load(str(small_bundle_dir))
    return AppContext(slot, max_request_seconds=60)


def _known_cost(ctx: AppContext) -> None:
    # 10 ms per call, 1 ms per row, 10 ms per decoded image, no server overhead: easy to add up by hand
    ctx.costs.overhead = 1.0
    ctx.costs.remember(ctx.slot.get(), CostModel(per_call=0.01, per_row=0.001, per_decode=0.01))


def test_generate_asks_for_its_own_estimate_within_floor_and_cap(fake_spaces, context, monkeypatch):
    generate_tab._on_generate(context)
    duration = fake_spaces["on_generate"]
    small = ("Bag", "ddim", 50, 4.0, 0, 0, 1)  # one guided image: 50 calls, 100 rows, 1 decode = 0.61 s
    big = (["Bag", "Coat", "Shirt", "Dress"], "heun", 250, 4.0, 0, 0, 16)  # 64 guided lanes, 499 NFE each
    assert duration(*small) == zerogpu.gpu_cap()  # not measured yet: the cap, never a slot too short
    _known_cost(context)
    assert duration(*small) == zerogpu.FLOOR_SECONDS
    # 499 rounds of 128 rows: 998 calls (64 rows a call) = 9.98 s, 63,872 rows = 63.872 s, 64 decodes = 0.64 s
    assert duration(*big) == int(1.5 * (9.98 + 63.872 + 0.64) + 1) == 112
    monkeypatch.setenv(zerogpu.CAP_ENV, "90")  # the Space's own cap wins
    assert duration(*big) == 90
    assert duration("Bag", "ddim", "many", 4.0, 0, 0, 1) == zerogpu.FLOOR_SECONDS  # refused at once anyway


def test_compare_asks_for_its_own_estimate(fake_spaces, context):
    compare_tab._on_compare(context)
    duration = fake_spaces["on_compare"]
    _known_cost(context)
    assert duration(["ddim", "euler"], "10,50", "4", "Bag", 0, 0, "") == zerogpu.FLOOR_SECONDS  # under a second
    # ddim and euler x 500, 1000 steps at cfg 4: 1000 rounds of at most 8 rows (1000 calls, 10 s),
    # 3000 NFE x 2 rows (6 s), 4 decodes (0.04 s)
    assert duration(["ddim", "euler"], "500,1000", "4", "Bag", 0, 0, "") == int(1.5 * 16.04 + 1) == 25


def test_on_zerogpu_fast_has_no_compile_and_nothing_touches_cuda_at_start(monkeypatch, small_bundle_dir):
    for name, value in ZEROGPU_ENV.items():
        monkeypatch.setenv(name, value)
    fast = preset("fast", "cuda")
    assert not fast.compile and fast.dtype == "bf16" and has_native_bf16("cuda")
    assert "ZeroGPU does not support torch.compile" in describe_preset("fast", "cuda")
    with pytest.raises(ValueError, match="ZeroGPU"):
        check_levers(Levers(compile=True), "cpu")
    slot = ModelSlot("cpu", "fp32", allowed_models(str(small_bundle_dir)))
    slot.load(str(small_bundle_dir))
    ctx = AppContext(slot, max_request_seconds=60)
    ctx.measure_now()  # at start-up: no forward may run outside a GPU call
    assert ctx.costs.known(slot.get()) is None
    assert ctx.budget() is not None and ctx.costs.known(slot.get()) is not None  # inside a request it measures


def test_off_zerogpu_a_gpu_fast_preset_is_compiled(monkeypatch):
    monkeypatch.delenv("SPACES_ZERO_GPU", raising=False)
    assert preset("fast", "cuda").compile and not preset("fast", "cpu").compile
    assert "compiled transformer" in describe_preset("fast", "cuda") and "ZeroGPU" not in describe_preset(
        "fast", "cuda"
    )
