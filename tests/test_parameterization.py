"""The model's parameterization answers what the sampling code used to derive itself, and samplers only drive
the model families they declare."""

from __future__ import annotations

import dataclasses
import json
import math
import shutil

import pytest
import torch

import samplers
from dit_demo.app.context import sampler_choices
from dit_demo.app.form_rules import recommended_steps
from dit_demo.lab.specs.compare_spec import ComparisonSpec
from dit_demo.lab.specs.defaults import Defaults
from dit_demo.lab.specs.grammar import parse_names
from dit_demo.runtime.checkpoints import ModelLoadError
from dit_demo.runtime.loader import load_bundle
from dit_demo.runtime.parameterization import EpsilonVP
from dit_demo.runtime.request import Lane, check_lanes


def alpha_bar(t: float) -> float:
    """The conftest bundles' schedule written out: linear betas 1e-4..0.02 over 1000 steps, interpolated
    (in float32, as diffusers keeps alpha-bar: near t = 0, 1 - alpha-bar is all rounding in float32)."""
    cumprod = torch.cumprod(1 - torch.linspace(1e-4, 0.02, 1000, dtype=torch.float32), 0).double().numpy()
    lo = math.floor(t)
    hi = min(lo + 1, 999)
    return cumprod[lo] + (t - lo) * (cumprod[hi] - cumprod[lo])


def test_dit_bundles_report_family_dit(small_bundle, imagenet_bundle):
    for bundle in (small_bundle, imagenet_bundle):
        p = bundle.parameterization
        assert isinstance(p, EpsilonVP) and p.family == "dit" and Defaults.for_bundle(bundle).family == "dit"
        assert p.learned_variance == (bundle.transformer.config.out_channels == 2 * bundle.latent_channels)


@pytest.mark.parametrize("t", [999.0, 500.0, 123.4, 3.0, 0.5])
def test_sigma_and_x0_are_the_variance_preserving_formulas(small_bundle, t):
    p = small_bundle.parameterization
    ab = alpha_bar(t)
    assert p.model_time(t) == t
    assert p.alpha_bar_at(t) == pytest.approx(ab, rel=1e-5)
    assert p.sigma_at(t) == pytest.approx(math.sqrt((1 - ab) / ab), rel=1e-5)
    gen = torch.Generator().manual_seed(0)
    c = small_bundle.latent_channels
    x = torch.randn(2, *small_bundle.latent_shape, generator=gen, dtype=torch.float64)
    out = torch.randn(2, 2 * c, *small_bundle.latent_shape[1:], generator=gen, dtype=torch.float64)
    expected = (x - math.sqrt(1 - ab) * out[:, :c]) / math.sqrt(ab)  # eps is the first C channels
    torch.testing.assert_close(p.x0_from_output(x, t, out), expected, rtol=1e-4, atol=1e-4)


def test_final_step_keeps_x0_for_stochastic_samplers_only(small_bundle):
    p = small_bundle.parameterization
    assert p.final_step_takes_x0(samplers.get("ddpm")) and p.final_step_takes_x0(samplers.get("euler_ancestral"))
    assert not p.final_step_takes_x0(samplers.get("ddim")) and not p.final_step_takes_x0(samplers.get("heun"))


def test_model_index_family_is_read_and_an_unknown_one_refused(small_bundle_dir, tmp_path):
    folder = shutil.copytree(small_bundle_dir, tmp_path / "model")
    index = json.loads((folder / "model_index.json").read_text())
    for family, works in (("dit", True), ("edm", False)):
        (folder / "model_index.json").write_text(json.dumps({**index, "family": family}))
        if works:
            assert load_bundle(folder, device="cpu", dtype="fp32").parameterization.family == "dit"
        else:
            with pytest.raises(ModelLoadError, match="model family 'edm'.*knows dit, sit"):
                load_bundle(folder, device="cpu", dtype="fp32")


@pytest.fixture
def flow_sampler(registered):
    """A sampler of another model family (a flow model's), registered for one test."""
    return registered(dataclasses.replace(samplers.get("euler"), name="test_flow_euler", families=("sit",)))


REFUSAL = r"'test_flow_euler' drives sit models; the loaded model is a dit \(discrete noise-prediction\) model: choose"


def test_a_sampler_of_another_family_is_refused_by_the_request_check(small_bundle, flow_sampler):
    with pytest.raises(ValueError, match=REFUSAL):
        check_lanes(small_bundle, [Lane(flow_sampler, 4, 0)])
    assert len(check_lanes(small_bundle, [Lane("euler", 4, 0)])) == 1


def test_a_sampler_of_another_family_is_refused_by_the_comparison_grammar(small_bundle, flow_sampler):
    family = small_bundle.parameterization.family
    with pytest.raises(ValueError, match=REFUSAL):
        ComparisonSpec.build(f"ddim,{flow_sampler}", "4", 0, cfg_text="4", family=family)
    with pytest.raises(ValueError, match=REFUSAL):
        ComparisonSpec.build("ddim", "4", 0, reference=f"{flow_sampler}@8", cfg_text="4", family=family)
    assert ComparisonSpec.build("ddim,euler", "4", 0, cfg_text="4", family=family).samplers == ("ddim", "euler")
    assert parse_names(flow_sampler, "sit") == [flow_sampler]


def test_pickers_offer_only_the_samplers_of_the_loaded_models_family(small_bundle, flow_sampler):
    offered = [name for _, name in sampler_choices(small_bundle.parameterization.family)]
    assert flow_sampler not in offered
    sit_built_ins = [
        name for name in samplers.names() if name in samplers.BUILT_IN_NAMES and "sit" in samplers.get(name).families
    ]
    assert {"sit_ode_euler", "sit_ode_heun", "sit_sde_euler", "sit_sde_heun"} <= set(sit_built_ins)
    flow_built_ins = {name for name in samplers.BUILT_IN_NAMES if "dit" not in samplers.get(name).families}
    assert set(samplers.BUILT_IN_NAMES) - flow_built_ins <= set(offered) and not flow_built_ins & set(offered)
    assert [name for _, name in sampler_choices("sit")] == [*sit_built_ins, flow_sampler]
    assert flow_sampler not in recommended_steps(Defaults.for_bundle(small_bundle))


def test_families_must_be_a_tuple_of_names():
    with pytest.raises(TypeError, match="families is a tuple"):
        samplers.register(dataclasses.replace(samplers.get("ddim"), name="test_bad_families", families="dit"))
