"""A model axis in a comparison: a DiT and a SiT on the same class and noise, each sampler on the models it drives."""

from __future__ import annotations

import pytest
import torch
from sit_helpers import make_sit

from dit_demo.lab.compare.run import run_comparison
from dit_demo.lab.outputs.pngmeta import read_parameters, save_png
from dit_demo.lab.outputs.records import ComparisonRecord, record_from_dict
from dit_demo.lab.specs.compare_spec import ComparisonSpec
from dit_demo.runtime.loader import load_bundle


@pytest.fixture(scope="module")
def sit_dir(tmp_path_factory, small_bundle_dir):
    return make_sit(tmp_path_factory.mktemp("sit-axis"), small_bundle_dir)


@pytest.fixture(scope="module")
def sit_bundle(sit_dir):
    return load_bundle(str(sit_dir), "cpu", "fp32")


@pytest.fixture(scope="module")
def two(small_bundle_dir, sit_dir):
    """The two models' names, and their families, as the app would record them."""
    dit, sit = str(small_bundle_dir), str(sit_dir)
    return (dit, sit), {dit: "dit", sit: "sit"}


def axis_spec(two, samplers="ddim,dpmpp_2m,sit_ode_euler,sit_ode_heun", **kwargs):
    names, families = two
    return ComparisonSpec.build(samplers, "2,3", "8", seed=4, cfg_text="2", models=names, families=families, **kwargs)


def test_keys_put_each_sampler_on_the_models_it_drives_and_say_what_is_left_out(two):
    (dit, sit), _ = two
    spec = axis_spec(two)
    rows = [(k.model, k.sampler) for k in spec.keys() if k.steps == 2]
    assert rows == [(dit, "ddim"), (dit, "dpmpp_2m"), (sit, "sit_ode_euler"), (sit, "sit_ode_heun")]
    assert len(spec.keys()) == 4 * 2
    assert spec.key_name(spec.keys()[0]) == f"ddim 2 {dit.rstrip('/').rsplit('/', 1)[-1]}"


def test_a_model_that_no_sampler_drives_is_refused_in_one_sentence(two):
    with pytest.raises(ValueError, match=r"^None of the samplers asked for drives .*sit \(a sit model\); add one of: "):
        axis_spec(two, samplers="ddim,euler")
    with pytest.raises(ValueError, match="family of model"):
        ComparisonSpec.build("ddim", "2", "8", models=two[0], families={})


def test_each_model_runs_as_it_would_alone_against_its_own_reference(two, small_bundle, sit_bundle):
    (dit, sit), _ = two
    comparison = run_comparison({dit: small_bundle, sit: sit_bundle}, axis_spec(two))
    assert [(r.model, r.sampler, r.steps) for r in comparison.reference] == [
        (dit, "ddim", 3),
        (sit, "sit_ode_euler", 3),
    ]
    assert [c.model for c in comparison.cells] == [dit] * 4 + [sit] * 4
    line = comparison.left_out()
    assert "ddim and dpmpp_2m run only on dit models: not on sit" in line
    assert "sit_ode_euler and sit_ode_heun run only on sit models" in line
    for bundle, name, samplers_ in (
        (small_bundle, dit, "ddim,dpmpp_2m"),
        (sit_bundle, sit, "sit_ode_euler,sit_ode_heun"),
    ):
        alone = run_comparison(bundle, ComparisonSpec.build(samplers_, "2,3", "8", seed=4, cfg_text="2"))
        mine = [c for c in comparison.cells if c.model == name]
        # the same seed gives the same noise and the same batch: the same latents, and the same distances
        assert all(torch.equal(a.latents, b.latents) for a, b in zip(mine, alone.cells))
        assert [c.distance for c in mine] == [c.distance for c in alone.cells]
        assert [(c.record.model, c.record.family, c.record.model_hash) for c in mine] == [
            (bundle.name, bundle.parameterization.family, bundle.extras["weights"])
        ] * 4
    table = comparison.table()
    assert list(table[0])[:2] == ["Model", "Sampler"] and len(table) == 8
    assert sum(row["Reference"] == "reference" for row in table) == 2


def test_the_spec_goes_through_the_png_and_a_spec_without_models_writes_none(two, tmp_path):
    spec = axis_spec(two, reference="dpmpp_2m@3")
    path = save_png(torch_free_image(), tmp_path / "grid.png", ComparisonRecord("x", spec).to_dict())
    params = read_parameters(path)
    assert (params["models"], params["families"]) == (list(two[0]), ["dit", "sit"])
    assert record_from_dict(params).spec == spec
    plain = ComparisonSpec.build("ddim", "2", "8", cfg_text="2")
    assert "models" not in plain.to_dict() and "families" not in plain.to_dict()
    assert ComparisonSpec.from_dict(plain.to_dict()) == plain


def test_a_reference_asked_for_applies_to_the_models_its_sampler_drives(two, small_bundle, sit_bundle):
    (dit, sit), _ = two
    spec = axis_spec(two, reference="dpmpp_2m@3")
    comparison = run_comparison({dit: small_bundle, sit: sit_bundle}, spec)
    assert [(r.model, r.sampler) for r in comparison.reference] == [(dit, "dpmpp_2m"), (sit, "sit_ode_euler")]


def test_a_model_of_another_family_than_recorded_is_refused(two, small_bundle):
    (dit, sit), _ = two
    with pytest.raises(ValueError, match=r"is a dit model; this comparison was made with a sit model"):
        run_comparison({dit: small_bundle, sit: small_bundle}, axis_spec(two))


def torch_free_image():
    from PIL import Image

    return Image.new("RGB", (8, 8))


def test_each_model_is_priced_at_its_own_cost_and_groups_run_one_after_another(two, small_bundle, sit_bundle):
    """A budget prices the SiT's lanes at the SiT's cost, not the loaded DiT's, and counts each model's
    lock-step rounds after the other's; a second model too slow for the limit is refused before sampling."""
    from dit_demo.app.costs import CostCache
    from dit_demo.lab.compare.run import comparison_work
    from dit_demo.runtime.budget import CostModel

    (dit, sit), _ = two
    spec, models = axis_spec(two), {dit: small_bundle, sit: sit_bundle}
    cheap, slow = CostModel(0.001, 0.0001, 0.0), CostModel(1.0, 0.1, 0.0)
    measured = []
    cache = CostCache(lambda b: measured.append(b) or (slow if b is sit_bundle else cheap))
    groups = comparison_work(models, spec)
    assert [base for base, _ in groups] == [small_bundle, sit_bundle]
    budget = cache.budget(small_bundle, 0)  # no limit: every estimate is kept, none refused
    assert cache.price(sit_bundle, measure=False) is None  # not measured before its first request
    run_comparison(models, spec, budget=budget)
    overhead = cache.overhead
    expected = overhead * (cheap.estimate(groups[0][1]) + slow.estimate(groups[1][1]))
    assert budget.estimated == pytest.approx(expected)
    assert measured == [small_bundle, sit_bundle]  # each model measured once
    assert cache.price(sit_bundle, measure=False) is not None and cache.price(small_bundle) is None
    assert len(measured) == 2
    limit = (expected + overhead * cheap.estimate(groups[0][1] + groups[1][1])) / 2  # over the SiT's cost only
    with pytest.raises(ValueError, match="would take about"):
        run_comparison(models, spec, budget=cache.budget(small_bundle, limit))
