"""The denoising loop: checked lanes, classifier-free guidance, learned sigma, lock-step batching.

A request is a list of *lanes*; a lane is one image: (sampler, steps, class, seed, cfg).
At every round each unfinished lane contributes its current latent and timestep, and the
transformer runs once for all of them (per-sample timesteps), so a comparison of many
samplers costs one batched forward per round instead of one per cell. Rows that are identical
(lanes on one seed often share their first rounds) are evaluated once.
"""

from __future__ import annotations

import inspect
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from dit_demo.runtime.block_cache import BlockCache
from dit_demo.runtime.budget import Budget
from dit_demo.runtime.bundle import DiTBundle
from dit_demo.runtime.distinct_rows import distinct_rows
from dit_demo.runtime.request import MAX_LANES, CheckedLane, Lane, check_lanes

MAX_BATCH = 64  # rows per transformer call; bigger rounds are split into calls of this many


@dataclass
class LaneResult:
    lane: CheckedLane
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


class Cancelled(Exception):
    """Raised out of :func:`run` when the cancel event is set (or a callback raises it)."""


class _LaneState:
    def __init__(self, bundle: DiTBundle, lane: CheckedLane, position: int):
        self.bundle, self.lane, self.sampler = bundle, lane, lane.sampler
        self.position = position  # index in the request, for progress reports
        self.reads_variance = self.sampler.reads_variance(bundle.learned_sigma)
        self.scheduler = self.sampler.build(
            bundle.scheduler_config, lane.steps, learned_variance=bundle.learned_sigma, spacing=lane.spacing
        )
        self.timesteps = list(self.scheduler.timesteps)
        # one generator per lane: initial noise first, then the sampler's per-step noise, so a
        # lane gives the same result alone, batched with others, or in diffusers' DiTPipeline
        self.generator = torch.Generator("cpu").manual_seed(lane.seed)
        noise = torch.randn((1, *bundle.latent_shape), generator=self.generator)
        self.x = noise.to(bundle.device) * self.scheduler.init_noise_sigma  # (1, C, H, W) float32
        self.step_kwargs = dict(self.sampler.step_kwargs)
        if _accepts(self.scheduler.step, "generator"):
            self.step_kwargs["generator"] = self.generator
        self.index = 0
        self.seconds = 0.0
        self.x_in = self.x
        self.guided_now = lane.guided  # this round: guidance on (with an interval, it depends on sigma)

    def start_round(self) -> None:
        if self.lane.levers.guidance_interval is not None:  # only then does guidance depend on the noise level
            self.guided_now = self.lane.guided_at(self.bundle.sigma_at(float(self.t)))

    @property
    def rows_now(self) -> int:
        return 2 if self.guided_now else 1

    @property
    def done(self) -> bool:
        return self.index >= len(self.timesteps)

    @property
    def t(self) -> torch.Tensor:
        """This round's model timestep (fractional for sigma-space samplers)."""
        return self.timesteps[self.index]

    def x0_estimate(self, eps: torch.Tensor) -> torch.Tensor:
        """x0 from the scaled (variance-preserving) input and eps, at a possibly fractional t."""
        ab = self.bundle.alpha_bar_at(float(self.t))
        return (self.x_in[0] - math.sqrt(1.0 - ab) * eps) / math.sqrt(ab)

    def step(self, model_out: torch.Tensor) -> None:
        """One scheduler step; a stochastic sampler's last step keeps its noise-free x0 estimate.

        The last step lands on the clean sample (sigma 0, alpha-bar 1). There an ancestral update's
        mean *is* its x0 estimate, and no noise belongs on it: DiT's ``p_sample`` masks it out
        (``nonzero_mask``), k-diffusion skips it when sigma_next is 0. diffusers' DDPMScheduler adds
        noise whenever t > 0, which with a trailing grid (last t = 3 at 250 steps) and the learned
        variance extrapolated past its range gives visible blotches; this rule covers plugins too.
        """
        out = self.scheduler.step(model_out.unsqueeze(0), self.t, self.x, **self.step_kwargs)
        last = self.index == len(self.timesteps) - 1
        x0 = getattr(out, "pred_original_sample", None)
        self.x = x0 if last and self.sampler.stochastic and isinstance(x0, torch.Tensor) else out.prev_sample
        self.index += 1


def _accepts(fn: Callable, name: str) -> bool:
    """Whether ``fn`` takes keyword ``name``, by name or through ``**kwargs`` (wrappers, plugins)."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):  # no introspectable signature (a C callable): offer it anyway
        return True
    return any(p.name == name or p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


def _guide(out: torch.Tensor, lane: CheckedLane, null_out: torch.Tensor | None) -> torch.Tensor:
    """Classifier-free guidance on the first ``cfg_channels`` eps channels; variance stays conditional.

    The original DiT guides 3 of the 4 latent channels (a leftover of pixel-space GLIDE, kept for
    its FID numbers); guiding all of them is the default here.
    """
    if null_out is None:
        return out
    k, s = lane.cfg_channels, lane.cfg_scale
    guided = out.clone()
    guided[:k] = null_out[:k] + s * (out[:k] - null_out[:k])
    return guided


def _check_cancel(cancel: threading.Event | None, message: str) -> None:
    if cancel is not None and cancel.is_set():
        raise Cancelled(message)


def _forward(
    bundle: DiTBundle, active: list[_LaneState], max_batch: int | None, cancel, where: str, cache: BlockCache | None
) -> torch.Tensor:
    """One batched transformer call for every row of every active lane: (rows, C or 2C, H, W) float32."""
    xs, ts, ys, keys, thresholds = [], [], [], [], []
    for s in active:
        s.start_round()
        s.x_in = s.scheduler.scale_model_input(s.x, s.t)
        for kind, y in enumerate([s.lane.class_id] + ([bundle.null_class] if s.guided_now else [])):  # cond, null
            xs.append(s.x_in)
            ts.append(float(s.t))
            ys.append(y)
            keys.append((s.position, kind))
            thresholds.append(s.lane.levers.cache_threshold)
    x = torch.cat(xs).to(bundle.dtype)  # (rows, C, H, W)
    t = torch.tensor(ts, device=bundle.device)
    y = torch.tensor(ys, device=bundle.device, dtype=torch.long)
    inverse = None
    if cache is None:  # identical rows run once (the cache keeps per-row state and finds them itself)
        first, inverse = distinct_rows(x, t, y)
        x, t, y = x[first], t[first], y[first]
    chunk = max_batch or len(x)
    outs = []
    for i in range(0, len(x), chunk):
        if i:  # big rounds stop between chunks too
            _check_cancel(cancel, f"Stopped during {where}.")
        part = slice(i, i + chunk)
        if cache is None:
            outs.append(bundle.transformer(x[part], timestep=t[part], class_labels=y[part]).sample)
        else:
            outs.append(cache.forward(bundle.transformer, x[part], t[part], y[part], keys[part], thresholds[part]))
    out = torch.cat(outs).float()
    return out if inverse is None else out[inverse]


def run(
    bundle: DiTBundle,
    lanes: Sequence[CheckedLane],
    callback: Callable[[Progress], None] | None = None,
    cancel: threading.Event | None = None,
    max_batch: int | None = MAX_BATCH,
    budget: Budget | None = None,
    cache: BlockCache | None = None,
) -> list[LaneResult]:
    """Run checked lanes to completion in lock-step; results are in the order of ``lanes``.

    With a ``budget`` the request is refused, before any sampling, when its estimated cost is over it.
    Lanes with a cache threshold share one :class:`BlockCache` (pass one in to read its counts).
    """
    if cache is None and any(lane.levers.cache_threshold > 0 for lane in lanes):
        cache = BlockCache()
    states = [_LaneState(bundle, lane, i) for i, lane in enumerate(lanes)]
    if budget is not None:
        budget.check([(len(s.timesteps), s.lane.rows) for s in states], max_batch)
    channels = bundle.latent_channels
    total_rounds = max(len(s.timesteps) for s in states)
    nfe_total, nfe_done, start = sum(len(s.timesteps) for s in states), 0, time.perf_counter()
    with torch.inference_mode():
        for round_index in range(total_rounds):
            _check_cancel(cancel, f"Stopped after {round_index} of {total_rounds} rounds.")
            active = [s for s in states if not s.done]
            tick = time.perf_counter()
            out = _forward(bundle, active, max_batch, cancel, f"round {round_index + 1} of {total_rounds}", cache)
            row_seconds = (time.perf_counter() - tick) / len(out)
            progress = Progress(round_index + 1, total_rounds, 0, nfe_total, 0.0)
            row = 0
            for s in active:
                tick = time.perf_counter()
                model_out = _guide(out[row], s.lane, out[row + 1] if s.guided_now else None)
                row += s.rows_now
                if not s.reads_variance:
                    model_out = model_out[:channels]  # eps only: the variance channels are not this sampler's
                if callback is not None:
                    progress.x0[s.position] = s.x0_estimate(model_out[:channels]).float().cpu()
                s.step(model_out)
                nfe_done += 1
                s.seconds += row_seconds * s.rows_now + (time.perf_counter() - tick)
            if callback is not None:
                progress.nfe_done, progress.elapsed = nfe_done, time.perf_counter() - start
                callback(progress)
    return [
        LaneResult(s.lane, s.x[0].float().cpu(), len(s.timesteps), s.seconds, [float(t) for t in s.timesteps])
        for s in states
    ]


def sample(
    bundle: DiTBundle,
    lanes: Sequence[Lane],
    callback: Callable[[Progress], None] | None = None,
    cancel: threading.Event | None = None,
    max_batch: int | None = MAX_BATCH,
    max_lanes: int = MAX_LANES,
    budget: Budget | None = None,
) -> list[LaneResult]:
    """Check ``lanes`` at the boundary (:func:`check_lanes`), then :func:`run` them."""
    return run(bundle, check_lanes(bundle, lanes, max_lanes), callback, cancel, max_batch, budget)
