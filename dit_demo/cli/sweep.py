"""``python -m dit_demo.sweep``: the sweep's command line, its run across processes, and the summary
(the sweep itself, its shards and files, are in ``sweep.py``)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import torch

from dit_demo.lab.sweep import run as sweep_module
from dit_demo.lab.sweep.run import (
    MAX_SAMPLES,
    Sweep,
    SweepSpec,
    cell_name,
    check_out_dir,
    nfe_of,
    write_manifest,
)
from dit_demo.runtime.bundle import DiTBundle
from dit_demo.runtime.levers import Levers
from dit_demo.runtime.request import Lane, check_lanes

log = logging.getLogger(sweep_module.__name__)  # the sweep's own log: one file per process


def parse_args(argv: list[str] | None = None):
    import argparse

    from dit_demo.cli.lever_flags import add_lever_args

    parser = argparse.ArgumentParser(
        prog="python -m dit_demo.sweep",
        description=sweep_module.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", default=None, help="bundle folder or hub id (default: the embedded model)")
    parser.add_argument("--samplers", default="dpmpp_2m", help="comma list of samplers or variants")
    parser.add_argument("--steps", default="25", help="e.g. 10,25,50 or 10-50 (+10)")
    parser.add_argument("--cfg", default=None, help="one cfg scale or a comma list (default: the model's)")
    parser.add_argument("--num-samples", type=int, default=1000, help="samples per cell")
    parser.add_argument("--seed", type=int, default=0, help="sample i uses seed + i // classes")
    parser.add_argument("--shard-size", type=int, default=100, help="samples per shard (one lock-step batch)")
    parser.add_argument("--cfg-channels", type=int, default=None, help="3 = guidance as in the original DiT code")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="CPU threads per process (default 1: scale with processes; part of the result)",
    )
    parser.add_argument("--out", required=True, help="the sweep's folder (created; the same one resumes)")
    parser.add_argument("--png", action="store_true", help="also write every image as DIR/png/<cell>/<index>.png")
    parser.add_argument("--force-new", action="store_true", help="replace another sweep's files in --out")
    parser.add_argument("--no-metrics", action="store_true", help="skip class accuracy and Frechet distance")
    add_lever_args(parser)
    return parser.parse_args(argv)


def build(args, device) -> tuple[SweepSpec, DiTBundle, Levers]:
    """The sweep's spec and model from its arguments; a ValueError says what is wrong."""
    from dit_demo.cli.lever_flags import levers_from_args
    from dit_demo.lab.specs.grammar import parse_floats, parse_names, parse_steps
    from dit_demo.runtime.model_copies import load_with_levers
    from dit_demo.runtime.parsing import as_int

    levers = levers_from_args(args, device)
    names = parse_names(args.samplers)
    num_samples = as_int("--num-samples", args.num_samples, 1, MAX_SAMPLES)
    shard_size = as_int("--shard-size", args.shard_size, 1, 1024)
    seed = as_int("--seed", args.seed, 0, 2**62)
    bundle = load_with_levers(args.model, device, levers)
    steps = parse_steps(args.steps, bundle.num_train_timesteps)
    cfgs = parse_floats(args.cfg) if args.cfg is not None else [bundle.default_cfg]
    spec = SweepSpec(
        bundle.name,
        tuple(names),
        tuple(steps),
        tuple(cfgs),
        num_samples=num_samples,
        seed=seed,
        shard_size=shard_size,
        levers=levers.describe(),
        cfg_channels=args.cfg_channels,
        threads=as_int("--threads", args.threads, 1, 256),
    )
    # one lane per cell checked now, so a bad value is one line before any work, not a failed shard
    check_lanes(
        bundle,
        [Lane(s, n, 0, seed, c, cfg_channels=args.cfg_channels, levers=levers.lane) for s, n, c in spec.cell_keys()],
    )
    return spec, bundle, levers


def main(argv: list[str] | None = None) -> None:
    from accelerate import PartialState

    args = parse_args(argv)
    # on a machine without a GPU (or with accelerate's --cpu) the processes talk over gloo (MULTI_CPU)
    cpu = os.environ.get("ACCELERATE_USE_CPU", "false").lower() == "true" or not torch.cuda.is_available()
    state = PartialState(cpu=cpu)
    try:
        # fp32 matrix kernels split their sums by thread count: the same threads per process in every
        # run is what makes one process and K processes write the same bytes (other thread counts
        # change a few pixels)
        spec, bundle, levers = build(args, state.device)  # checks --threads with the other arguments
        torch.set_num_threads(spec.threads)
        out = Path(args.out)
        if state.is_main_process or not args.force_new:  # every process stops with the same message
            check_out_dir(out, spec, args.force_new)
    except (ValueError, FileNotFoundError) as exc:
        raise SystemExit(f"error: {exc}") from None
    sweep = Sweep(spec, bundle, levers, out)
    _setup_log(out, state.process_index)
    if state.is_main_process:
        write_manifest(out, spec, {"status": "running", "processes": state.num_processes})
    state.wait_for_everyone()
    try:
        work(sweep, state)
    except RuntimeError as exc:  # one line naming the item; accelerate's launcher then stops the others
        raise SystemExit(f"error: {exc}. Finished shards are kept: the same command resumes.") from None
    state.wait_for_everyone()
    if state.is_main_process:
        finish(sweep, args, state.num_processes)


def _setup_log(out: Path, rank: int) -> None:
    (out / "logs").mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(out / "logs" / f"process-{rank}.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)


def work(sweep: Sweep, state) -> None:
    """This process's share of the shards; the main one also shows the whole sweep's progress."""
    from tqdm import tqdm

    everything = sweep.spec.shards()
    with state.split_between_processes(everything) as mine:
        todo = sweep.missing(list(mine))
    log.info("process %d: %d shard(s) to run, %d already done", state.process_index, len(todo), len(mine) - len(todo))
    bar = tqdm(total=len(everything), desc="sweep", unit="shard", disable=not state.is_main_process)
    bar.update(len(everything) - len(sweep.missing(everything)))
    for cell, shard in todo:
        sampler, steps, cfg = sweep.spec.cell_keys()[cell]
        first = shard * sweep.spec.shard_size
        last = min(first + sweep.spec.shard_size, sweep.spec.num_samples) - 1
        where = f"{cell_name(sampler, steps, cfg)} shard {shard} (samples {first}-{last})"
        try:
            seconds = sweep.run_shard(cell, shard)
        except Exception as exc:  # name the item; finished shards stay, so the same command resumes
            log.error("failed on %s: %s", where, exc)
            raise RuntimeError(f"process {state.process_index} failed on {where}: {exc}") from exc
        log.info("%s done in %.1fs", where, seconds)
        bar.n = len(everything) - len(sweep.missing(everything))  # every process's shards, counted on disk
        bar.refresh()
    bar.close()


def finish(sweep: Sweep, args, processes: int) -> list[dict]:
    """Assemble every cell, score it where the model has an evaluator, write sweep.json, print the table."""
    spec, bundle = sweep.spec, sweep.bundle
    scorer = None if args.no_metrics else _scorer(bundle)
    rows = []
    for cell, (sampler, steps, cfg) in enumerate(spec.cell_keys()):
        made = sweep.assemble(cell)
        row = {
            "cell": cell_name(sampler, steps, cfg),
            "sampler": sampler,
            "steps": steps,
            "cfg": cfg,
            "nfe": nfe_of(spec, bundle, cell, made),
            "samples": len(made["images"]),
            "classes": bundle.num_classes,  # what pairs two sweeps' samples, with the seed and the count
            "seconds": made["seconds"],  # wall time: some process was working on the cell
            "process_seconds": made["process_seconds"],  # summed over processes
            "images_per_second": len(made["images"]) / made["seconds"] if made["seconds"] else None,
        }
        if scorer is not None:
            row.update(scorer(made["images"], made["labels"]))
        if args.png:
            _write_pngs(sweep.out / "png" / row["cell"], made["images"])
        rows.append(row)
    write_manifest(sweep.out, spec, {"status": "complete", "processes": processes, "cells": rows})
    print(summary_table(rows))
    return rows


def _scorer(bundle: DiTBundle):
    """Class accuracy and Frechet distance for models with an evaluator (the embedded one), else None."""
    if "classifier_dir" not in bundle.extras:
        return None
    from dit_demo.lab.quality.evaluate import score_images
    from dit_demo.training.classifier import FashionClassifier

    try:
        classifier = FashionClassifier.load(bundle.extras["classifier_dir"])
        return lambda images, labels: score_images(classifier, images, labels)
    except (OSError, ValueError) as exc:
        log.warning("no metrics: %s", exc)
        return None


def _write_pngs(folder: Path, images: np.ndarray) -> None:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(images):
        Image.fromarray(image).save(folder / f"{i:06d}.png")


def summary_table(rows: list[dict]) -> str:
    scored = "accuracy" in rows[0]
    lines = [
        "| cell | NFE | samples | wall time (s) | images/s |"
        + (" class accuracy (95% interval) | Frechet distance (95% interval) |" if scored else ""),
        "|---|---:|---:|---:|---:|" + ("---:|---:|" if scored else ""),
    ]
    for r in rows:
        line = f"| {r['cell']} | {r['nfe']} | {r['samples']} | {r['seconds']:.1f} | {r['images_per_second'] or 0:.1f} |"
        if scored:
            line += f" {100 * r['accuracy']:.1f}%{_ci(r, 'accuracy', 100)} | {r['frechet']:.2f}{_ci(r, 'frechet')} |"
        lines.append(line)
    return "\n".join(lines)


def _ci(row: dict, metric: str, scale: float = 1.0) -> str:
    """ " [lo, hi]": the metric's 95% bootstrap interval, where the sweep computed one."""
    ci = row.get(f"{metric}_ci")
    return "" if not ci else f" [{scale * ci[0]:.2f}, {scale * ci[1]:.2f}]"
