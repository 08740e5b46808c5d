"""The loop as a GPU runs it, checked without a GPU: on the meta device (shapes, no data) reading a
device tensor back raises, and so does mixing a CPU tensor of one or more dimensions with a device
one, as CUDA does. Every built-in sampler, grouped with mixed guidance, runs all its rounds there in
bf16, so on a GPU its loop reads nothing back and meets no tensor on the wrong device. (Lanes on one
seed compare latents in their first rounds, and previews and the first-block cache read back by
design: those are not run here. Copies the other way are not caught: inside diffusers' ``step``, the
stochastic samplers' CPU-drawn noise and UniPC's sigmas reach the GPU from pageable memory, which
waits for the queue.) Only the request's final read-back is left out."""

from __future__ import annotations

import pytest
import torch
from diffusers import DDPMScheduler

import samplers
from dit_demo.runtime import engine
from dit_demo.runtime.bundle import DiTBundle
from dit_demo.runtime.dit import build_dit
from dit_demo.runtime.levers import LaneLevers
from dit_demo.runtime.request import CheckedLane

STEPS = 5


@pytest.fixture(scope="module")
def meta_bundle() -> DiTBundle:
    torch.manual_seed(0)
    model = build_dit(2, 32, 2, 10, 8).eval().requires_grad_(False)
    config = DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear", beta_start=1e-4, beta_end=0.02).config
    bundle = DiTBundle(
        name="meta",
        transformer=model,
        vae=None,
        scheduler_config=dict(config),
        labels=None,
        device=torch.device("cpu"),
        dtype=torch.float32,
    )
    model.to("meta", torch.bfloat16)
    bundle.device, bundle.dtype = torch.device("meta"), torch.bfloat16
    return bundle


def _lane(name: str, seed: int, cfg: float, levers: LaneLevers | None = None) -> CheckedLane:
    return CheckedLane(
        sampler=samplers.get(name),
        steps=STEPS,
        class_id=seed % 10,
        seed=seed,
        cfg_scale=cfg,
        cfg_channels=4,
        levers=levers or LaneLevers(),
    )


@pytest.mark.parametrize("name", [s.name for s in samplers.for_family("dit")])  # the DiT bundle's samplers
def test_every_round_runs_with_nothing_read_back(meta_bundle, monkeypatch, name):
    interval = LaneLevers(guidance_interval=(0.3, 5.0))
    lanes = [_lane(name, 1, 4.0), _lane(name, 2, 2.0), _lane(name, 3, 1.0), _lane(name, 4, 4.0, interval)]
    calls = []
    hook = meta_bundle.transformer.register_forward_pre_hook(
        lambda _, args, kwargs: calls.append(len(args[0])), with_kwargs=True
    )
    monkeypatch.setattr(engine, "_on_host", lambda groups: [list(g.x) for g in groups])  # the one read-back
    try:
        results = engine.run(meta_bundle, lanes)
    finally:
        hook.remove()
    nfe = samplers.get(name).nfe(STEPS, meta_bundle.scheduler_config)
    assert len(calls) == nfe and all(r.latents.shape == (4, 8, 8) for r in results)
    assert max(calls) == 7  # three guided lanes (two rows each) and the unguided one: every round in one call
    with pytest.raises(NotImplementedError):  # the device really has no data to give back
        results[0].latents.cpu()
