"""A bundle's attention processors answer diffusers' signature question without building a signature.
That they compute diffusers' own bits: tests/test_diffusers_adapters.py."""

from __future__ import annotations

import copy
import inspect
import pickle
from dataclasses import replace

import torch
from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0
from helpers import counted, fresh_dit

from dit_demo.runtime.diffusers_adapters import SignedAttnProcessor, sign_processors
from dit_demo.runtime.levers import Levers, with_model_levers


def _model(small_bundle):
    return fresh_dit(small_bundle.num_classes)


def _processors(model) -> list:
    return [m.processor for m in model.modules() if hasattr(m, "processor")]


def _forward(model) -> torch.Tensor:
    x = torch.randn(3, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        return model(x, timestep=torch.tensor([999.0, 500.0, 3.0]), class_labels=torch.tensor([1, 2, 10])).sample


def _signatures_built(model, monkeypatch) -> int:
    """How many signatures ``inspect`` builds from a function's code during one forward."""
    with monkeypatch.context() as patch:
        built = counted(patch, inspect, "_signature_from_function")
        _forward(model)
    return built[0]


def test_a_signed_model_builds_no_signature_per_call(small_bundle, monkeypatch):
    plain, signed = _model(small_bundle), _model(small_bundle)  # plain: diffusers' own processors
    assert sign_processors(signed) == 3
    assert _signatures_built(plain, monkeypatch) >= 3  # one per block, every call
    assert _signatures_built(signed, monkeypatch) == 0
    assert inspect.signature(SignedAttnProcessor().__call__) == inspect.signature(AttnProcessor2_0().__call__)


def test_bundles_are_signed_and_their_copies_stay_signed(small_bundle):
    bundle = replace(small_bundle, transformer=_model(small_bundle))  # __post_init__ signs a new transformer
    assert {type(p) for p in _processors(bundle.transformer)} == {SignedAttnProcessor}
    copied = with_model_levers(bundle, Levers(dtype="fp16"))  # a deep copy in another dtype
    assert copied.transformer is not bundle.transformer
    assert {type(p) for p in _processors(copied.transformer)} == {SignedAttnProcessor}
    assert type(pickle.loads(pickle.dumps(_processors(bundle.transformer)[0]))) is SignedAttnProcessor
    assert type(copy.deepcopy(_processors(bundle.transformer)[0])) is SignedAttnProcessor


def test_other_processors_are_left_as_they_are(small_bundle):
    model = _model(small_bundle)
    for module in model.modules():
        if hasattr(module, "processor"):
            module.set_processor(AttnProcessor())
    assert sign_processors(model) == 0
    assert {type(p) for p in _processors(model)} == {AttnProcessor}
