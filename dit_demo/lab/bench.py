"""``python -m dit_demo bench``: the engine against diffusers' DiTPipeline, same model, same process.

Three ways to fill the same grid of samplers x step counts (one class, one seed, cfg > 1):
DiTPipeline cell after cell (the reference), this engine cell after cell, and this engine with
every cell in one lock-step batch. Only samplers that DiTPipeline runs correctly are timed
against it (DDIM, DPM-Solver++); the others are timed for the engine alone.
"""

from __future__ import annotations

import time

import torch
from diffusers import DiTPipeline

import samplers
from dit_demo.runtime.engine import Lane, decode, sample
from dit_demo.runtime.loader import load_bundle
from dit_demo.runtime.request import parse_names, parse_steps

PIPELINE_FAIR = {"ddim", "dpmpp_2m", "dpmpp_3m"}  # DiTPipeline is a valid reference for these


def _timed(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def run_bench(args) -> list[dict]:
    bundle = load_bundle(args.model, args.device, args.dtype)
    if bundle.null_class != 1000 and args.cfg != 1.0:
        # DiTPipeline hard-codes the null class 1000 and crashes on other class counts with guidance
        print(f"note: DiTPipeline cannot guide a {bundle.num_classes}-class model (null class hard-coded to 1000); "
              "timing both without guidance (cfg 1)")
        args.cfg = 1.0
    names, steps_list = parse_names(args.samplers), parse_steps(args.steps)
    class_id = 0
    lanes = [Lane(n, s, class_id, 0, args.cfg) for n in names for s in steps_list]
    sample(bundle, lanes[:1])  # warm-up: first-call allocations are not what we measure

    rows = []
    for lane in lanes:
        # the pipeline always decodes, so the engine's number includes its decode too
        ours = _timed(lambda lane=lane: decode(bundle, sample(bundle, [lane])[0].latents), args.repeats)
        theirs = float("nan")
        if lane.sampler in PIPELINE_FAIR:
            pipe = DiTPipeline(transformer=bundle.transformer, vae=bundle.vae,
                               scheduler=samplers.get(lane.sampler).build(bundle.scheduler_config))
            pipe.set_progress_bar_config(disable=True)

            def run_pipeline(pipe=pipe, steps=lane.steps):
                generator = torch.Generator("cpu").manual_seed(0)
                pipe([class_id], guidance_scale=args.cfg, num_inference_steps=steps, generator=generator, output_type="pt")

            theirs = _timed(run_pipeline, args.repeats)
        nfe = samplers.get(lane.sampler).nfe(lane.steps, bundle.scheduler_config)
        rows.append({"sampler": lane.sampler, "steps": lane.steps, "nfe": nfe, "engine_s": ours, "pipeline_s": theirs})
    batched = _timed(lambda: decode(bundle, torch.stack([r.latents for r in sample(bundle, lanes)])), args.repeats)

    print(f"model: {bundle.name} on {bundle.device} ({str(bundle.dtype).removeprefix('torch.')}), cfg {args.cfg:g}, "
          f"best of {args.repeats}; torch threads {torch.get_num_threads()}")
    print("| sampler | steps | NFE | DiTPipeline (s) | engine, one cell (s) | speed-up |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        ratio = r["pipeline_s"] / r["engine_s"] if r["pipeline_s"] == r["pipeline_s"] else float("nan")
        pipe_text = f"{r['pipeline_s']:.3f}" if r["pipeline_s"] == r["pipeline_s"] else "n/a (wrong or unsupported)"
        print(f"| {r['sampler']} | {r['steps']} | {r['nfe']} | {pipe_text} | {r['engine_s']:.3f} | "
              + (f"{ratio:.2f}x |" if ratio == ratio else "- |"))
    sequential = sum(r["engine_s"] for r in rows)
    pipe_rows = [r for r in rows if r["pipeline_s"] == r["pipeline_s"]]
    print(f"\nwhole grid ({len(lanes)} cells): engine cell after cell {sequential:.3f}s; "
          f"engine lock-step batch {batched:.3f}s ({sequential / batched:.2f}x faster)")
    if pipe_rows:
        print(f"cells DiTPipeline can run: DiTPipeline {sum(r['pipeline_s'] for r in pipe_rows):.3f}s vs engine "
              f"{sum(r['engine_s'] for r in pipe_rows):.3f}s cell after cell")
    return rows
