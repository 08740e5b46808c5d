"""Lanes on one schedule step together, and change no lane's numbers by it."""

from __future__ import annotations

import time
from dataclasses import replace
from types import SimpleNamespace

import pytest
import torch
from diffusers import DDIMScheduler, DPMSolverMultistepScheduler

import samplers
from dit_demo.runtime import distinct_rows as distinct_rows_module
from dit_demo.runtime.engine import run
from dit_demo.runtime.lane_group import group_lanes
from dit_demo.runtime.levers import LaneLevers
from dit_demo.runtime.request import Lane, check_lanes
from samplers import Sampler


class RowWise:
    """A stand-in DiT whose every output element depends only on its own row's input: batching
    cannot move a bit of it, so a lane stepped in a group must equal the lane alone exactly."""

    def __init__(self, model):
        self.config, self.dtype = model.config, model.dtype
        self.out_channels = model.config.out_channels

    def __call__(self, x, timestep, class_labels):
        shift = (timestep / 1000 + class_labels * 0.1).view(-1, 1, 1, 1)
        eps = torch.sin(3 * x + shift)
        variance = torch.tanh(x - shift)[:, : self.out_channels - x.shape[1]]
        return SimpleNamespace(sample=torch.cat([eps, variance], dim=1))


def _group(name: str) -> list[Lane]:
    # one schedule, four lanes: guided, unguided, guided on 3 channels only (its own group), and
    # guided only inside an interval (so some rounds mix guided and unguided lanes in one group)
    return [
        Lane(name, 6, 1, seed=1, cfg_scale=4.0),
        Lane(name, 6, 2, seed=2, cfg_scale=1.0),
        Lane(name, 6, 3, seed=3, cfg_scale=2.5, cfg_channels=3),
        Lane(name, 6, 0, seed=4, cfg_scale=3.0, levers=LaneLevers(guidance_interval=(0.5, 5.0))),
    ]


@pytest.mark.parametrize("name", [s.name for s in samplers.for_family("dit")])  # the DiT bundle's samplers
def test_a_lane_stepped_in_a_group_equals_the_lane_alone_to_the_bit(small_bundle, name):
    model = replace(small_bundle, transformer=RowWise(small_bundle.transformer))
    lanes = check_lanes(model, _group(name))
    assert len(group_lanes(lanes)) == 2  # the 3-channel lane guides differently: a group of its own
    together = run(model, lanes)
    for lane, grouped in zip(lanes, together):
        alone = run(model, [lane])[0]
        assert grouped.lane is lane and grouped.timesteps == alone.timesteps
        assert torch.equal(grouped.latents, alone.latents), f"{name}, seed {lane.seed}: grouping moved the lane"


@pytest.mark.parametrize("name", ["ddpm", "dpmpp_2m", "euler_ancestral"])
@pytest.mark.parametrize("cfg", [1.0, 4.0])
def test_a_group_on_one_guidance_scale_equals_its_lanes_alone(small_bundle, name, cfg):
    model = replace(small_bundle, transformer=RowWise(small_bundle.transformer))
    lanes = check_lanes(model, [Lane(name, 5, c, seed=c, cfg_scale=cfg) for c in range(3)])
    assert len(group_lanes(lanes)) == 1
    for lane, grouped in zip(lanes, run(model, lanes)):
        assert torch.equal(grouped.latents, run(model, [lane])[0].latents), f"{name}, cfg {cfg}, seed {lane.seed}"


def test_lanes_group_by_schedule_and_keep_their_order(small_bundle):
    lanes = check_lanes(
        small_bundle,
        [
            Lane("ddim", 5, 0),
            Lane("dpmpp_2m", 5, 1),
            Lane("ddim", 5, 2, seed=7),
            Lane("ddim", 8, 3),
            Lane("ddim", 5, 4, spacing="linspace"),
            Lane("ddim", 5, 5, seed=3),
        ],
    )
    assert group_lanes(lanes) == [[0, 2, 5], [1], [3], [4]]
    results = run(small_bundle, lanes)
    assert [r.lane.class_id for r in results] == [0, 1, 2, 3, 4, 5]  # in the request's order, not the groups'


def test_one_scheduler_step_a_round_serves_a_whole_group(small_bundle, monkeypatch):
    steps = []
    original = DPMSolverMultistepScheduler.step  # DDIM's class here
    monkeypatch.setattr(
        DPMSolverMultistepScheduler,
        "step",
        lambda self, out, *a, **k: steps.append(len(out)) or original(self, out, *a, **k),
    )
    run(small_bundle, check_lanes(small_bundle, [Lane("ddim", 4, c, seed=c) for c in range(8)]))
    assert steps == [8, 8, 8, 8]


def test_a_plugins_scheduler_steps_each_lane_alone(small_bundle, registered):
    class PluginDDIM(DDIMScheduler):  # not one of diffusers' own classes: it may not take a list of generators
        pass

    name = registered(Sampler("plugin_ddim", "Plugin DDIM", "test", PluginDDIM))
    lanes = check_lanes(small_bundle, [Lane(name, 4, c, seed=c) for c in range(3)])
    assert group_lanes(lanes) == [[0], [1], [2]]


def test_a_stochastic_scheduler_that_seeds_itself_steps_each_lane_alone(small_bundle, registered):
    class SelfSeeded(DDIMScheduler):  # as diffusers' Brownian-tree SDE scheduler: noise not from a generator
        def step(self, model_output, timestep, sample, eta=0.0, return_dict=True):
            return super().step(model_output, timestep, sample, eta=eta, return_dict=return_dict)

    SelfSeeded.__module__ = "diffusers.schedulers.self_seeded"
    noisy = registered(Sampler("self_seeded", "Self-seeded", "test", SelfSeeded, stochastic=True))
    quiet = registered(Sampler("quiet_ddim", "Quiet DDIM", "test", SelfSeeded))
    lanes = check_lanes(small_bundle, [Lane(name, 4, c, seed=c) for name in (noisy, quiet) for c in range(2)])
    assert group_lanes(lanes) == [[0], [1], [2, 3]]

    class BrownianTree(SelfSeeded):  # seeds a noise tree from its config: noisy whatever the sampler says
        def __init__(self, *args, noise_sampler_seed=None, **kwargs):
            super().__init__(*args, **kwargs)

    BrownianTree.__module__ = "diffusers.schedulers.brownian_tree"
    unmarked = registered(Sampler("unmarked_sde", "Unmarked SDE", "test", BrownianTree))
    assert group_lanes(check_lanes(small_bundle, [Lane(unmarked, 4, c, seed=c) for c in range(2)])) == [[0], [1]]


def test_a_lanes_seconds_are_its_share_of_the_request_by_the_rows_it_needed(small_bundle):
    lanes = [Lane("ddim", 10, 1, cfg_scale=4.0), Lane("ddim", 10, 2, cfg_scale=1.0), Lane("ddim", 5, 3, cfg_scale=1.0)]
    start = time.perf_counter()
    guided, plain, short = run(small_bundle, check_lanes(small_bundle, lanes))
    wall = time.perf_counter() - start
    assert guided.seconds == pytest.approx(2 * plain.seconds) and plain.seconds == pytest.approx(2 * short.seconds)
    assert 0 < guided.seconds + plain.seconds + short.seconds <= wall


def test_only_lanes_that_may_still_coincide_are_compared(small_bundle, monkeypatch):
    compared = []
    original = distinct_rows_module.distinct_rows

    def counting(*columns):
        compared.append(len(columns[0]))
        return original(*columns)

    monkeypatch.setattr(distinct_rows_module, "distinct_rows", counting)
    same_seed = check_lanes(small_bundle, [Lane("dpmpp_2m", 10, c, seed=0, cfg_scale=4.0) for c in range(8)])
    run(small_bundle, same_seed)
    # round 1: one noise for eight lanes (their null rows coincide); round 2: the classes have
    # pulled them apart, and no later round reads latents back from the device
    assert compared == [8, 8]
    compared.clear()
    run(small_bundle, check_lanes(small_bundle, [Lane("dpmpp_2m", 10, c, seed=c, cfg_scale=4.0) for c in range(8)]))
    assert compared == []


def test_each_lanes_latents_own_their_storage(small_bundle):
    results = run(small_bundle, check_lanes(small_bundle, [Lane("ddim", 3, c, seed=c) for c in range(4)]))
    for r in results:  # a view into the group's stack would be saved (torch.save) with all its rows
        assert r.latents.untyped_storage().nbytes() == r.latents.numel() * r.latents.element_size()
    before = results[1].latents.clone()
    results[0].latents.zero_()
    assert torch.equal(results[1].latents, before)
