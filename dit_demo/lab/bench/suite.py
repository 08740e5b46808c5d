"""The speed suite: DiTPipeline against the engine (exact and fast), same process, same weights.

    python -m dit_demo bench --suite quick --json out/bench.json

Models: ``xl256-random`` (DiT-XL/2-256's architecture and an sd-vae-shaped VAE, built here with
random weights: right for timing, meaningless for images), ``embedded``, and ``xl256-free`` (the
XL shapes at no cost: DiTPipeline's loop against the engine's, ``free_model``). Workloads: ``single``
(one image, DPM-Solver++ 2M, cfg 4), ``batch8`` (8 classes at once) and ``grid3x3`` (3 samplers
x 3 step counts, one seed). Runners are interleaved and the median of the repeats is kept.

``engine_fast`` runs the fast preset's levers. Where one of them decides from the model's outputs
(the first-block cache), random weights would make meaningless decisions, so the XL stand-in
replays the decisions the trained embedded model makes on the same lanes (said in the results).
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable, Collection
from dataclasses import replace

import diffusers
import torch

import samplers
from dit_demo.lab.bench.cells import run_engine, run_pipeline
from dit_demo.lab.bench.free_model import FREE_MODEL
from dit_demo.lab.bench.report import RUNNERS
from dit_demo.runtime.block_cache import BlockCache
from dit_demo.runtime.bundle import DiTBundle
from dit_demo.runtime.devices import default_dtype
from dit_demo.runtime.engine import run
from dit_demo.runtime.levers import Levers, describe_preset, preset, with_model_levers
from dit_demo.runtime.request import Lane, check_lanes

WORKLOADS = ("single", "batch8", "grid3x3")
CFG = 4.0
QUICK_RUNS = 15  # rounds at least, where one takes under a second: a machine's noise is that size
FREE_RUNNERS = ("pipeline_fp32", "engine_exact")  # on the free model: the two loops, no levers
FREE_NOTE = "the loop alone: a transformer and VAE that cost nothing, in DiT-XL/2-256's shapes"


def half_dtype(device: torch.device) -> torch.dtype:
    """DiTPipeline's half precision: what the loader picks on a GPU (bf16, else fp16); bf16 on a CPU."""
    return default_dtype(device) if device.type == "cuda" else torch.bfloat16


def workload_cells(workload: str, bundle: DiTBundle, steps: int, grid_steps: tuple[int, ...]) -> list[list[Lane]]:
    """The engine's requests: one request per list. The pipeline runs each inner list cell by cell."""
    classes = list(range(min(8, bundle.num_classes)))
    if workload == "single":
        return [[Lane("dpmpp_2m", steps, classes[-1], 0, CFG)]]
    if workload == "batch8":
        return [[Lane("dpmpp_2m", steps, c, 0, CFG) for c in classes]]
    if workload == "grid3x3":
        # the samplers DiTPipeline runs as the engine does, so it can fill the grid too
        grid = [s.name for s in samplers.all_samplers() if s.pipeline_exact and s.name in samplers.BUILT_IN_NAMES]
        return [[Lane(name, n, classes[-1], 0, CFG) for name in grid for n in grid_steps]]
    raise ValueError(f"Unknown workload {workload!r}; choose from {', '.join(WORKLOADS)}.")


def _pipeline_job(bundle: DiTBundle, lanes: list[Lane]) -> Callable[[], object] | None:
    """DiTPipeline filling the same cells (batch8: one call with 8 labels), or None where it cannot."""
    if bundle.null_class != 1000:
        return None  # DiTPipeline hard-codes the null class 1000: it cannot guide other class counts
    groups = [lanes] if len({(lane.sampler, lane.steps) for lane in lanes}) == 1 else [[lane] for lane in lanes]

    def job():
        for group in groups:
            run_pipeline(bundle, group)

    return job


def recorded_decisions(recorder: DiTBundle, lanes: list[Lane]) -> dict:
    """The first-block cache's reuse decisions of a trained model on these lanes (classes taken
    modulo its class count), to be replayed by a model whose weights cannot make them."""
    fast = preset("fast", recorder.device)
    model = with_model_levers(recorder, fast)
    own = [replace(lane, class_id=lane.class_id % recorder.num_classes, levers=fast.lane) for lane in lanes]
    cache = BlockCache(record=True)
    run(model, check_lanes(model, own), cache=cache)
    return cache.decisions()


def runner_jobs(
    bundle: DiTBundle,
    lanes: list[Lane],
    runners: tuple[str, ...],
    recorder: DiTBundle | None = None,
    fast_model: DiTBundle | None = None,
) -> tuple[dict[str, Callable | None], str]:
    """Each runner's job for one workload (None where a runner cannot run it), and a note on how
    engine_fast's cache decisions were made. ``recorder``: the trained model whose decisions a
    random-weights bundle replays. ``fast_model``: the bundle under the fast preset's model levers,
    made once per model (a compiled one keeps its compiled shapes from workload to workload)."""
    fast = preset("fast", bundle.device)
    fast_lanes = [replace(lane, levers=fast.lane) for lane in lanes]
    replay, note = None, ""
    if fast.cache_threshold and recorder is not None and recorder is not bundle:
        replay = recorded_decisions(recorder, lanes)
        reused = sum(map(sum, replay.values())) / max(1, sum(map(len, replay.values())))
        note = f"first-block cache decisions replayed from {recorder.name} ({reused:.0%} of rows reuse)"
    jobs: dict[str, Callable | None] = {}
    for runner in runners:
        if runner == "pipeline_fp32":
            jobs[runner] = _pipeline_job(bundle, lanes)
        elif runner == "pipeline_half":
            jobs[runner] = _pipeline_job(with_model_levers(bundle, Levers(dtype=half_dtype(bundle.device))), lanes)
        elif runner == "engine_exact":
            jobs[runner] = lambda lanes=lanes: run_engine(bundle, lanes)
        elif runner == "engine_fast":
            model = fast_model or with_model_levers(bundle, fast)
            jobs[runner] = lambda b=model, lanes=fast_lanes: run_engine(b, lanes, replay)
        else:
            raise ValueError(f"Unknown runner {runner!r}; choose from {', '.join(RUNNERS)}.")
    return jobs, note


def time_interleaved(
    jobs: dict[str, Callable | None], repeats: int, warm_up: Collection[str] | None = None
) -> dict[str, float | None]:
    """Median seconds per runner; the runners take turns so drift hits them alike. The runners named in
    ``warm_up`` (default: all) run once untimed first (first-call allocations are not what we measure).
    Where a round of every runner takes under a second, there are at least ``QUICK_RUNS`` rounds."""
    runnable = {name: job for name, job in jobs.items() if job is not None}
    for name in runnable if warm_up is None else warm_up:
        if name in runnable:
            runnable[name]()
    times: dict[str, list[float]] = {name: [] for name in runnable}
    rounds, last = 0, 0.0
    while rounds < repeats or (rounds < QUICK_RUNS and last < 1.0):  # quick workloads: noise is their size
        for name, job in runnable.items():
            times[name].append(_seconds(job))  # the device's queue is waited for: no work left uncounted
        rounds, last = rounds + 1, sum(t[-1] for t in times.values())
    return {name: statistics.median(times[name]) if name in times else None for name in jobs}


def flops_check(bundle: DiTBundle, rows: int = 2) -> dict:
    """The transformer's achieved FLOP/s next to a plain matmul of its hidden size, in the same run."""
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.randn(rows, *bundle.latent_shape, device=bundle.device, dtype=bundle.dtype)
    t = torch.full((rows,), 500.0, device=bundle.device)
    y = torch.zeros(rows, dtype=torch.long, device=bundle.device)
    with torch.inference_mode():
        with FlopCounterMode(display=False) as counter:
            bundle.transformer(x, timestep=t, class_labels=y)
        flops = counter.get_total_flops()
        seconds = min(_seconds(lambda: bundle.transformer(x, timestep=t, class_labels=y)) for _ in range(3))
        hidden = bundle.transformer.config.num_attention_heads * bundle.transformer.config.attention_head_dim
        tokens = rows * (bundle.latent_size // bundle.transformer.config.patch_size) ** 2
        a = torch.randn(tokens, hidden, device=bundle.device, dtype=bundle.dtype)
        b = torch.randn(hidden, 4 * hidden, device=bundle.device, dtype=bundle.dtype)
        mm = min(_seconds(lambda: a @ b) for _ in range(5))
    return {
        "rows": rows,
        "transformer_gflop": flops / 1e9,
        "transformer_gflops_per_s": flops / seconds / 1e9,
        "matmul_gflops_per_s": 2 * tokens * hidden * 4 * hidden / mm / 1e9,
    }


def _seconds(fn: Callable[[], object]) -> float:
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start


def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else None
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "gpu": gpu,
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "threads": torch.get_num_threads(),
        "fast_preset": describe_preset("fast", "cuda" if gpu else "cpu"),
    }


def run_suite(
    bundles: dict[str, DiTBundle],
    workloads: tuple[str, ...],
    runners: tuple[str, ...],
    steps: int,
    grid_steps: tuple[int, ...],
    repeats: int = 1,
    progress: Callable[[str], None] = print,
    recorder: DiTBundle | None = None,
    previous: dict | None = None,
    checkpoint: Callable[[dict], None] | None = None,
) -> dict:
    """Every (model, workload, runner) timed; the result validates against the schema in the README.

    ``recorder``: the trained model whose cache decisions random-weights bundles replay.
    ``previous``: an earlier, interrupted run of the same suite; its finished workloads are kept and
    not timed again. ``checkpoint`` gets the data after every workload, so a long run can resume."""
    data = {
        "machine": machine(),
        "repeats": repeats,
        "steps": steps,
        "grid_steps": list(grid_steps),
        "results": [],
        "flops": {},
        "compile_seconds": {},
        "quick_runs": QUICK_RUNS,
    }
    if previous and all(previous.get(k) == data[k] for k in ("repeats", "steps", "grid_steps")):
        _keep_finished(data, previous)
    for model, bundle in bundles.items():
        free = model == FREE_MODEL  # the loop alone: no arithmetic to count, no levers to apply
        if model not in data["flops"] and not free:
            data["flops"][model] = flops_check(bundle)
        fast_model = bundle if free else with_model_levers(bundle, preset("fast", bundle.device))
        compiled = ("engine_fast",) if hasattr(fast_model.transformer, "first_calls") else ()
        warm = False
        for workload in workloads:
            done = {r["runner"] for r in data["results"] if (r["model"], r["workload"]) == (model, workload)}
            # a runner finished earlier is not timed again
            todo = tuple(r for r in runners if r not in done and (r in FREE_RUNNERS or not free))
            if not todo:
                progress(f"{model} {workload}: kept from the earlier run")
                continue
            for lanes in workload_cells(workload, bundle, steps, grid_steps):
                jobs, fast_note = runner_jobs(bundle, lanes, todo, recorder if "random" in model else None, fast_model)
                # one warm-up per model and runner in a process: a minute-long XL workload needs no other,
                # but a compiled model compiles each new bucket size on its first call
                timed = time_interleaved(jobs, repeats, warm_up=None if not warm else compiled)
                warm = True
                nfe = sum(samplers.get(lane.sampler).nfe(lane.steps, bundle.scheduler_config) for lane in lanes)
                for runner, seconds in timed.items():
                    note = "" if seconds is not None else "DiTPipeline hard-codes the null class 1000"
                    note = fast_note if runner == "engine_fast" else FREE_NOTE if free else note
                    data["results"].append(
                        {
                            "model": model,
                            "workload": workload,
                            "runner": runner,
                            "seconds": seconds,
                            "images": len(lanes),
                            "nfe": nfe,
                            "note": note,
                        }
                    )
                    progress(f"{model} {workload} {runner}: " + (f"{seconds:.3f}s" if seconds is not None else note))
            _keep_first_calls(data, model, fast_model)
            _in_order(data["results"], list(bundles), workloads, runners)
            if checkpoint is not None:
                checkpoint(data)
    return data


def _in_order(results: list[dict], *orders: list | tuple) -> None:
    """Rows by model, workload and runner in the order asked for, wherever a resumed run timed them."""

    def rank(row: dict) -> tuple:
        values = (row["model"], row["workload"], row["runner"])
        return tuple(order.index(v) if v in order else len(order) for v, order in zip(values, orders))

    results.sort(key=rank)


def _keep_finished(data: dict, previous: dict) -> None:
    """What an interrupted run of the same suite finished: its timings, FLOP/s, first calls and quality.
    A row without seconds is timed again (a runner that cannot run a workload says so again at no cost)."""
    data["results"] = [r for r in previous["results"] if r["seconds"] is not None]
    data["flops"] = dict(previous.get("flops", {}))
    data["compile_seconds"] = dict(previous.get("compile_seconds", {}))
    if previous.get("quality"):  # kept in every checkpoint, so a second interruption loses nothing
        data["quality"] = previous["quality"]


def _keep_first_calls(data: dict, model: str, fast_model: DiTBundle) -> None:
    """The compiled path's cost, where fast compiles: each bucket size's first call, compiling included."""
    first_calls = getattr(fast_model.transformer, "first_calls", None)
    if first_calls:
        seen = {str(size): seconds for size, seconds in first_calls.items()}
        data["compile_seconds"][model] = {**data["compile_seconds"].get(model, {}), **seen}
