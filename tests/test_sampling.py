"""The engine against diffusers' DiTPipeline, the paper's DDPM formula, and itself."""

from __future__ import annotations

import math

import pytest
import torch
from diffusers import DDIMScheduler, DiTPipeline
from helpers import wrapped

import samplers
from dit_demo.runtime.engine import sample
from dit_demo.runtime.request import Lane


def deterministic_samplers() -> list[str]:
    """Every registered deterministic sampler, so a new one is checked without editing this file."""
    return [s.name for s in samplers.for_family("dit") if not s.stochastic]


def pipeline_latents(bundle, sampler_name, steps, class_id, seed, cfg, scheduler=None):
    """Final latents from diffusers' own DiTPipeline with the scheduler our plugin builds."""
    pipe = DiTPipeline(
        transformer=bundle.transformer,
        vae=bundle.vae,
        scheduler=scheduler or samplers.get(sampler_name).build(bundle.scheduler_config),
    )
    pipe.set_progress_bar_config(disable=True)
    captured = {}
    decode_fn = pipe.vae.decode

    def capture(z, *args, **kwargs):
        captured["latents"] = z * bundle.vae.config.scaling_factor
        return decode_fn(z, *args, **kwargs)

    pipe.vae.decode = capture
    try:
        pipe(
            [class_id],
            guidance_scale=cfg,
            generator=torch.Generator("cpu").manual_seed(seed),
            num_inference_steps=steps,
            output_type="pt",
        )
    finally:
        pipe.vae.decode = decode_fn
    return captured["latents"][0]


@pytest.mark.parametrize("sampler_name", [s.name for s in samplers.all_samplers() if s.pipeline_exact])
def test_what_is_marked_pipeline_exact_matches_diffusers_dit_pipeline(imagenet_bundle, sampler_name):
    ours = sample(imagenet_bundle, [Lane(sampler_name, 12, "white shark", seed=3, cfg_scale=4.0)])[0].latents
    theirs = pipeline_latents(imagenet_bundle, sampler_name, 12, 2, 3, 4.0)
    assert ours.abs().max() > 0.1  # a real image-sized latent, not a degenerate zero
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=0)


def test_ddim_equals_diffusers_ddim_scheduler_where_that_one_is_right(imagenet_bundle):
    # DDIMScheduler steps to t - T // n: on its own grid only when n divides T (here 20 | 1000)
    ddim = DDIMScheduler.from_config(imagenet_bundle.scheduler_config, clip_sample=False, timestep_spacing="trailing")
    ours = sample(imagenet_bundle, [Lane("ddim", 20, 879, seed=1, cfg_scale=4.0)])[0].latents
    theirs = pipeline_latents(imagenet_bundle, "ddim", 20, 879, 1, 4.0, scheduler=ddim)
    # the same update written two ways (DPM-Solver-1 vs DDIM): equal up to fp32 rounding of
    # this random model's large latents (|x| ~ 300), hence a relative tolerance
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-5)


@pytest.mark.parametrize("steps", [7, 30])
def test_ddim_is_exact_on_any_step_grid(small_bundle, steps):
    """The DDIM recurrence written out: x_s = sqrt(a_s) x0 + sqrt(1 - a_s) eps on the sampler's own grid."""
    lane = Lane("ddim", steps, 6, seed=2, cfg_scale=1.0)
    ours = sample(small_bundle, [lane])[0].latents
    grid = [int(t) for t in samplers.get("ddim").build(small_bundle.scheduler_config, steps).timesteps]
    abar = torch.cumprod(1 - torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64), 0)
    x = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(2)).double()
    with torch.no_grad():
        for i, t in enumerate(grid):
            eps = (
                small_bundle.transformer(x.float(), timestep=torch.tensor([t]), class_labels=torch.tensor([6]))
                .sample[:, :4]
                .double()
            )
            x0 = (x - (1 - abar[t]).sqrt() * eps) / abar[t].sqrt()
            a_s = abar[grid[i + 1]] if i + 1 < len(grid) else torch.tensor(1.0, dtype=torch.float64)
            x = a_s.sqrt() * x0 + (1 - a_s).sqrt() * eps
    assert grid[0] == 999
    torch.testing.assert_close(ours.double(), x[0], atol=1e-4, rtol=1e-4)


def test_ddpm_uses_the_variance_channels_and_ddim_does_not(small_bundle):
    def lanes(name):
        return [Lane(name, 20, 3, seed=1, cfg_scale=2.0)]

    def widen(out):  # push the learned variance towards beta_t
        out = out.clone()
        out[:, 4:] = 0.9
        return out

    plain_ddpm, plain_ddim = sample(small_bundle, lanes("ddpm"))[0], sample(small_bundle, lanes("ddim"))[0]
    edited, _ = wrapped(small_bundle, widen)
    assert not torch.allclose(sample(edited, lanes("ddpm"))[0].latents, plain_ddpm.latents, atol=1e-3)
    torch.testing.assert_close(sample(edited, lanes("ddim"))[0].latents, plain_ddim.latents, atol=0, rtol=0)


@pytest.mark.parametrize("v_scale", [1.0, 3.0])
def test_one_ddpm_step_is_the_papers_formula(small_bundle, v_scale):
    """Posterior mean from eps; log-variance interpolated by (v + 1) / 2 (Nichol & Dhariwal eq. 15).

    ``v_scale`` 3 lets the model's v leave [-1, 1], as trained models' outputs do: the interpolation
    then extrapolates, and must still be the formula's.
    """
    steps = 10
    sched = samplers.get("ddpm").build(small_bundle.scheduler_config, steps)
    t = int(sched.timesteps[3])
    t_prev = int(sched.timesteps[4])
    g = torch.Generator().manual_seed(0)
    x_t, eps, v = (torch.randn(1, 4, 8, 8, generator=g) for _ in range(3))
    v = v.clamp(-1, 1) if v_scale == 1.0 else v * v_scale
    assert (v.abs() > 1).any() == (v_scale > 1)
    got = sched.step(torch.cat([eps, v], 1), t, x_t, generator=torch.Generator().manual_seed(7)).prev_sample

    betas = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)
    abar = torch.cumprod(1 - betas, 0)
    a_t, a_prev = abar[t], abar[t_prev]
    beta_t = 1 - a_t / a_prev  # the respaced beta
    x0 = (x_t.double() - (1 - a_t).sqrt() * eps.double()) / a_t.sqrt()
    mean = (a_prev.sqrt() * beta_t / (1 - a_t)) * x0 + ((1 - beta_t).sqrt() * (1 - a_prev) / (1 - a_t)) * x_t.double()
    log_post = torch.log(beta_t * (1 - a_prev) / (1 - a_t))
    frac = (v.double() + 1) / 2
    log_var = frac * torch.log(beta_t) + (1 - frac) * log_post
    z = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(7)).double()
    expected = mean + torch.exp(0.5 * log_var) * z
    torch.testing.assert_close(got.double(), expected, atol=1e-5, rtol=1e-5)


CONVERGENCE_RTOL = 0.03  # measured 0.015 at 250 steps; a scaling or sigma mistake gives O(1)


def test_deterministic_samplers_converge_to_one_answer(small_bundle):
    names = deterministic_samplers()
    assert names[0] == "ddim" and len(names) >= 7
    lanes = [Lane(name, 250, 4, seed=5, cfg_scale=1.5) for name in names]
    results = sample(small_bundle, lanes)
    reference = results[0].latents
    scale = reference.std()
    for result in results[1:]:
        error = ((result.latents - reference).abs().max() / scale).item()
        assert error < CONVERGENCE_RTOL, f"{result.lane.sampler} ends {error:.3f} (relative) away from DDIM"


def test_lanes_batched_equal_lanes_alone(small_bundle):
    lanes = [
        Lane("ddim", 10, 1, seed=1, cfg_scale=4.0),
        Lane("dpmpp_2m_sde", 7, 2, seed=2, cfg_scale=1.0),
        Lane("ddpm", 12, 3, seed=1, cfg_scale=2.5, cfg_channels=3),
        Lane("heun", 5, 0, seed=9, cfg_scale=4.0),
    ]
    together = sample(small_bundle, lanes)
    for lane, batched in zip(lanes, together):
        alone = sample(small_bundle, [lane])[0]
        # batch size changes fp32 matmul rounding only: 1e-5 of the latent's scale
        error = (batched.latents - alone.latents).abs().max() / alone.latents.abs().max()
        assert error < 1e-5, f"{lane.sampler}: batched differs from alone by {error:.2e} (relative)"


@pytest.mark.parametrize("name", [s.name for s in samplers.for_family("dit")])  # SiT's: tests/test_sit.py
def test_transformer_calls_equal_declared_nfe(small_bundle, name):
    counted, counter = wrapped(small_bundle)
    sampler = samplers.get(name)
    result = sample(counted, [Lane(name, 6, 1, seed=0, cfg_scale=4.0)])[0]
    declared = sampler.nfe(6, small_bundle.scheduler_config)
    assert counter.calls == declared == result.nfe
    assert declared == 6 * sampler.nfe_per_step - (sampler.nfe_per_step - 1)  # Heun's last step is Euler


def test_same_request_same_bytes_other_seed_other_bytes(small_bundle):
    def png_bytes(seed):
        result = sample(small_bundle, [Lane("dpmpp_2m_sde", 8, "Bag", seed=seed)])[0]
        image = small_bundle.decode_images(result.latents)[0]
        return result.latents.numpy().tobytes(), image.tobytes()

    first, again, other = png_bytes(11), png_bytes(11), png_bytes(12)
    assert first == again
    assert first[0] != other[0] and first[1] != other[1]


def test_same_seed_lanes_share_initial_noise(small_bundle):
    # one step of DDIM at t = T - 1 is a deterministic function of the start noise: equal seeds, equal noise
    a, b = sample(small_bundle, [Lane("ddim", 1, 1, seed=4, cfg_scale=1.0), Lane("ddim", 1, 1, seed=4, cfg_scale=1.0)])
    assert torch.equal(a.latents, b.latents)


def test_cfg_channels_three_guides_only_three_channels(small_bundle):
    four = sample(small_bundle, [Lane("ddim", 1, 2, seed=0, cfg_scale=4.0)])[0].latents
    three = sample(small_bundle, [Lane("ddim", 1, 2, seed=0, cfg_scale=4.0, cfg_channels=3)])[0].latents
    unguided = sample(small_bundle, [Lane("ddim", 1, 2, seed=0, cfg_scale=1.0)])[0].latents
    assert not torch.allclose(four[:3], unguided[:3])
    # equal up to fp32 rounding (the unguided run has no null row in its batch)
    torch.testing.assert_close(three[:3], four[:3], rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(three[3], unguided[3], rtol=1e-5, atol=1e-4)
    assert not torch.allclose(three[3], four[3], rtol=1e-3, atol=1e-2)


def test_progress_callback_reports_and_cancels(small_bundle):
    import threading

    from dit_demo.runtime.engine import Cancelled

    seen = []
    stop = threading.Event()

    def callback(progress):
        seen.append(progress)
        assert set(progress.x0) <= {0, 1}
        assert all(math.isfinite(v.abs().max().item()) for v in progress.x0.values())
        if progress.round == 3:
            stop.set()

    with pytest.raises(Cancelled):
        sample(small_bundle, [Lane("ddim", 10, 1), Lane("euler", 5, 2)], callback=callback, cancel=stop)
    assert [p.round for p in seen] == [1, 2, 3]
    assert seen[0].nfe_total == 15 and seen[-1].nfe_done == 6
