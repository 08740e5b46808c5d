"""Identical rows of a round run once: found exactly, and never changing a lane's result."""

from __future__ import annotations

import torch

from dit_demo.runtime.block_cache import BlockCache
from dit_demo.runtime.distinct_rows import distinct_rows
from dit_demo.runtime.engine import run
from dit_demo.runtime.levers import LaneLevers
from dit_demo.runtime.request import Lane, check_lanes
from tests.helpers import wrapped


def test_rows_equal_in_every_column_are_found_and_no_others():
    x = torch.randn(6, 4, 3, 3)
    x[3], x[4], x[5] = x[1], x[0], x[0]
    t = torch.tensor([999.0, 500.0, 500.0, 500.0, 999.0, 998.0])  # row 5: same latent, other timestep
    y = torch.tensor([1, 2, 2, 2, 1, 1])
    y[2] = 3  # row 2: a latent of its own anyway
    first, inverse = distinct_rows(x, t, y)
    assert first.tolist() == [0, 1, 2, 5]  # in order of first appearance
    assert inverse.tolist() == [0, 1, 2, 1, 0, 3]
    for column in (x, t, y):
        assert torch.equal(column[first][inverse], column)
    y[3] = 7  # the same latent and timestep for another class is another row
    assert distinct_rows(x, t, y)[0].tolist() == [0, 1, 2, 3, 5]


def _grid(bundle, threshold=0.0):
    # one seed and class: every lane starts from the same noise at t = 999 (trailing grid), and
    # DPM-Solver++ 2M and 3M take the same first two steps
    lanes = [
        Lane(name, steps, 3, seed=4, cfg_scale=4.0, levers=LaneLevers(cache_threshold=threshold))
        for name in ("ddim", "dpmpp_2m", "dpmpp_3m")
        for steps in (5, 8)
    ]
    return check_lanes(bundle, lanes)


def test_lanes_on_one_seed_share_their_identical_rows(small_bundle):
    counted, counter = wrapped(small_bundle)
    lanes = _grid(small_bundle)
    together = run(counted, lanes)
    assert counter.rows[0] == 2  # six lanes' first round: one cond and one null row
    # rounds 2 and 3: DPM++ 2M and 3M still agree (2 DDIM + 2 DPM++ lanes at most; DDIM's first
    # step may equal DPM++'s first-order one to the bit as well)
    assert counter.rows[1] <= 8 and counter.rows[2] <= 8
    assert sum(counter.rows) < sum(2 * r.nfe for r in together)
    for lane, batched in zip(lanes, together):
        alone = run(small_bundle, [lane])[0]
        error = (batched.latents - alone.latents).abs().max() / alone.latents.abs().max()
        assert error < 1e-5, f"{lane.sampler} {lane.steps}: shared rows moved it by {error:.2e} (relative)"


def test_the_cache_runs_identical_rows_once_and_keeps_each_lanes_state(small_bundle):
    blocks = small_bundle.transformer.transformer_blocks
    seen = []
    hook = blocks[1].register_forward_hook(lambda module, args, kwargs_out: seen.append(len(args[0])))
    try:
        cache = BlockCache()
        cached = run(small_bundle, _grid(small_bundle), cache=cache)
    finally:
        hook.remove()
    assert seen[0] == 2 and cache.computed == sum(2 * r.nfe for r in cached)  # decisions stay per row
    exact = run(small_bundle, _grid(small_bundle))
    for a, b in zip(exact, cached):
        torch.testing.assert_close(a.latents, b.latents, rtol=1e-6, atol=1e-6)
