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
from dit_demo.models import DiTBundle

MAX_LANES = 64
MAX_CFG = 50.0
MAX_SEED = 2**63 - 1


@dataclass(frozen=True)
class Lane:
    """One image to make. ``cfg_channels=None`` guides every latent channel; 3 is the original DiT code."""

    sampler: str
    steps: int
    class_id: int | str
    seed: int = 0
    cfg_scale: float = 4.0
    cfg_channels: int | None = None


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


def check_int(name: str, value, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise ValueError(f"{name} must be a whole number between {low} and {high}, got {value!r}.")
    if not low <= value <= high:
        raise ValueError(f"{name} must be between {low} and {high}, got {value}.")
    return int(value)


def validate_lanes(bundle: DiTBundle, lanes: Sequence[Lane], max_lanes: int = MAX_LANES) -> list[Lane]:
    """Check a request once, at the boundary; return the lanes with class ids and cfg channels resolved."""
    if not lanes:
        raise ValueError("Nothing to sample: the request has no lanes (give at least one sampler, step count and class).")
    if len(lanes) > max_lanes:
        raise ValueError(f"Batch too large: {len(lanes)} images requested, at most {max_lanes} per request.")
    checked = []
    for lane in lanes:
        sampler = samplers.get(lane.sampler)
        steps = check_int(f"Steps for {sampler.name}", lane.steps, 1, bundle.num_train_timesteps)
        class_id = bundle.labels.resolve(lane.class_id)
        if class_id >= bundle.num_classes:
            raise ValueError(f"Class id {class_id} is out of range; the model has classes 0..{bundle.num_classes - 1}.")
        seed = check_int("Seed", lane.seed, 0, MAX_SEED)
        try:
            cfg = float(lane.cfg_scale)
        except (TypeError, ValueError):
            raise ValueError(f"CFG scale must be a number between 0 and {MAX_CFG:g}, got {lane.cfg_scale!r}.") from None
        if not math.isfinite(cfg) or not 0.0 <= cfg <= MAX_CFG:
            raise ValueError(f"CFG scale must be a finite number between 0 and {MAX_CFG:g}, got {lane.cfg_scale!r}.")
        allowed = sorted({bundle.latent_channels, min(3, bundle.latent_channels)})
        channels = bundle.latent_channels if lane.cfg_channels in (None, 0) else lane.cfg_channels
        if isinstance(channels, float) and channels.is_integer():
            channels = int(channels)
        if isinstance(channels, bool) or channels not in allowed:
            raise ValueError(f"cfg_channels must be one of {allowed} (all latent channels, or 3 as in the original DiT), got {lane.cfg_channels!r}.")
        checked.append(replace(lane, sampler=sampler.name, steps=steps, class_id=class_id, seed=seed, cfg_scale=cfg, cfg_channels=channels))
    return checked


def initial_noise(bundle: DiTBundle, seed: int) -> torch.Tensor:
    """(1, C, H, W) standard normal from a CPU generator: identical on every device and in DiTPipeline."""
    shape = (1, bundle.latent_channels, bundle.latent_size, bundle.latent_size)
    return torch.randn(shape, generator=torch.Generator("cpu").manual_seed(seed))


def alpha_bar_at(alphas_cumprod: np.ndarray, t: float) -> float:
    """alpha-bar at a possibly fractional model timestep (sigma-space samplers visit those)."""
    return float(np.interp(t, np.arange(len(alphas_cumprod)), alphas_cumprod))


class _LaneState:
    def __init__(self, bundle: DiTBundle, lane: Lane, position: int):
        self.lane = lane
        self.position = position  # index in the request, for progress reports
        self.sampler = samplers.get(lane.sampler)
        self.scheduler = self.sampler.build(bundle.scheduler_config, lane.steps, learned_variance=bundle.learned_sigma)
        self.timesteps = list(self.scheduler.timesteps)
        # one generator per lane: initial noise first, then the sampler's per-step noise, so a
        # lane gives the same result alone, batched with others, or in diffusers' DiTPipeline
        self.generator = torch.Generator("cpu").manual_seed(lane.seed)
        noise = torch.randn((1, bundle.latent_channels, bundle.latent_size, bundle.latent_size), generator=self.generator)
        self.x = noise.to(bundle.device) * self.scheduler.init_noise_sigma  # (1, C, H, W) float32
        step_params = inspect.signature(self.scheduler.step).parameters
        self.step_kwargs = dict(self.sampler.step_kwargs)
        if "generator" in step_params:
            self.step_kwargs["generator"] = self.generator
        self.alphas_cumprod = self.scheduler.alphas_cumprod.double().cpu().numpy()
        self.index = 0
        self.seconds = 0.0
        self.x_in: torch.Tensor | None = None

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
) -> list[LaneResult]:
    """Run every lane to completion in lock-step; results are in the order of ``lanes``."""
    lanes = validate_lanes(bundle, lanes, max_lanes)
    states = [_LaneState(bundle, lane, i) for i, lane in enumerate(lanes)]
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
                n_rows = 2 if s.guided else 1
                row += n_rows
                if not (s.sampler.uses_variance and bundle.learned_sigma):
                    model_out = model_out[:channels]  # eps only: the variance channels are not this sampler's
                if callback is not None:
                    progress.x0[s.position] = s.x0_estimate(model_out[:channels]).float().cpu()
                t = s.timesteps[s.index]
                s.x = s.scheduler.step(model_out.unsqueeze(0), t, s.x, **s.step_kwargs).prev_sample
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
