"""The denoising loop: lanes, classifier-free guidance, learned sigma, lock-step batching.

A request is a list of *lanes*; a lane is one image: (sampler, steps, class, seed, cfg).
At every round each unfinished lane contributes its current latent and timestep, and the
transformer runs once for all of them (per-sample timesteps), so a comparison of many
samplers costs one batched forward per round instead of one per cell.
"""

from __future__ import annotations

import inspect
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from PIL import Image

import samplers
from dit_demo.runtime.budget import Budget
from dit_demo.runtime.loader import DiTBundle
from dit_demo.runtime.request import MAX_CFG, MAX_SEED, as_float, as_int, parse_cfg_channels, parse_spacing

MAX_LANES = 64


@dataclass(frozen=True)
class Lane:
    """One image to make. ``cfg_channels=None`` guides every latent channel; 3 is the original DiT code.

    ``spacing`` picks the step grid: None is the sampler's default ("trailing": every sampler starts
    at t = T - 1), "linspace" is DiT's own ``space_timesteps`` grid, "leading" diffusers' old default.
    """

    sampler: str
    steps: int
    class_id: int | str
    seed: int = 0
    cfg_scale: float = 4.0
    cfg_channels: int | None = None
    spacing: str | None = None


@dataclass
class LaneResult:
    lane: Lane
    latents: torch.Tensor  # (C, H, W) float32 on the CPU, VAE-scaled latent space
    nfe: int  # transformer evaluations this lane needed (CFG rows not counted twice)
    seconds: float  # wall time attributed to this lane (its share of each batched forward + its steps)
    timesteps: list[float]  # the model timesteps it visited, in order


@dataclass
class Progress:
    """Handed to the callback after every round; ``x0`` maps lane index -> (C, H, W) latent."""

    round: int
    total_rounds: int
    nfe_done: int
    nfe_total: int
    elapsed: float
    x0: dict[int, torch.Tensor] = field(default_factory=dict)
    finished: list[int] = field(default_factory=list)


class Cancelled(Exception):
    """Raised out of :func:`sample` when the cancel event is set (or a callback raises it)."""


def validate_lanes(bundle: DiTBundle, lanes: Sequence[Lane], max_lanes: int = MAX_LANES) -> list[Lane]:
    """Check a request once, at the boundary; return the lanes with class ids and cfg channels resolved."""
    if not lanes:
        raise ValueError("Nothing to sample: the request has no lanes (give at least one sampler, step count and class).")
    if len(lanes) > max_lanes:
        raise ValueError(f"Batch too large: {len(lanes)} images requested, at most {max_lanes} per request.")
    checked = []
    for lane in lanes:
        sampler = samplers.get(lane.sampler)
        steps = as_int(f"Steps for {sampler.name}", lane.steps, 1, bundle.num_train_timesteps)
        class_id = bundle.labels.resolve(lane.class_id)
        if class_id >= bundle.num_classes:
            raise ValueError(f"Class id {class_id} is out of range; the model has classes 0..{bundle.num_classes - 1}.")
        seed = as_int("Seed", lane.seed, 0, MAX_SEED)
        cfg = as_float("CFG scale", lane.cfg_scale, 0.0, MAX_CFG)
        channels = parse_cfg_channels(lane.cfg_channels, bundle.latent_channels)
        spacing = parse_spacing(lane.spacing)
        checked.append(replace(lane, sampler=sampler.name, steps=steps, class_id=class_id, seed=seed, cfg_scale=cfg,
                               cfg_channels=channels, spacing=spacing))
    return checked


def alpha_bar_at(alphas_cumprod: np.ndarray, t: float) -> float:
    """alpha-bar at a possibly fractional model timestep (sigma-space samplers visit those)."""
    return float(np.interp(t, np.arange(len(alphas_cumprod)), alphas_cumprod))


class _LaneState:
    def __init__(self, bundle: DiTBundle, lane: Lane, position: int):
        self.lane = lane
        self.position = position  # index in the request, for progress reports
        self.sampler = samplers.get(lane.sampler)
        self.scheduler = self.sampler.build(
            bundle.scheduler_config, lane.steps, learned_variance=bundle.learned_sigma, spacing=lane.spacing
        )
        self.timesteps = list(self.scheduler.timesteps)
        # one generator per lane: initial noise first, then the sampler's per-step noise, so a
        # lane gives the same result alone, batched with others, or in diffusers' DiTPipeline
        self.generator = torch.Generator("cpu").manual_seed(lane.seed)
        noise = torch.randn((1, bundle.latent_channels, bundle.latent_size, bundle.latent_size), generator=self.generator)
        self.x = noise.to(bundle.device) * self.scheduler.init_noise_sigma  # (1, C, H, W) float32
        self.step_kwargs = dict(self.sampler.step_kwargs)
        if _accepts(self.scheduler.step, "generator"):
            self.step_kwargs["generator"] = self.generator
        self.alphas_cumprod = self.scheduler.alphas_cumprod.double().cpu().numpy()
        self.index = 0
        self.seconds = 0.0
        self.x_in: torch.Tensor | None = None

    @property
    def rows(self) -> int:
        """Transformer rows per evaluation: the conditional one, plus the null class under guidance."""
        return 2 if self.guided else 1

    @property
    def done(self) -> bool:
        return self.index >= len(self.timesteps)

    @property
    def guided(self) -> bool:
        return self.lane.cfg_scale != 1.0

    def x0_estimate(self, eps: torch.Tensor) -> torch.Tensor:
        """x0 from the scaled (variance-preserving) input and eps, at a possibly fractional t."""
        t = float(self.timesteps[self.index])
        ab = alpha_bar_at(self.alphas_cumprod, t)
        return (self.x_in[0] - math.sqrt(1.0 - ab) * eps) / math.sqrt(ab)


def _accepts(fn: Callable, name: str) -> bool:
    """Whether ``fn`` takes keyword ``name``, by name or through ``**kwargs`` (wrappers, plugins)."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):  # no introspectable signature (a C callable): offer it anyway
        return True
    return any(p.name == name or p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


def _step(state: _LaneState, model_out: torch.Tensor, t) -> torch.Tensor:
    """One scheduler step; a stochastic sampler's last step returns its noise-free x0 estimate.

    The last step lands on the clean sample (sigma 0, alpha-bar 1). There an ancestral update's
    mean *is* its x0 estimate, and no noise belongs on it: DiT's ``p_sample`` masks it out
    (``nonzero_mask``), k-diffusion skips it when sigma_next is 0. diffusers' DDPMScheduler adds
    noise whenever t > 0, which with a trailing grid (last t = 3 at 250 steps) and the learned
    variance extrapolated past its range gives visible blotches; this rule covers plugins too.
    """
    out = state.scheduler.step(model_out.unsqueeze(0), t, state.x, **state.step_kwargs)
    last = state.index == len(state.timesteps) - 1
    x0 = getattr(out, "pred_original_sample", None)
    if last and state.sampler.stochastic and isinstance(x0, torch.Tensor):
        return x0
    return out.prev_sample


def _guide(out: torch.Tensor, state: _LaneState, null_out: torch.Tensor | None) -> torch.Tensor:
    """Classifier-free guidance on the first ``cfg_channels`` eps channels; variance stays conditional."""
    if null_out is None:
        return out
    k, s = state.lane.cfg_channels, state.lane.cfg_scale
    guided = out.clone()
    guided[:k] = null_out[:k] + s * (out[:k] - null_out[:k])
    return guided


def sample(
    bundle: DiTBundle,
    lanes: Sequence[Lane],
    callback: Callable[[Progress], None] | None = None,
    cancel: threading.Event | None = None,
    max_batch: int | None = 64,
    max_lanes: int = MAX_LANES,
    budget: Budget | None = None,
) -> list[LaneResult]:
    """Run every lane to completion in lock-step; results are in the order of ``lanes``.

    With a ``budget`` the request is refused, before any sampling, when its estimated cost is over it.
    """
    lanes = validate_lanes(bundle, lanes, max_lanes)
    states = [_LaneState(bundle, lane, i) for i, lane in enumerate(lanes)]
    if budget is not None:
        budget.check([(len(s.timesteps), s.rows) for s in states], max_batch)
    channels = bundle.latent_channels
    total_rounds = max(len(s.timesteps) for s in states)
    nfe_total = sum(len(s.timesteps) for s in states)
    nfe_done = 0
    start = time.perf_counter()
    model = bundle.transformer
    with torch.inference_mode():
        for round_index in range(total_rounds):
            if cancel is not None and cancel.is_set():
                raise Cancelled(f"Stopped after {round_index} of {total_rounds} rounds.")
            active = [s for s in states if not s.done]
            xs, ts, ys = [], [], []
            for s in active:
                t = s.timesteps[s.index]
                s.x_in = s.scheduler.scale_model_input(s.x, t)
                rows = [s.lane.class_id] + ([bundle.null_class] if s.guided else [])
                for y in rows:
                    xs.append(s.x_in)
                    ts.append(float(t))
                    ys.append(y)
            tick = time.perf_counter()
            x_batch = torch.cat(xs).to(bundle.dtype)  # (rows, C, H, W)
            t_batch = torch.tensor(ts, device=bundle.device)
            y_batch = torch.tensor(ys, device=bundle.device, dtype=torch.long)
            chunk = max_batch or len(xs)
            outs = []
            for i in range(0, len(xs), chunk):
                if i and cancel is not None and cancel.is_set():  # big rounds stop between chunks too
                    raise Cancelled(f"Stopped during round {round_index + 1} of {total_rounds}.")
                outs.append(model(x_batch[i : i + chunk], timestep=t_batch[i : i + chunk], class_labels=y_batch[i : i + chunk]).sample)
            out = torch.cat(outs).float()  # (rows, C or 2C, H, W)
            forward_seconds = (time.perf_counter() - tick) / len(xs)
            row = 0
            progress = Progress(round_index + 1, total_rounds, 0, nfe_total, 0.0)
            for s in active:
                tick = time.perf_counter()
                null_out = out[row + 1] if s.guided else None
                model_out = _guide(out[row], s, null_out)
                n_rows = s.rows
                row += n_rows
                if not (s.sampler.uses_variance and bundle.learned_sigma):
                    model_out = model_out[:channels]  # eps only: the variance channels are not this sampler's
                if callback is not None:
                    progress.x0[s.position] = s.x0_estimate(model_out[:channels]).float().cpu()
                t = s.timesteps[s.index]
                s.x = _step(s, model_out, t)
                s.index += 1
                nfe_done += 1
                s.seconds += forward_seconds * n_rows + (time.perf_counter() - tick)
                if s.done:
                    progress.finished.append(s.position)
            if callback is not None:
                progress.nfe_done, progress.elapsed = nfe_done, time.perf_counter() - start
                callback(progress)
    return [
        LaneResult(s.lane, s.x[0].float().cpu(), len(s.timesteps), s.seconds, [float(t) for t in s.timesteps])
        for s in states
    ]


def decode(bundle: DiTBundle, latents: torch.Tensor, batch: int = 8) -> list[Image.Image]:
    """(N, C, H, W) latents -> RGB PIL images (grayscale VAEs are widened to RGB)."""
    if latents.ndim == 3:
        latents = latents[None]
    images = []
    with torch.inference_mode():
        for i in range(0, len(latents), batch):
            z = latents[i : i + batch].to(bundle.device, bundle.vae.dtype) / bundle.vae.config.scaling_factor
            pixels = bundle.vae.decode(z).sample.float().clamp(-1, 1)  # (n, 1 or 3, H*f, W*f)
            if pixels.shape[1] == 1:
                pixels = pixels.expand(-1, 3, -1, -1)
            arr = ((pixels + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
            images.extend(Image.fromarray(a) for a in arr)
    return images
