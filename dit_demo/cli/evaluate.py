"""``python -m dit_demo.evaluate``: the evaluator's command line (dit_demo.lab.quality.evaluate does the work).

python -m dit_demo.evaluate --per-class 50 --out-dir eval

For every registered sampler x step count (plus DDPM at 250 steps) it draws N samples per
class with fixed seeds, classifies them with the shipped classifier and compares the
classifier's penultimate features with those of the 10k Fashion-MNIST test images. Two
reference rows come first, at the same N: real training images and their VAE round trip.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

import samplers
from dit_demo.cli.lever_flags import add_lever_args, levers_from_args
from dit_demo.lab.quality.evaluate import FashionClassifier, default_rows, evaluate, markdown
from dit_demo.lab.specs.grammar import parse_names, parse_steps
from dit_demo.runtime.checkpoints import EMBEDDED_MODEL
from dit_demo.runtime.devices import parse_device
from dit_demo.runtime.model_copies import load_with_levers


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m dit_demo.evaluate", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default=None, help="bundle folder or hub id (default: embedded model)")
    parser.add_argument("--classifier", default=None, help="classifier folder (default: the bundle's classifier/)")
    parser.add_argument("--samplers", default=None, help="comma-separated (default: every one of the model's family)")
    parser.add_argument("--steps", default="5,10,25,50")
    parser.add_argument("--ddpm-steps", type=int, default=250, help="extra DDPM row (the paper's setting); 0 to skip")
    parser.add_argument("--per-class", type=int, default=50)
    parser.add_argument("--cfg", type=float, default=None, help="guidance scale (default: the model's own default)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--device", default="auto")
    add_lever_args(parser)
    parser.add_argument("--out-dir", default="out/eval")
    args = parser.parse_args(argv)
    try:
        device = parse_device(args.device)
        levers = levers_from_args(args, device)
        bundle = load_with_levers(args.model, device, levers)
        classifier_dir = (
            Path(args.classifier)
            if args.classifier
            else bundle.extras.get("classifier_dir", EMBEDDED_MODEL / "classifier")
        )
        classifier = FashionClassifier.load(classifier_dir)
        names = args.samplers or ",".join(s.name for s in samplers.for_family(bundle.parameterization.family))
        rows = default_rows(parse_names(names), parse_steps(args.steps), args.ddpm_steps)
        for name, _ in rows:
            samplers.get(name)
        if args.per_class < 1:
            raise ValueError("--per-class must be at least 1.")
    except (ValueError, FileNotFoundError) as exc:
        raise SystemExit(f"error: {exc}") from None
    start = time.perf_counter()
    cfg = bundle.default_cfg if args.cfg is None else args.cfg
    results = evaluate(
        bundle,
        classifier,
        rows,
        args.per_class,
        cfg,
        args.seed,
        args.data_dir,
        lane_levers=levers.lane,
        sweep_dir=Path(args.out_dir) / "sweeps",
    )
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    table = markdown(results, cfg, args.per_class)
    (out / "evaluation.md").write_text(table + "\n")
    meta = {
        "model": bundle.name,
        "cfg": cfg,
        "per_class": args.per_class,
        "seed": args.seed,
        "total_seconds": time.perf_counter() - start,
        "torch_threads": torch.get_num_threads(),
        "dtype": str(bundle.dtype).removeprefix("torch."),
        "levers": levers.describe(),
        "guidance_interval": list(levers.guidance_interval) if levers.guidance_interval else None,
        "cache_threshold": levers.cache_threshold,
    }
    (out / "evaluation.json").write_text(json.dumps({"meta": meta, "rows": results}, indent=2))
    print(table)
    print(f"\nwrote {out / 'evaluation.md'} and {out / 'evaluation.json'} in {meta['total_seconds']:.0f}s")


if __name__ == "__main__":
    main()
