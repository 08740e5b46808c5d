"""Sampler variants ``name[key=value,...]``: the syntax, its checks, and that a variant is the sampler it names."""

from __future__ import annotations

import pytest
import torch

import samplers
from dit_demo.lab.outputs.generate import generate
from dit_demo.lab.specs.grammar import parse_names
from dit_demo.runtime.engine import sample
from dit_demo.runtime.request import Lane


def test_variants_are_read_in_lists_and_spelled_canonically():
    text = "dpmpp_2m[karras=TRUE], ddpm[spacing=linspace],dpmpp_2m[order=3, karras=1],ddim"
    assert parse_names(text) == [
        "dpmpp_2m[karras=true]",
        "ddpm[spacing=linspace]",
        "dpmpp_2m[order=3,karras=true]",
        "ddim",
    ]
    variant = samplers.get("dpmpp_2m[karras=true]")
    assert variant.label == "DPM-Solver++ 2M [karras=true]"
    assert (
        variant.overrides["use_karras_sigmas"] is True and "use_karras_sigmas" not in samplers.get("dpmpp_2m").overrides
    )


@pytest.mark.parametrize(
    ("variant", "same_as"),
    [
        ("dpmpp_2m[karras=true]", Lane("dpmpp_2m_karras", 8, 3, 1, 4.0)),
        ("dpmpp_2m[order=3]", Lane("dpmpp_3m", 8, 3, 1, 4.0)),
        ("ddpm[spacing=linspace]", Lane("ddpm", 8, 3, 1, 4.0, spacing="linspace")),
    ],
)
def test_a_variant_samples_exactly_what_it_names(small_bundle, variant, same_as):
    got = sample(small_bundle, [Lane(variant, 8, 3, 1, 4.0)])[0]
    want = sample(small_bundle, [same_as])[0]
    assert got.timesteps == want.timesteps
    assert torch.equal(got.latents, want.latents)
    plain = sample(small_bundle, [Lane(variant.split("[")[0], 8, 3, 1, 4.0)])[0]
    assert not torch.equal(got.latents, plain.latents)  # the option changed something


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("ddim[eta=0.5]", "ddim has no option 'eta' (its scheduler is DPMSolverMultistepScheduler); its options:"),
        ("dpmpp_2m[beta_start=0.1]", "dpmpp_2m has no option 'beta_start'"),  # the model's schedule is not an option
        ("dpmpp_2m[karras=maybe]", "Option use_karras_sigmas of dpmpp_2m must be true or false, got 'maybe'"),
        ("dpmpp_2m[order=9]", "Option solver_order of dpmpp_2m must be a whole number from 1 to 3, got '9'"),
        ("ddpm[spacing=sideways]", "must be one of trailing, linspace, leading"),
        ("dpmpp_2m[algorithm_type=bogus]", "dpmpp_2m[algorithm_type=bogus]: DPMSolverMultistepScheduler refused"),
        ("dpmpp_2m[karras]", "needs a value: key=value"),
        ("dpmpp_2m[]", "Empty options"),
        ("nope[karras=true]", "Unknown sampler 'nope'; available: ddpm"),
        ("ddim[karras=true", "write a variant as name[key=value,...]"),
    ],
)
def test_bad_variants_are_explained(text, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        parse_names(text)


def test_every_bad_sampler_is_named_at_once():
    with pytest.raises(ValueError) as info:
        parse_names("ddim[eta=1],nope,dpmpp_2m[order=0]")
    assert "'eta'" in str(info.value) and "'nope'" in str(info.value) and "solver_order" in str(info.value)


def test_the_variant_is_written_in_the_png_metadata(small_bundle):
    generated = generate(small_bundle, [Lane("dpmpp_2m[karras=true]", 6, 2, 0, 3.0)])[0]
    assert generated.parameters["sampler"] == "dpmpp_2m[karras=true]"
    again = generate(small_bundle, [Lane(generated.parameters["sampler"], 6, 2, 0, 3.0)])[0]
    assert again.image.tobytes() == generated.image.tobytes()
