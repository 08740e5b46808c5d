"""Guidance limited to an interval of noise levels (Kynkaanniemi et al. 2024): a lever of the request."""

from __future__ import annotations

import math

import pytest
import torch
from helpers import wrapped

from dit_demo.runtime.engine import sample
from dit_demo.runtime.levers import LaneLevers
from dit_demo.runtime.parsing import parse_interval
from dit_demo.runtime.request import Lane, check_lanes


def _rows_seen(bundle, lanes):
    """Final latents, and how many transformer rows the request ran in all."""
    rows = []
    counted, _ = wrapped(bundle, edit=lambda out: rows.append(len(out)) or out)
    return [r.latents for r in sample(counted, lanes)], sum(rows)


@pytest.mark.parametrize("name", ["dpmpp_2m", "euler", "ddpm"])
def test_an_interval_covering_every_noise_level_is_the_exact_path(small_bundle, name):
    exact, exact_rows = _rows_seen(small_bundle, [Lane(name, 8, 2, seed=3, cfg_scale=4.0)])
    everywhere, rows = _rows_seen(
        small_bundle, [Lane(name, 8, 2, seed=3, cfg_scale=4.0, levers=LaneLevers(guidance_interval=(0, math.inf)))]
    )
    assert torch.equal(exact[0], everywhere[0]) and rows == exact_rows == 16


def test_an_interval_no_step_falls_in_is_the_unguided_image(small_bundle):
    unguided, _ = _rows_seen(small_bundle, [Lane("dpmpp_2m", 8, 2, seed=3, cfg_scale=1.0)])
    never, rows = _rows_seen(
        small_bundle, [Lane("dpmpp_2m", 8, 2, seed=3, cfg_scale=4.0, levers=LaneLevers(guidance_interval=(1e5, 1e6)))]
    )
    assert torch.equal(unguided[0], never[0]) and rows == 8


def test_guidance_runs_only_inside_the_interval(small_bundle):
    steps, interval = 10, (0.5, 20.0)
    lane = Lane("ddim", steps, 2, seed=3, cfg_scale=4.0, levers=LaneLevers(guidance_interval=interval))
    (latents,), rows = _rows_seen(small_bundle, [lane])
    (full,), _ = _rows_seen(small_bundle, [Lane("ddim", steps, 2, seed=3, cfg_scale=4.0)])
    result = sample(small_bundle, [Lane("ddim", steps, 2, seed=3)])[0]
    inside = sum(interval[0] < small_bundle.parameterization.sigma_at(t) <= interval[1] for t in result.timesteps)
    assert 0 < inside < steps
    assert rows == steps + inside  # one conditional row per step, a null row only inside
    assert not torch.allclose(latents, full, atol=1e-3)


@pytest.mark.parametrize(
    ("text", "message"),
    [("5,1", "needs lo < hi"), ("a,b", "low end must be a number"), ("1", "two noise levels"), ("1,2,3", "two noise")],
)
def test_bad_intervals_are_explained(text, message):
    with pytest.raises(ValueError, match=message):
        parse_interval(text)


def test_interval_forms():
    assert parse_interval("0.28,5.42") == (0.28, 5.42)
    assert parse_interval("0.5, inf") == (0.5, math.inf)
    assert parse_interval((1, 2)) == (1.0, 2.0) and parse_interval("") is None and parse_interval(None) is None


def test_the_interval_is_open_below_and_closed_above_as_the_paper_defines_it(small_bundle):
    (lane,) = check_lanes(
        small_bundle, [Lane("ddim", 4, 1, cfg_scale=4.0, levers=LaneLevers(guidance_interval=(0.28, 5.42)))]
    )
    assert not lane.guided_at(0.28) and lane.guided_at(0.2800001)
    assert lane.guided_at(5.42) and not lane.guided_at(5.4200001)
