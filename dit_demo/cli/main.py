"""Command line: ``python -m dit_demo generate|compare|bench|evaluate ...`` (see ``--help``)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from tqdm import tqdm

import samplers
from dit_demo.cli.compare_models import load_compared
from dit_demo.cli.lever_flags import add_lever_args, levers_from_args
from dit_demo.lab.compare.run import comparison_work, run_comparison
from dit_demo.lab.outputs.generate import batch_grid, generate, generation_lanes
from dit_demo.lab.outputs.pngmeta import save_png
from dit_demo.lab.outputs.records import ComparisonRecord
from dit_demo.lab.specs.compare_spec import ComparisonSpec
from dit_demo.lab.specs.defaults import Defaults
from dit_demo.lab.specs.grammar import parse_names, parse_steps
from dit_demo.runtime.devices import parse_device
from dit_demo.runtime.loader import load_bundle
from dit_demo.runtime.model_copies import load_with_levers
from dit_demo.runtime.parameterization import DEFAULT_FAMILY
from dit_demo.runtime.parsing import SPACINGS
from dit_demo.runtime.request import check_lanes

BENCH_SAMPLERS = "ddim,dpmpp_2m,ddpm"
SPACING_HELP = "step grid: trailing (default; every sampler starts at t = T-1), linspace (DiT's own grid), leading"


def _progress_bar(desc: str):
    """A bar drawn on the first progress report: a request refused by validation draws none."""
    bar = tqdm(desc=desc, unit="nfe", dynamic_ncols=True, delay=3600)

    def callback(progress):
        if progress.round == 1:
            bar.delay = 0
        bar.total = progress.nfe_total
        bar.n = progress.nfe_done
        bar.set_postfix(round=f"{progress.round}/{progress.total_rounds}")
        bar.refresh()

    return bar, callback


def _add_model_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model", default=None, help="local folder or hub id (default: the embedded Fashion-MNIST model)"
    )
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, mps")
    add_lever_args(parser)


def _load(args) -> tuple:
    """The model with the request's model levers applied (dtype, int8), and the levers."""
    device = parse_device(args.device)
    levers = levers_from_args(args, device)
    return load_with_levers(args.model, device, levers), levers


def cmd_generate(args) -> None:
    bundle, levers = _load(args)
    args.sampler = args.sampler or Defaults.for_bundle(bundle).sampler
    steps = Defaults.for_bundle(bundle).steps_for(args.sampler) if args.steps is None else args.steps
    lanes = generation_lanes(
        args.classes,
        args.sampler,
        steps,
        args.cfg,
        args.seed,
        args.batch,
        args.cfg_channels,
        args.spacing,
        levers.lane,
    )
    check_lanes(bundle, lanes)  # before the progress bar: a bad request prints one line, nothing else
    bar, callback = _progress_bar("generate")
    results = generate(bundle, lanes, callback=callback)
    bar.close()
    out = Path(args.out)
    if len(results) == 1:
        save_png(results[0].image, out, results[0].parameters)
    else:
        grid, parameters = batch_grid(results, args.batch)
        save_png(grid, out, parameters)
    print(f"saved {out} ({len(results)} image(s), {sum(r.nfe for r in results)} NFE)")


def cmd_compare(args) -> None:
    if args.presets and args.preset != "exact":
        raise ValueError("--presets makes the speed preset an axis; leave --preset at exact with it.")
    models, bundle, levers, axis = load_compared(args)
    defaults = Defaults.for_bundle(bundle)
    cfg = defaults.cfg if args.cfg is None else args.cfg
    spec = ComparisonSpec.build(
        args.samplers or ",".join(defaults.compare_samplers),
        args.steps,
        args.class_name,
        seed=args.seed,
        cfg_text=cfg,
        cfg_channels=args.cfg_channels,
        reference=args.reference,
        spacing=args.spacing,
        levers=levers.lane,
        max_steps=bundle.num_train_timesteps,
        seeds=args.seeds,
        presets=args.presets,
        family=bundle.parameterization.family,
        **axis,
    )
    comparison_work(models, spec)  # every lane checked on its model before any sampling
    bar, callback = _progress_bar("compare")
    comparison = run_comparison(models, spec, callback=callback)
    bar.close()
    save_png(
        comparison.grid,
        args.out,
        ComparisonRecord(bundle.name, spec, comparison.model_hash, comparison.family).to_dict(),
    )
    print(comparison.markdown_table())
    ref = comparison.reference[0]
    print(
        f"\nreference: {ref.sampler} @ {ref.steps} steps{', each model its own' if axis else ''}; total wall time "
        f"{comparison.seconds:.2f}s; grid saved to {args.out}. {comparison.left_out()}"
    )


def cmd_samplers(args) -> None:
    from samplers.table import family_tables, markdown_table

    print((family_tables if args.by_family else markdown_table)(samplers.all_samplers()))


def cmd_suite(args) -> None:
    from dit_demo.lab.bench import report as bench_report
    from dit_demo.lab.bench import suite
    from dit_demo.lab.bench.free_model import FREE_MODEL, xl256_free
    from dit_demo.lab.bench.xl_random import xl256_random
    from dit_demo.lab.quality.lever_quality import quality

    device = parse_device(args.device)
    quick = args.suite == "quick"
    previous = None
    if args.resume and args.json and Path(args.json).exists():  # an interrupted run: keep what it finished
        previous = json.loads(Path(args.json).read_text())
    embedded = load_bundle(None, device, "fp32")  # timed in the full suite; its cache decisions replay on XL
    bundles = {"xl256-random": xl256_random(device)}
    if not quick:
        bundles["embedded"] = embedded
        bundles[FREE_MODEL] = xl256_free(device)
    print(f"models: {', '.join(b.name for b in bundles.values())}")
    cpu_xl = device.type == "cpu"
    data = suite.run_suite(
        bundles,
        ("single",) if quick else suite.WORKLOADS,
        ("pipeline_fp32", "engine_exact", "engine_fast") if quick else bench_report.RUNNERS,
        steps=10 if quick else 25,
        grid_steps=(5, 10, 20) if cpu_xl else (10, 25, 50),
        repeats=1 if quick else args.repeats,
        recorder=embedded,
        progress=lambda line: print(line, flush=True),
        previous=previous,
        checkpoint=(lambda data: bench_report.write_json(data, args.json)) if args.json else None,
    )
    if not quick and not data.get("quality"):
        print("quality of each lever on the embedded model (evaluator, 1000 samples)...", flush=True)
        data["quality"] = quality(embedded)
    print(bench_report.markdown(data))
    for model, f in data["flops"].items():
        print(
            f"{model}: transformer {f['transformer_gflops_per_s']:.1f} GFLOP/s at {f['rows']} rows "
            f"vs plain matmul {f['matmul_gflops_per_s']:.1f} GFLOP/s"
        )
    if args.json:
        bench_report.write_json(data, args.json)
        print(f"wrote {args.json}")


def cmd_bench(args) -> None:
    from dit_demo.lab.bench.cells import format_bench, run_bench

    if args.readme:
        from dit_demo.lab.bench.report import refresh_readme

        print(f"refreshed {', '.join(refresh_readme(args.readme)) or 'no'} bench block(s) in {args.readme}")
        return None
    if args.suite:
        return cmd_suite(args)
    bundle, _ = _load(args)
    family = bundle.parameterization.family
    # DiT's default row set is DiTPipeline's fair samplers and DDPM; a flow model's, its own family's first three
    fitting = BENCH_SAMPLERS if family == DEFAULT_FAMILY else ",".join(s.name for s in samplers.for_family(family)[:3])
    names = parse_names(args.samplers or fitting, family)
    print(
        format_bench(
            run_bench(bundle, names, parse_steps(args.steps, bundle.num_train_timesteps), args.cfg, args.repeats)
        )
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m dit_demo", description="DiT Sampler Lab command line")
    sub = parser.add_subparsers(dest="command", required=True)

    gen = sub.add_parser("generate", help="generate images for one or more classes")
    gen.add_argument("classes", nargs="+", help="class names, synonyms or ids")
    gen.add_argument(
        "--sampler", default=None, help=f"one of {', '.join(samplers.names())} (default: {Defaults.sampler} for a DiT)"
    )
    gen.add_argument(
        "--steps", type=int, default=None, help="default: the sampler's own (`python -m dit_demo samplers`)"
    )
    gen.add_argument("--cfg", type=float, default=None, help="guidance scale (default: the model's own, 4 for DiT-XL)")
    gen.add_argument("--cfg-channels", type=int, default=None, help="3 = guidance as in the original DiT code")
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--batch", type=int, default=1, help="images per class (seeds seed, seed+1, ...)")
    gen.add_argument("--spacing", choices=SPACINGS, default=None, help=SPACING_HELP)
    gen.add_argument("--out", default="out/generate.png")
    _add_model_args(gen)
    gen.set_defaults(func=cmd_generate)

    cmp_ = sub.add_parser("compare", help="samplers x step counts on one seed: a labeled grid and a table")
    cmp_.add_argument(
        "--samplers",
        default=None,
        help=f"comma list of samplers or variants, e.g. ddim,dpmpp_2m[karras=true],ddpm[spacing=linspace] (default: "
        f"{','.join(Defaults.compare_samplers)} for a DiT, every sampler of the model's family otherwise)",
    )
    cmp_.add_argument("--steps", default=Defaults.compare_steps, help="e.g. 10,25,50 or 10-50 (+10) or 5-50 [4]")
    cmp_.add_argument("--class", dest="class_name", default="0", help="class name, synonym or id")
    cmp_.add_argument(
        "--cfg", default=None, help="one cfg scale, or a comma list for a cfg axis (default: the model's)"
    )
    cmp_.add_argument("--cfg-channels", type=int, default=None)
    cmp_.add_argument("--seed", type=int, default=0)
    cmp_.add_argument("--seeds", type=int, default=1, help="a seed axis: seeds seed, seed+1, ... (distances: mean, sd)")
    cmp_.add_argument("--presets", default=None, help="speed presets as an axis, e.g. exact,fast")
    cmp_.add_argument(
        "--reference", default=None, help="sampler@steps, e.g. ddim@250 (default: highest-step deterministic cell)"
    )
    cmp_.add_argument("--spacing", choices=SPACINGS, default=None, help=SPACING_HELP)
    cmp_.add_argument("--models", default=None, help="a model axis: comma list of folders or hub ids (not --model)")
    cmp_.add_argument("--out", default="out/compare.png")
    _add_model_args(cmp_)
    cmp_.set_defaults(func=cmd_compare)

    lst = sub.add_parser("samplers", help="list the registered samplers (built-ins and plugins) as a table")
    lst.add_argument("--by-family", action="store_true", help="one table per model family, with options worth knowing")
    lst.set_defaults(func=cmd_samplers)

    bench = sub.add_parser("bench", help="time the engine against diffusers' DiTPipeline, side by side")
    bench.add_argument("--samplers", default=None, help=f"default: {BENCH_SAMPLERS} (a flow model: its own family's)")
    bench.add_argument("--steps", default="10,25,50")
    bench.add_argument("--cfg", type=float, default=None, help="guidance scale (default: the model's own)")
    bench.add_argument("--repeats", type=int, default=1)
    bench.add_argument(
        "--suite",
        choices=("quick", "full"),
        default=None,
        help="DiTPipeline vs engine exact/fast on DiT-XL/2-256 (random weights) and the embedded model",
    )
    bench.add_argument("--json", default=None, help="with --suite: write the results as JSON here")
    bench.add_argument(
        "--readme", default=None, help="rewrite the README's bench blocks from dit_demo/assets/bench/*.json"
    )
    bench.add_argument(
        "--resume", action="store_true", help="with --suite and --json: keep the workloads an interrupted run finished"
    )
    _add_model_args(bench)
    bench.set_defaults(func=cmd_bench)

    from dit_demo.lab.interchange.dit_import import add_commands

    add_commands(sub)  # import, export: checkpoints of the original DiT code

    ev = sub.add_parser("evaluate", help="same as python -m dit_demo.evaluate", add_help=False)
    ev.set_defaults(func=None)

    args, rest = parser.parse_known_args(argv)
    if args.command == "evaluate":
        from dit_demo.cli.evaluate import main as evaluate_main

        return evaluate_main(rest)
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    start = time.perf_counter()
    try:
        args.func(args)
    except (ValueError, FileNotFoundError, FileExistsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    print(f"done in {time.perf_counter() - start:.1f}s", file=sys.stderr)


if __name__ == "__main__":
    main()
