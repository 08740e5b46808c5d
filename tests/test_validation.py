"""Bad requests fail at the boundary with a message a person can act on."""

from __future__ import annotations

import pytest

from dit_demo.runtime.engine import sample
from dit_demo.runtime.request import MAX_LANES, Lane, check_lanes


@pytest.mark.parametrize(
    ("lane", "message"),
    [
        (Lane("no_such_sampler", 10, 1), "Unknown sampler 'no_such_sampler'; available: ddpm"),
        (Lane("ddim", 10, "whte shark"), "Did you mean: 'white shark'"),
        (Lane("ddim", 0, 1), "Steps for ddim must be between 1 and 1000, got 0"),
        (Lane("ddim", 1001, 1), "between 1 and 1000, got 1001"),
        (Lane("ddim", 2.5, 1), "whole number"),
        (Lane("ddim", 10, 1, cfg_scale=float("nan")), "CFG scale must be a finite number"),
        (Lane("ddim", 10, 1, cfg_scale=float("inf")), "CFG scale must be a finite number"),
        (Lane("ddim", 10, 1, cfg_scale=-1.0), "between 0 and 50"),
        (Lane("ddim", 10, 1, cfg_scale="lots"), "CFG scale must be a number"),
        (Lane("ddim", 10, 1000), "Class id 1000 is out of range"),
        (Lane("ddim", 10, 1, seed=-3), "Seed must be between 0"),
        (Lane("ddim", 10, 1, cfg_channels=2), "cfg_channels must be one of [3, 4]"),
    ],
)
def test_bad_lane_is_refused_with_a_clear_message(imagenet_bundle, lane, message):
    with pytest.raises(ValueError) as info:
        sample(imagenet_bundle, [lane])
    assert message in str(info.value)


def test_empty_request(imagenet_bundle):
    with pytest.raises(ValueError, match="no lanes"):
        check_lanes(imagenet_bundle, [])


def test_batch_too_large(imagenet_bundle):
    with pytest.raises(ValueError, match=f"Batch too large: {MAX_LANES + 1} images requested, at most {MAX_LANES}"):
        check_lanes(imagenet_bundle, [Lane("ddim", 5, 1)] * (MAX_LANES + 1))


def test_valid_lanes_resolve_names(imagenet_bundle):
    (lane,) = check_lanes(imagenet_bundle, [Lane("ddim", 5, "Great White Shark", cfg_channels=None)])
    assert lane.class_id == 2 and lane.cfg_channels == 4 and lane.cfg_scale == 4.0
