"""Speed levers: presets, flags over presets, the int8 and dtype model levers, and the fast preset's tolerance."""

from __future__ import annotations

import argparse
from dataclasses import replace

import pytest
import torch

from dit_demo.cli.lever_flags import add_lever_args, levers_from_args
from dit_demo.lab.quality.evaluate import classify, to_classifier_input
from dit_demo.runtime import int8 as int8_module
from dit_demo.runtime import levers as levers_module
from dit_demo.runtime.diffusers_adapters import erf_gelu
from dit_demo.runtime.engine import sample
from dit_demo.runtime.levers import Levers, check_levers, preset, with_model_levers
from dit_demo.runtime.request import Lane
from dit_demo.training.classifier import FashionClassifier


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_lever_args(parser)
    return parser.parse_args(list(argv))


def test_exact_preset_takes_no_shortcut_and_leaves_the_model_alone(small_bundle):
    assert preset("exact") == Levers()
    assert with_model_levers(small_bundle, Levers()) is small_bundle


def test_flags_override_the_preset_and_are_checked():
    fast = levers_from_args(_args("--preset", "fast"), "cpu")
    assert fast == check_levers(preset("fast"), "cpu")
    plain = levers_from_args(
        _args("--preset", "fast", "--quantize", "none", "--cache-threshold", "0", "--dtype", "auto"), "cpu"
    )
    assert plain == Levers()
    chosen = levers_from_args(_args("--guidance-interval", "0.28,inf", "--cache-threshold", "0.1"), "cpu")
    assert chosen == Levers(guidance_interval=(0.28, float("inf")), cache_threshold=0.1)


@pytest.mark.parametrize(
    ("levers", "message"),
    [
        (Levers(quantize="int4"), "Unknown quantization 'int4'; choose one of int8"),
        (Levers(dtype="fp12"), "Unknown dtype 'fp12'; allowed: auto"),
        (Levers(guidance_interval=(3.0, 1.0)), "needs lo < hi"),
        (Levers(cache_threshold=-0.5), "Cache threshold must be a finite number between 0 and 1"),
    ],
)
def test_bad_levers_are_explained(levers, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        check_levers(levers, "cpu")


def test_int8_is_refused_off_the_cpu_and_left_out_of_fast_without_kernels(monkeypatch):
    with pytest.raises(ValueError, match="int8 quantization runs on CPUs only"):
        check_levers(Levers(quantize="int8"), "meta")
    monkeypatch.setattr(levers_module, "has_int8_kernels", lambda: False)
    assert preset("fast").quantize is None


def test_int8_leaves_small_layers_in_fp32_and_takes_large_ones(embedded_bundle):
    # the embedded model's layers are all 128 wide: int8 would slow every one of them, so none changes
    kept = with_model_levers(embedded_bundle, Levers(quantize="int8")).transformer
    assert not any(isinstance(m, torch.ao.nn.quantized.dynamic.Linear) for m in kept.modules())
    before, after = embedded_bundle.transformer.state_dict(), kept.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)  # no q/k/v fusion
    mixed = int8_module.quantize_int8(torch.nn.Sequential(torch.nn.Linear(1152, 1152), torch.nn.Linear(1152, 32)))
    assert isinstance(mixed[0], torch.ao.nn.quantized.dynamic.Linear) and type(mixed[1]) is torch.nn.Linear


@pytest.mark.usefixtures("every_layer_int8")
def test_int8_quantizes_every_linear_layer_of_a_copy(small_bundle):
    quantized = with_model_levers(small_bundle, Levers(quantize="int8"))
    int8 = [m for m in quantized.transformer.modules() if isinstance(m, torch.ao.nn.quantized.dynamic.Linear)]
    assert not any(isinstance(m, torch.nn.Linear) for m in quantized.transformer.modules())  # adaLN's included
    assert int8 and all(m.weight().qscheme() == torch.per_channel_affine for m in int8)
    assert any(isinstance(m, torch.nn.Linear) for m in small_bundle.transformer.modules())  # the original stays
    assert (
        quantized.dtype == torch.float32
        and quantized.extras["levers"] == "int8 linear layers of 512x512 weights or more"
    )


@pytest.mark.usefixtures("every_layer_int8")
def test_int8_runs_q_k_v_as_one_layer_with_the_same_result(small_bundle):
    import copy

    def int8(**rewrites):
        return int8_module.quantize_int8(copy.deepcopy(small_bundle.transformer), exact_gelu=False, **rewrites)

    fused, apart = int8(), int8(fuse_qkv=False)
    attention = fused.transformer_blocks[0].attn1
    assert hasattr(attention, "to_qkv") and not hasattr(attention, "to_q")
    x, t, y = torch.randn(3, 4, 8, 8), torch.tensor([999.0, 500.0, 3.0]), torch.tensor([1, 2, 10])
    with torch.inference_mode():  # per-channel weight scales and one activation scale: the same numbers
        assert torch.equal(fused(x, timestep=t, class_labels=y).sample, apart(x, timestep=t, class_labels=y).sample)


@pytest.mark.usefixtures("every_layer_int8")
def test_int8_packs_its_weights_for_onednn_and_leaves_the_global_engine_alone(small_bundle, monkeypatch):
    engines = torch.backends.quantized.supported_engines
    assert int8_module.INT8_ENGINE == "onednn" and "onednn" in engines and "x86" in engines  # this CPU build
    before = torch.backends.quantized.engine
    lever = with_model_levers(small_bundle, Levers(quantize="int8")).transformer
    assert torch.backends.quantized.engine == before
    monkeypatch.setattr(int8_module, "INT8_ENGINE", "x86")
    x86 = with_model_levers(small_bundle, Levers(quantize="int8")).transformer
    x, t, y = torch.randn(3, 4, 8, 8), torch.tensor([999.0, 500.0, 3.0]), torch.tensor([1, 2, 10])
    with torch.inference_mode():
        ours, theirs = (m(x, timestep=t, class_labels=y).sample for m in (lever, x86))
    # packing under x86 inside the lever would give x86's numbers; oneDNN rounds its own way
    assert not torch.equal(ours, theirs)


@pytest.mark.usefixtures("every_layer_int8")
def test_int8_computes_gelu_by_erf_which_moves_fp32_outputs_by_rounding_only(small_bundle):
    import copy

    from diffusers.models.activations import GELU

    lever = with_model_levers(small_bundle, Levers(quantize="int8")).transformer
    assert {m.approximate for m in lever.modules() if isinstance(m, GELU)} == {"none"}
    erf = copy.deepcopy(small_bundle.transformer)
    erf_gelu(erf)
    assert {m.approximate for m in small_bundle.transformer.modules() if isinstance(m, GELU)} == {"tanh"}
    x, t, y = torch.randn(3, 4, 8, 8), torch.tensor([999.0, 500.0, 3.0]), torch.tensor([1, 2, 10])
    with torch.inference_mode():
        tanh_out, erf_out = (m(x, timestep=t, class_labels=y).sample for m in (small_bundle.transformer, erf))
    assert not torch.equal(erf_out, tanh_out)  # the switch ran
    # the two GELUs differ by < 5e-4: in fp32 the output moves by 1e-4 of its size (int8 itself: 1e-2)
    assert (erf_out - tanh_out).norm() < 1e-3 * tanh_out.norm()


def test_bf16_converts_a_copy_of_transformer_and_vae(small_bundle):
    half = with_model_levers(small_bundle, Levers(dtype="bf16"))
    assert half.dtype == torch.bfloat16 and half.vae.dtype == torch.bfloat16
    assert small_bundle.transformer.dtype == torch.float32 and small_bundle.vae.dtype == torch.float32
    lanes = [Lane("dpmpp_2m", 6, 1, 0, 2.0)]
    exact, fast = sample(small_bundle, lanes)[0].latents, sample(half, lanes)[0].latents
    assert not torch.equal(exact, fast)  # the lever ran
    assert (fast - exact).norm() < 0.1 * exact.norm()


def test_fast_preset_stays_within_its_tolerance_of_exact_on_the_embedded_model(embedded_bundle):
    """The evaluator's bar (README, "Speed levers") needs 1000 samples; per image, on 50: the fast
    preset's latents lie within 10% (relative RMS, mean over images) of exact's, and the classifier
    gives the same class for at least 90% of them."""
    fast = preset("fast")
    assert fast != Levers()  # this CPU or any other: at least the cache is on
    lanes = [Lane("dpmpp_2m", 25, c, s, 1.5) for c in range(10) for s in range(5)]
    exact = torch.stack([r.latents for r in sample(embedded_bundle, lanes)])
    model = with_model_levers(embedded_bundle, fast)
    quick = torch.stack([r.latents for r in sample(model, [replace(lane, levers=fast.lane) for lane in lanes])])
    relative = (quick - exact).flatten(1).norm(dim=1) / exact.flatten(1).norm(dim=1)
    assert 0 < relative.mean() < 0.1
    classifier = FashionClassifier.load(embedded_bundle.extras["classifier_dir"])
    same_class = (
        classify(classifier, to_classifier_input(embedded_bundle, exact))[0]
        == classify(classifier, to_classifier_input(model, quick))[0]
    )
    assert same_class.float().mean() >= 0.9
