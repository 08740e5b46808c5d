"""``python -m dit_demo bench``: the engine against diffusers' DiTPipeline, same model, same process.

Three ways to fill the same grid of samplers x step counts (one class, one seed): DiTPipeline
cell after cell (the reference), this engine cell after cell, and this engine with every cell
in one lock-step batch. Only samplers that DiTPipeline runs correctly are timed against it
(DDIM, DPM-Solver++); the others are timed for the engine alone. DiTPipeline hard-codes the
null class 1000, so on models with another class count both run without guidance (cfg 1).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import torch
from diffusers import DiTPipeline

import samplers
from dit_demo.runtime.block_cache import BlockCache
from dit_demo.runtime.bundle import DiTBundle
from dit_demo.runtime.engine import run, sample
from dit_demo.runtime.parameterization import DEFAULT_FAMILY
from dit_demo.runtime.request import Lane, check_lanes


def _timed(fn: Callable[[], object], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def run_pipeline(bundle: DiTBundle, lanes: list[Lane]) -> None:
    """DiTPipeline for lanes that share sampler, steps, cfg and seed: one call, one class label per lane."""
    first = lanes[0]
    scheduler = samplers.get(first.sampler).build(bundle.scheduler_config)
    pipe = DiTPipeline(transformer=bundle.transformer, vae=bundle.vae, scheduler=scheduler)
    pipe.set_progress_bar_config(disable=True)
    pipe(
        [lane.class_id for lane in lanes],
        guidance_scale=first.cfg_scale,
        num_inference_steps=first.steps,
        generator=torch.Generator("cpu").manual_seed(first.seed),
        output_type="np",  # float pixels on the CPU, as the engine's runs end: the same work, waited for
    )


def run_engine(bundle: DiTBundle, lanes: list[Lane], replay: dict | None = None) -> None:
    """The engine on the same lanes, decoding to float pixels on the CPU, where the pipeline's runs end.

    ``replay``: first-block cache decisions recorded on another model (``BlockCache.decisions``).
    """
    cache = BlockCache(replay=replay) if replay is not None else None
    results = run(bundle, check_lanes(bundle, lanes), cache=cache)
    bundle.decode(torch.stack([r.latents for r in results]))


def _nfe(bundle: DiTBundle, lane: Lane) -> int:
    """A cell's model evaluations: from its schedule, or for an adaptive solver, which knows them only after, a run."""
    sampler = samplers.get(lane.sampler)
    if getattr(sampler.scheduler_class, "adaptive", False):
        return sample(bundle, [lane])[0].nfe
    return sampler.nfe(lane.steps, bundle.scheduler_config)


def run_bench(
    bundle: DiTBundle, names: list[str], steps: list[int], cfg: float | None = None, repeats: int = 1
) -> dict:
    """Time every (sampler, steps) cell three ways; ``cfg`` None is the model's default."""
    cfg = bundle.default_cfg if cfg is None else cfg
    note = ""
    family = bundle.parameterization.family
    if family != DEFAULT_FAMILY:  # its samplers are none of DiTPipeline's, so guidance stays as asked
        note = f"DiTPipeline samples DiT models only; this {family} model's cells time the engine alone"
    elif bundle.null_class != 1000 and cfg != 1.0:
        note = (
            f"DiTPipeline cannot guide a {bundle.num_classes}-class model (null class hard-coded to 1000); "
            "timing both without guidance (cfg 1)"
        )
        cfg = 1.0
    lanes = [Lane(n, s, 0, 0, cfg) for n in names for s in steps]
    sample(bundle, lanes[:1])  # warm-up: first-call allocations are not what we measure

    rows = []
    for lane in lanes:
        fair = samplers.get(lane.sampler).pipeline_exact
        rows.append(
            {
                "sampler": lane.sampler,
                "steps": lane.steps,
                "nfe": _nfe(bundle, lane),
                "engine_s": _timed(lambda lane=lane: run_engine(bundle, [lane]), repeats),
                "pipeline_s": _timed(lambda lane=lane: run_pipeline(bundle, [lane]), repeats) if fair else float("nan"),
            }
        )
    batched = _timed(lambda: run_engine(bundle, lanes), repeats)
    return {
        "model": bundle.name,
        "device": str(bundle.device),
        "dtype": str(bundle.dtype).removeprefix("torch."),
        "cfg": cfg,
        "repeats": repeats,
        "threads": torch.get_num_threads(),
        "note": note,
        "rows": rows,
        "batched_s": batched,
    }


def format_bench(result: dict) -> str:
    """The bench as the README shows it: a markdown table and the whole-grid totals."""
    lines = [f"note: {result['note']}"] if result["note"] else []
    lines += [
        f"model: {result['model']} on {result['device']} ({result['dtype']}), cfg {result['cfg']:g}, "
        f"best of {result['repeats']}; torch threads {result['threads']}",
        "| sampler | steps | NFE | DiTPipeline (s) | engine, one cell (s) | speed-up |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in result["rows"]:
        measured = not math.isnan(r["pipeline_s"])  # NaN: DiTPipeline is no reference for this sampler
        pipe_text = f"{r['pipeline_s']:.3f}" if measured else "n/a (wrong or unsupported)"
        ratio = f"{r['pipeline_s'] / r['engine_s']:.2f}x" if measured else "-"
        lines.append(f"| {r['sampler']} | {r['steps']} | {r['nfe']} | {pipe_text} | {r['engine_s']:.3f} | {ratio} |")
    rows, batched = result["rows"], result["batched_s"]
    sequential = sum(r["engine_s"] for r in rows)
    lines += [
        "",
        f"whole grid ({len(rows)} cells): engine cell after cell {sequential:.3f}s; "
        f"engine lock-step batch {batched:.3f}s ({sequential / batched:.2f}x faster)",
    ]
    fair = [r for r in rows if r["pipeline_s"] == r["pipeline_s"]]
    if fair:
        lines.append(
            f"cells DiTPipeline can run: DiTPipeline {sum(r['pipeline_s'] for r in fair):.3f}s vs engine "
            f"{sum(r['engine_s'] for r in fair):.3f}s cell after cell"
        )
    return "\n".join(lines)
