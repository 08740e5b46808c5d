"""Blocks whose (timestep, class) embedders are equal embed once per engine forward, and a result stays in
its own forward. That the shared embedders compute diffusers' own bits: tests/test_diffusers_adapters.py."""

from __future__ import annotations

import copy
from contextlib import nullcontext
from dataclasses import replace

import pytest
import torch
from diffusers.models import embeddings
from helpers import counted, fresh_dit

from dit_demo.runtime import engine
from dit_demo.runtime.conditioning import sharing
from dit_demo.runtime.diffusers_adapters import share_conditioning
from dit_demo.runtime.levers import LaneLevers
from dit_demo.runtime.request import Lane, check_lanes

DEPTH = 3


def _bundle(small_bundle, equal: bool, shift_block: int | None = None):
    """``small_bundle`` with a fresh 3-block DiT (``helpers.fresh_dit``), adapted as every bundle is."""
    model = fresh_dit(small_bundle.num_classes, equal, shift_block, depth=DEPTH)
    return replace(small_bundle, transformer=model)


def _count_embeddings(model, monkeypatch) -> list[int]:
    """A one-item list counting the embedders' own computations (a shared result computes nothing)."""
    count = [0]
    for block in model.transformer_blocks:
        counted(monkeypatch, block.norm1.emb.timestep_embedder, "forward", count)
    return count


def _forward(model, shared: bool) -> torch.Tensor:
    x = torch.randn(4, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    t, y = torch.tensor([999.0, 999.0, 500.0, 20.0]), torch.tensor([1, 10, 3, 3])
    with torch.inference_mode(), sharing() if shared else nullcontext():
        return model(x, timestep=t, class_labels=y).sample


@pytest.fixture
def features(monkeypatch) -> list[int]:
    """A one-item list counting the sinusoidal timestep features computed."""
    return counted(monkeypatch, embeddings, "get_timestep_embedding")


@pytest.mark.parametrize("equal", [True, False])
def test_a_forward_embeds_once_per_group(small_bundle, features, monkeypatch, equal):
    model = _bundle(small_bundle, equal).transformer
    count = _count_embeddings(model, monkeypatch)
    _forward(model, shared=False)
    assert count[0] == features[0] == DEPTH + 1  # every block, and the output layer (DiTPipeline's forward)
    count[0] = features[0] = 0
    _forward(model, shared=True)
    assert count[0] == (1 if equal else DEPTH)  # the output layer takes block 0's result in both
    assert features[0] == 1  # embedders of their own still share the (weightless) timestep features


def test_blocks_with_other_time_features_make_their_own(small_bundle, features):
    model = _bundle(small_bundle, equal=True, shift_block=1).transformer
    _forward(model, shared=True)
    assert features[0] == 2


def test_a_result_stays_inside_its_sharing_block(small_bundle, monkeypatch):
    """The same tensor objects in a later block (a caller refilling them in place) are embedded again."""
    model = _bundle(small_bundle, equal=True).transformer
    count = _count_embeddings(model, monkeypatch)
    x, t, y = torch.zeros(2, 4, 8, 8), torch.tensor([999.0, 10.0]), torch.tensor([1, 2])
    with torch.no_grad():
        with sharing():
            model(x, timestep=t, class_labels=y)
        t.fill_(500.0)
        with sharing():
            refilled = model(x, timestep=t, class_labels=y).sample
        assert count[0] == 2 and torch.equal(refilled, model(x, timestep=t, class_labels=y).sample)


def test_groups_follow_weights_and_time_features(small_bundle):
    assert share_conditioning(_bundle(small_bundle, equal=True).transformer) == 1
    assert share_conditioning(_bundle(small_bundle, equal=False).transformer) == DEPTH
    # equal weights, but block 1 makes its timestep features as the original code does: its own group
    assert share_conditioning(_bundle(small_bundle, equal=True, shift_block=1).transformer) == 2
    assert share_conditioning(torch.nn.Linear(2, 2)) == 0  # no DiT blocks: nothing to share


def test_a_model_copy_shares_within_itself_only(small_bundle, monkeypatch):
    model = _bundle(small_bundle, equal=True).transformer
    twin = copy.deepcopy(model)  # what a preset's converted copy is made from
    memos = {id(block.norm1.emb.memo) for block in twin.transformer_blocks}
    assert len(memos) == 1 and memos.isdisjoint({id(model.transformer_blocks[0].norm1.emb.memo)})
    count = _count_embeddings(twin, monkeypatch)
    assert torch.equal(_forward(twin, shared=True), _forward(model, shared=False)) and count[0] == 1


@pytest.mark.parametrize("cache_threshold", [0.0, 0.2])
def test_the_engine_shares_and_its_lanes_equal_unshared_ones(small_bundle, monkeypatch, cache_threshold):
    """DPM-Solver++ 2M and DDPM (stochastic), guided, plain and through the first-block cache: the same
    latents to the bit with and without sharing; shared, one embedding per transformer call."""
    bundle = _bundle(small_bundle, equal=True)
    levers = LaneLevers(cache_threshold=cache_threshold)
    lanes = check_lanes(bundle, [Lane(s, 6, c, 7, 3.0, levers=levers) for s in ("dpmpp_2m", "ddpm") for c in (1, 4)])
    count = _count_embeddings(bundle.transformer, monkeypatch)
    calls = counted(monkeypatch, bundle.transformer, "forward")
    shared = engine.run(bundle, lanes)
    embedded, rounds, count[0] = count[0], calls[0], 0
    monkeypatch.setattr(engine, "sharing", nullcontext)
    plain = engine.run(bundle, lanes)
    assert count[0] > embedded  # unshared, every block embedded again
    if cache_threshold == 0:  # the plain forward: one call of the model per round
        assert embedded == rounds == 6
    for a, b in zip(shared, plain):
        assert torch.equal(a.latents, b.latents)


def test_requests_in_two_threads_on_one_model_get_their_own_embeddings(small_bundle):
    """A server runs requests on one model from several threads; each forward's scope and tensors are
    its own, so a result from the other thread is never taken."""
    from concurrent.futures import ThreadPoolExecutor

    bundle = _bundle(small_bundle, equal=True)
    requests = [check_lanes(bundle, [Lane("dpmpp_2m", 8, c, seed, 4.0) for c in (1, 2)]) for seed in (3, 4, 5, 6)]
    alone = [engine.run(bundle, lanes) for lanes in requests]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(lambda lanes: engine.run(bundle, lanes), requests))
    for a, b in zip(alone, together):
        assert all(torch.equal(x.latents, y.latents) for x, y in zip(a, b))
