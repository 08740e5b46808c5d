"""Reuse across steps (first-block cache): neutral at threshold 0, bounded, and per lane."""

from __future__ import annotations

import pytest
import torch

from dit_demo.runtime import block_cache
from dit_demo.runtime.block_cache import BlockCache
from dit_demo.runtime.engine import run
from dit_demo.runtime.levers import LaneLevers
from dit_demo.runtime.request import Lane, check_lanes


def _lanes(bundle, threshold, names=("dpmpp_2m", "ddpm", "heun")):
    return check_lanes(
        bundle, [Lane(n, 12, 3, seed=2, cfg_scale=4.0, levers=LaneLevers(cache_threshold=threshold)) for n in names]
    )


def test_threshold_zero_through_the_cache_is_the_exact_path(small_bundle):
    exact = run(small_bundle, _lanes(small_bundle, 0.0))
    cache = BlockCache()
    cached = run(small_bundle, _lanes(small_bundle, 0.0), cache=cache)
    assert cache.reused == 0 and cache.computed == sum(r.nfe for r in exact) * 2  # every row went through it
    for a, b in zip(exact, cached):
        torch.testing.assert_close(a.latents, b.latents, rtol=1e-6, atol=1e-6)


def test_a_threshold_reuses_rows_but_never_more_than_max_reuses_in_a_row(small_bundle):
    cache = BlockCache(record=True)
    results = run(small_bundle, _lanes(small_bundle, 1.0), cache=cache)  # 1.0: reuse whenever allowed
    assert cache.reused > 0 and cache.computed > 0
    streak: dict = {}
    for keys, reused in cache.seen:
        for key, hit in zip(keys, reused):
            streak[key] = streak.get(key, 0) + 1 if hit else 0
            assert streak[key] <= block_cache.MAX_REUSES
    assert max(streak.values()) >= 1 and all(torch.isfinite(r.latents).all() for r in results)


def test_the_threshold_is_per_lane(small_bundle):
    exact_alone = run(small_bundle, _lanes(small_bundle, 0.0, names=("ddim",)))[0]
    mixed = check_lanes(
        small_bundle,
        [
            Lane("ddim", 12, 3, seed=2, cfg_scale=4.0),
            Lane("ddim", 12, 3, seed=2, cfg_scale=4.0, levers=LaneLevers(cache_threshold=1.0)),
        ],
    )
    untouched, shortcut = run(small_bundle, mixed)
    scale = exact_alone.latents.abs().max()
    assert ((untouched.latents - exact_alone.latents).abs().max() / scale) < 1e-5  # batch rounding only
    assert not torch.allclose(shortcut.latents, exact_alone.latents, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("value", [-0.1, 2, "lots"])
def test_bad_thresholds_are_explained(small_bundle, value):
    with pytest.raises(ValueError, match="Cache threshold must be"):
        check_lanes(small_bundle, [Lane("ddim", 4, 1, levers=LaneLevers(cache_threshold=value))])


def test_a_replay_takes_the_recorded_decisions_on_another_model(small_bundle, imagenet_bundle):
    recorder = BlockCache(record=True)
    original = run(small_bundle, _lanes(small_bundle, 0.2), cache=recorder)
    decisions = recorder.decisions()
    assert 0 < recorder.reused < recorder.computed + recorder.reused
    # the same model replaying its own decisions gives its own images
    again = run(small_bundle, _lanes(small_bundle, 0.2), cache=BlockCache(replay=decisions))
    for a, b in zip(original, again):
        torch.testing.assert_close(a.latents, b.latents, rtol=1e-6, atol=1e-6)
    # another model (other weights, 1000 classes) reuses exactly the same rows at the same calls
    replayer = BlockCache(replay=decisions, record=True)
    run(imagenet_bundle, _lanes(imagenet_bundle, 0.0), cache=replayer)
    assert replayer.decisions() == decisions and replayer.reused == recorder.reused


def test_the_change_metric_counts_a_change_down_as_much_as_one_up():
    old = torch.tensor([[[-2.0, 2.0]], [[1.0, 1.0]]])  # two rows of one token, two channels
    new = torch.tensor([[[-1.0, 1.0]], [[0.5, 1.5]]])
    # by hand: row 0 moves by 1 and 1 on a mean size of 2 -> 0.5; row 1 by 0.5 down and 0.5 up on 1 -> 0.5
    assert block_cache.relative_change(new, old).tolist() == [0.5, 0.5]


def test_rows_that_may_not_reuse_are_not_compared(small_bundle, monkeypatch):
    """The reuse test is the cache's one read-back from the device: where no row may reuse (threshold 0,
    or a slot's first evaluation), it does not run."""
    compared = []
    original = block_cache.relative_change
    monkeypatch.setattr(
        block_cache, "relative_change", lambda new, old: compared.append(len(new)) or original(new, old)
    )
    run(small_bundle, _lanes(small_bundle, 0.0), cache=BlockCache())
    assert compared == []
    cache = BlockCache(record=True)
    run(small_bundle, _lanes(small_bundle, 1.0), cache=cache)
    assert 0 < len(compared) < len(cache.seen)  # never in the first call, when no slot holds an evaluation
