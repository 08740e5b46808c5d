"""The denoising loop: checked lanes, classifier-free guidance, learned sigma, lock-step batching.

A request is a list of *lanes*; a lane is one image: (sampler, steps, class, seed, cfg).
At every round each unfinished lane contributes its current latent and timestep, and the
transformer runs once for all of them (per-sample timesteps), so a comparison of many
samplers costs one batched forward per round instead of one per cell. Rows that are identical
(lanes on one seed often share their first rounds) are evaluated once, and lanes on one schedule
(a batch of classes) take one scheduler step together (``lane_group``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from dit_demo.runtime.block_cache import BlockCache
from dit_demo.runtime.budget import Budget
from dit_demo.runtime.bundle import DiTBundle
from dit_demo.runtime.conditioning import sharing
from dit_demo.runtime.devices import host_values
from dit_demo.runtime.distinct_rows import SharedRows, regrouped
from dit_demo.runtime.lane_group import LaneGroup, group_lanes
from dit_demo.runtime.request import MAX_LANES, CheckedLane, Lane, check_lanes

MAX_BATCH = 64  # rows per transformer call; bigger rounds are split into calls of this many


@dataclass
class LaneResult:
    lane: CheckedLane
    latents: torch.Tensor  # (C, H, W) float32 on the CPU, VAE-scaled latent space
    nfe: int  # transformer evaluations this lane needed (CFG rows not counted twice)
    seconds: float  # its share of the request's wall time, in proportion to the transformer rows it needed
    timesteps: list[float]  # the model timesteps it visited, in order


@dataclass(kw_only=True)
class Progress:
    """Handed to the callback after every round; ``x0`` maps lane index -> (C, H, W) latent.

    While an adaptive solver's lane runs, ``total_rounds`` and ``nfe_total`` are its estimate ("about N", revised
    every round) and ``estimated`` is true; they are exact otherwise.
    """

    round: int
    total_rounds: int
    nfe_done: int
    nfe_total: int
    elapsed: float
    x0: dict[int, torch.Tensor] = field(default_factory=dict)
    estimated: bool = False


class Cancelled(Exception):
    """Raised out of :func:`run` when the cancel event is set (or a callback raises it)."""


def _check_cancel(cancel: threading.Event | None, message: str) -> None:
    if cancel is not None and cancel.is_set():
        raise Cancelled(message)


def _forward(
    bundle: DiTBundle,
    active: list[LaneGroup],
    shared: SharedRows,
    max_batch: int | None,
    cancel: threading.Event | None,
    where: str,
    cache: BlockCache | None,
) -> torch.Tensor:
    """One batched transformer call for every row of every active group: (rows, C or 2C, H, W) float32.

    Rows come group by group, each group's in its ``row_classes`` order.
    """
    rows, inputs, keys, thresholds = [], {}, [], []
    for g in active:
        g.start_round()
        for i, kind, y in g.row_classes():
            lane = g.positions[i]
            inputs[lane] = g.x_in[i]
            rows.append((lane, bundle.parameterization.model_time(float(g.t)), y))
            keys.append((lane, kind))
            thresholds.append(g.lanes[i].levers.cache_threshold)
    first, inverse = shared.plan(inputs, rows)
    # identical rows run once; the cache keeps per-row state, so it sees every row and is told the copies
    evaluated = first if cache is None else range(len(rows))
    x = torch.stack([inputs[rows[r][0]] for r in evaluated]).to(bundle.dtype)  # (rows, C, H, W)
    t = host_values([rows[r][1] for r in evaluated], torch.float32, bundle.device)
    y = host_values([rows[r][2] for r in evaluated], torch.long, bundle.device)
    chunk = max_batch or len(x)
    outs = []
    with sharing():  # blocks with equal embedders embed (t, y) once per call
        for i in range(0, len(x), chunk):
            if i:  # big rounds stop between chunks too
                _check_cancel(cancel, f"Stopped during {where}.")
            part = slice(i, i + chunk)
            if cache is None:
                outs.append(bundle.transformer(x[part], timestep=t[part], class_labels=y[part]).sample)
            else:
                copies = regrouped(inverse[part])
                outs.append(
                    cache.forward(bundle.transformer, x[part], t[part], y[part], keys[part], thresholds[part], copies)
                )
    out = (outs[0] if len(outs) == 1 else torch.cat(outs)).float()
    if cache is not None or len(first) == len(rows):
        return out
    return out[host_values(inverse, torch.long, bundle.device)]


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
    An adaptive solver's lane picks its own steps: the loop runs while any lane has an evaluation left, progress
    counts the solver's estimate until it is done, and a budget counts the solver's cap on evaluations.
    """
    if cache is None and any(lane.levers.cache_threshold > 0 for lane in lanes):
        cache = BlockCache()
    groups = [LaneGroup(bundle, [lanes[i] for i in positions], positions) for positions in group_lanes(lanes)]
    if budget is not None:
        budget.check([(g.max_nfe, lane.rows) for g in groups for lane in g.lanes], max_batch)
    shared = SharedRows([lane.seed for lane in lanes])
    start = time.perf_counter()
    try:
        with torch.inference_mode():
            _rounds(bundle, groups, shared, callback, cancel, max_batch, cache, start)
    finally:  # an adaptive solver's thread ends with the request, stopped or failed too
        for g in groups:
            g.close()
    latents = _on_host(groups)
    # a GPU runs behind the host (past its first rounds the loop reads nothing back, without a cache or
    # previews), so host times per round mean little: each lane's share of the request's is by its rows
    per_row = (time.perf_counter() - start) / sum(sum(g.rows_done) for g in groups)
    results: dict[int, LaneResult] = {}
    for g, group_latents in zip(groups, latents):
        timesteps = [float(t) for t in g.timesteps]
        for position, lane, x, rows in zip(g.positions, g.lanes, group_latents, g.rows_done):
            results[position] = LaneResult(lane, x, len(timesteps), per_row * rows, list(timesteps))
    return [results[position] for position in range(len(lanes))]


def _planned(groups: list[LaneGroup]) -> tuple[int, int, str]:
    """The request's rounds and evaluations, with "about " while an adaptive solver is still choosing its steps."""
    rounds = max(g.estimated_nfe for g in groups)
    nfe = sum(g.estimated_nfe * len(g.lanes) for g in groups)
    return rounds, nfe, "about " if any(g.adaptive and not g.done for g in groups) else ""


def _rounds(
    bundle: DiTBundle,
    groups: list[LaneGroup],
    shared: SharedRows,
    callback: Callable[[Progress], None] | None,
    cancel: threading.Event | None,
    max_batch: int | None,
    cache: BlockCache | None,
    start: float,
) -> None:
    """Round after round while any group has an evaluation left: one batched forward, then every group steps."""
    round_index = 0
    while active := [g for g in groups if not g.done]:
        total_rounds, nfe_total, about = _planned(groups)
        _check_cancel(cancel, f"Stopped after {round_index} of {about}{total_rounds} rounds.")
        where = f"round {round_index + 1} of {about}{total_rounds}"
        out = _forward(bundle, active, shared, max_batch, cancel, where, cache)
        progress = None
        if callback is not None:
            progress = Progress(
                round=round_index + 1, total_rounds=total_rounds, nfe_done=0, nfe_total=nfe_total, elapsed=0.0
            )
        _step(active, out, progress)
        round_index += 1
        if progress is not None:
            # an adaptive solver knows more after its step: the estimate as it stands now
            progress.total_rounds, progress.nfe_total, about = _planned(groups)
            progress.estimated = bool(about)
            progress.nfe_done = sum(g.index * len(g.lanes) for g in groups)
            progress.elapsed = time.perf_counter() - start
            callback(progress)


def _on_host(groups: list[LaneGroup]) -> list[list[torch.Tensor]]:
    """Each group's latents, lane by lane, in float32 on the CPU: the request's one read-back a group
    (a lane's latents own their storage: a view would keep its whole group's)."""
    return [[x.clone() for x in g.x.float().cpu()] for g in groups]


def _step(active: list[LaneGroup], out: torch.Tensor, progress: Progress | None) -> None:
    """Every active group takes its rows of ``out``, guides them and steps."""
    row = 0
    for g in active:
        rows = g.rows
        model_out = g.model_output(out[row : row + rows])
        row += rows
        if progress is not None:
            x0 = g.x0_estimate(model_out).float().cpu()
            progress.x0.update(zip(g.positions, x0))
        g.step(model_out)


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
