"""DiT's own sampler, exactly: DDPM with the learned variance on DiT's grid, no noise on the last step."""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import pytest
import torch
from diffusers import DDPMScheduler

import samplers
from dit_demo.runtime.engine import sample
from dit_demo.runtime.request import Lane

# the discrete-time rule checked here is DiT's; flow families' SDEs end with their own last step (their tests)
STOCHASTIC = [s.name for s in samplers.all_samplers() if s.stochastic and "dit" in s.families]


def dit_space_timesteps(num_timesteps: int, count: int) -> list[int]:
    """facebookresearch/DiT ``space_timesteps(T, str(count))``, one section: evenly strided, rounded."""
    stride = (num_timesteps - 1) / (count - 1)
    return sorted({round(i * stride) for i in range(count)}, reverse=True)


@pytest.mark.parametrize("steps", [10, 25, 50, 250])
def test_linspace_spacing_is_dits_own_grid(embedded_bundle, steps):
    sched = samplers.get("ddpm").build(embedded_bundle.scheduler_config, steps, spacing="linspace")
    assert [int(t) for t in sched.timesteps] == dit_space_timesteps(1000, steps)
    # the default grid is "trailing": it starts at T - 1 too but ends above 0
    default = samplers.get("ddpm").build(embedded_bundle.scheduler_config, steps)
    assert int(default.timesteps[0]) == 999 and int(default.timesteps[-1]) > 0


def improved_ddpm_loop(bundle, grid, class_id, seed, cfg, guided_channels=None, forward=None):
    """Nichol & Dhariwal's sampler written out: posterior mean, frac-interpolated log variance, no last noise.
    ``guided_channels``: guidance on the first few eps channels only (DiT's forward_with_cfg: 3);
    ``forward(x, t, y)``: another model than the bundle's transformer (the original code's, in a test)."""
    if forward is None:
        forward = lambda x, t, y: bundle.transformer(x, timestep=t, class_labels=y).sample  # noqa: E731
    config = bundle.scheduler_config
    betas = torch.linspace(config["beta_start"], config["beta_end"], config["num_train_timesteps"], dtype=torch.float64)
    abar = torch.cumprod(1 - betas, 0)
    generator = torch.Generator().manual_seed(seed)
    shape = (1, bundle.latent_channels, bundle.latent_size, bundle.latent_size)
    x = torch.randn(shape, generator=generator).double()
    channels = bundle.latent_channels
    with torch.no_grad():
        for i, t in enumerate(grid):
            out = forward(
                x.float().repeat(2, 1, 1, 1), torch.tensor([float(t)] * 2), torch.tensor([class_id, bundle.null_class])
            ).double()
            cond, null = out[:1], out[1:]
            g = guided_channels or channels
            eps = cond[:, :channels].clone()
            eps[:, :g] = null[:, :g] + cfg * (cond[:, :g] - null[:, :g])
            v = cond[:, channels:]  # the variance stays conditional, as in DiT's forward_with_cfg
            a_t = abar[t]
            a_prev = abar[grid[i + 1]] if i + 1 < len(grid) else torch.tensor(1.0, dtype=torch.float64)
            beta = 1 - a_t / a_prev  # the respaced beta
            x0 = (x - (1 - a_t).sqrt() * eps) / a_t.sqrt()
            mean = a_prev.sqrt() * beta / (1 - a_t) * x0 + (1 - beta).sqrt() * (1 - a_prev) / (1 - a_t) * x
            noise = torch.randn(shape, generator=generator).double()
            if i + 1 == len(grid):
                x = mean  # DiT's nonzero_mask: no noise on the step that lands on x0
                break
            frac = (v + 1) / 2  # not clamped: the model's v may leave [-1, 1]
            log_var = frac * beta.log() + (1 - frac) * (beta * (1 - a_prev) / (1 - a_t)).log()
            x = mean + (0.5 * log_var).exp() * noise
    return x[0]


@pytest.mark.parametrize("steps", [25, 250])
def test_ddpm_equals_the_improved_ddpm_formulas_on_the_shipped_model(embedded_bundle, steps):
    lane = Lane("ddpm", steps, "Sneaker", seed=3, cfg_scale=1.5, spacing="linspace")
    ours = sample(embedded_bundle, [lane])[0].latents.double()
    theirs = improved_ddpm_loop(embedded_bundle, dit_space_timesteps(1000, steps), 7, 3, 1.5)
    error = ((ours - theirs).abs().max() / theirs.abs().max()).item()
    assert error < 1e-4, f"engine differs from the formulas by {error:.2e} (relative)"


def _last_step_reseeded(sampler: samplers.Sampler) -> samplers.Sampler:
    """The same sampler, but its last step draws from an unrelated generator (passed through **kwargs)."""

    class LastStepReseeded(sampler.scheduler_class):
        def step(self, *args, **kwargs):
            self.calls = getattr(self, "calls", 0) + 1
            if self.calls == len(self.timesteps):
                kwargs["generator"] = torch.Generator().manual_seed(12345)
            return super().step(*args, **kwargs)

    return dataclasses.replace(sampler, name=f"test_reseeded_{sampler.name}", scheduler_class=LastStepReseeded)


@pytest.mark.parametrize("spacing", ["trailing", "linspace", "leading"])
@pytest.mark.parametrize("name", STOCHASTIC)
def test_no_stochastic_sampler_adds_noise_on_its_last_step(small_bundle, registered, name, spacing):
    reseeded = registered(_last_step_reseeded(samplers.get(name)))
    lanes = [Lane(n, 6, 3, seed=1, cfg_scale=2.0, spacing=spacing) for n in (name, reseeded)]
    plain, other_last_noise = sample(small_bundle, lanes)
    assert plain.latents.abs().max() > 0.1
    assert torch.equal(plain.latents, other_last_noise.latents)


def test_the_last_step_noise_was_real_before(small_bundle, registered):
    """The reseeding above does change a step that is not the last: the test can tell noise apart."""
    sampler = _last_step_reseeded(samplers.get("ddpm"))
    early = dataclasses.replace(
        sampler,
        name="test_reseeded_early",
        scheduler_class=type(
            "EarlyReseeded",
            (DDPMScheduler,),
            {
                "step": lambda self, *a, **k: DDPMScheduler.step(
                    self, *a, **{**k, "generator": torch.Generator().manual_seed(12345)}
                )
            },
        ),
    )
    name = registered(early)
    plain, reseeded = sample(small_bundle, [Lane("ddpm", 6, 3, seed=1), Lane(name, 6, 3, seed=1)])
    assert not torch.allclose(plain.latents, reseeded.latents, atol=1e-3)


class KwargsDDPM(DDPMScheduler):
    """A plugin's scheduler whose ``step`` forwards everything through ``**kwargs``."""

    def step(self, *args, **kwargs):
        return super().step(*args, **kwargs)


def _decorated(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return fn(*args, **kwargs)

    return wrapper


class DecoratedDDPM(DDPMScheduler):
    step = _decorated(DDPMScheduler.step)


@pytest.mark.parametrize("scheduler_class", [KwargsDDPM, DecoratedDDPM])
def test_wrapped_plugin_steps_get_the_lane_generator(small_bundle, registered, scheduler_class):
    plugin = dataclasses.replace(
        samplers.get("ddpm_fixed"), name=f"test_{scheduler_class.__name__}", scheduler_class=scheduler_class
    )
    name = registered(plugin)
    runs = []
    for global_seed in (1, 2):  # the global RNG must play no part
        torch.manual_seed(global_seed)
        np.random.seed(global_seed)
        runs.append(sample(small_bundle, [Lane(name, 8, 2, seed=4), Lane("ddpm_fixed", 8, 2, seed=4)]))
    assert torch.equal(runs[0][0].latents, runs[1][0].latents)
    assert torch.equal(runs[0][0].latents, runs[0][1].latents)  # and it is the built-in's image, bit for bit
