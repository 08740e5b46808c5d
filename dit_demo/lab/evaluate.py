"""Evaluate samplers on a Fashion-MNIST bundle: class accuracy, Frechet distance, NFE, wall time.

    python -m dit_demo.evaluate --per-class 50 --out-dir eval

For every registered sampler x step count (plus DDPM at 250 steps) it draws N samples per
class with fixed seeds, classifies them with the shipped classifier and compares the
classifier's penultimate features with those of the 10k Fashion-MNIST test images. Two
reference rows come first, at the same N: real training images and their VAE round trip.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import asdict
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

import samplers
from dit_demo.lab import uncertainty
from dit_demo.lab.grammar import parse_names, parse_steps
from dit_demo.lab.lever_flags import add_lever_args, levers_from_args
from dit_demo.lab.metrics import feature_stats, frechet_distance
from dit_demo.lab.sweep import cell_name, sample_cell
from dit_demo.runtime.bundle import DiTBundle
from dit_demo.runtime.devices import parse_device
from dit_demo.runtime.levers import LaneLevers, Levers
from dit_demo.runtime.loader import EMBEDDED_MODEL
from dit_demo.runtime.model_copies import load_with_levers
from dit_demo.training.classifier import FashionClassifier
from dit_demo.training.data import load_fashion_mnist


def to_classifier_input(bundle: DiTBundle, latents: torch.Tensor) -> torch.Tensor:
    """Decode latents to (N, 1, 32, 32) grayscale in [-1, 1], the classifier's input."""
    out = []
    for i in range(0, len(latents), 256):
        x = bundle.decode(latents[i : i + 256], batch=256).mean(1, keepdim=True)  # (n, 1, H, W)
        out.append(F.interpolate(x, size=(32, 32), mode="bilinear", antialias=True) if x.shape[-1] != 32 else x)
    return torch.cat(out)


def images_to_classifier_input(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W, C) images (a sweep's ``arr_0``) -> (N, 1, 32, 32) grayscale in [-1, 1]."""
    x = torch.from_numpy(np.ascontiguousarray(images)).float().mean(-1, keepdim=True).permute(0, 3, 1, 2) / 127.5 - 1
    return F.interpolate(x, size=(32, 32), mode="bilinear", antialias=True) if x.shape[-1] != 32 else x


def score_images(
    classifier: FashionClassifier, images: np.ndarray, labels: np.ndarray, data_dir: str | None = None
) -> dict:
    """Class accuracy, Frechet distance, precision and recall (against the test set) of uint8 images with
    their labels, each with its 95% bootstrap interval, the per-class Frechet distances and the paired
    replicates (``lab/uncertainty.py``)."""
    preds, feats = classify(classifier, images_to_classifier_input(images))
    labels = np.asarray(labels)
    correct = preds.numpy() == labels
    counts = np.bincount(labels, minlength=classifier.num_classes)
    if counts.min() < 2 or len(feats) <= uncertainty.K_NEIGHBOURS:  # too few for covariances and neighbours
        fd = (
            frechet_distance(feature_stats(feats), test_set_stats(classifier, data_dir))
            if len(feats) > 1
            else float("nan")
        )
        return {"accuracy": float(correct.mean()), "frechet": fd}
    test_feats, test_labels = test_set_features(classifier, data_dir)
    class_stats = {c: feature_stats(test_feats[test_labels == c]) for c in range(classifier.num_classes)}
    # the real samples of precision and recall: as many as generated, classes balanced like them
    real = test_feats[
        balanced_subset(torch.from_numpy(test_labels), list(range(classifier.num_classes)), int(counts.max())).numpy()
    ]
    return uncertainty.summarize(feats, correct, labels, test_set_stats(classifier, data_dir), class_stats, real)


def vae_round_trip(bundle: DiTBundle, images: torch.Tensor) -> torch.Tensor:
    """Encode and decode real images: the best any sampler can do through this VAE."""
    size, channels = bundle.image_size, int(bundle.vae.config.in_channels)
    x = (
        images
        if images.shape[-1] == size
        else F.interpolate(images, size=(size, size), mode="bilinear", antialias=True)
    )
    return to_classifier_input(bundle, bundle.encode(x.expand(-1, channels, -1, -1)))


def balanced_subset(labels: torch.Tensor, classes: list[int], per_class: int) -> torch.Tensor:
    """Indices of the first ``per_class`` images of each class, class by class."""
    return torch.cat([torch.nonzero(labels == c).flatten()[:per_class] for c in classes])


def classify(classifier: FashionClassifier, images: torch.Tensor) -> tuple[torch.Tensor, np.ndarray]:
    with torch.inference_mode():
        feats = torch.cat([classifier.features(images[i : i + 1000]) for i in range(0, len(images), 1000)])
        preds = classifier.head(feats).argmax(1)
    return preds, feats.numpy()


@lru_cache(maxsize=2)
def test_set_features(classifier: FashionClassifier, data_dir: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The classifier's features of the 10k test images and their labels (kept: a sweep scores many cells)."""
    test_images, test_labels = load_fashion_mnist("test", data_dir)
    return classify(classifier, test_images)[1], test_labels.numpy()


@lru_cache(maxsize=2)
def test_set_stats(classifier: FashionClassifier, data_dir: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Feature mean and covariance of the 10k test images: what every row is measured against."""
    return feature_stats(test_set_features(classifier, data_dir)[0])


def evaluate(
    bundle: DiTBundle,
    classifier: FashionClassifier,
    rows: list[tuple[str, int]],
    per_class: int,
    cfg: float,
    seed: int = 0,
    data_dir: str | None = None,
    progress: bool = True,
    lane_levers: LaneLevers | None = None,
    references: bool = True,
    sweep_dir: str | Path | None = None,
) -> list[dict]:
    """A row per (sampler, steps), after two reference rows (left out with ``references=False``).

    Each row's samples are a cell of a sweep (``lab/sweep.py``); with ``sweep_dir`` its shards are
    kept there, so an interrupted evaluation resumes."""
    reference = test_set_stats(classifier, data_dir)
    classes = list(range(bundle.num_classes))
    results = []
    # reference rows at the same N: real training images (FD noise floor at this N) and their VAE
    # round trip (the floor for any sampler of this latent model); a sampler row near these is as
    # good as the measurement can tell
    if references:
        results += _reference_rows(bundle, classifier, classes, per_class, reference, data_dir)
    levers = Levers(**asdict(lane_levers or LaneLevers()))
    with tempfile.TemporaryDirectory() as scratch:
        where = Path(sweep_dir) if sweep_dir is not None else Path(scratch)
        for name, steps in tqdm(rows, desc="evaluate", disable=not progress):
            # the samples come from a sweep cell: sample i is class i % classes with seed + i // classes
            made = sample_cell(
                bundle, levers, name, steps, cfg, per_class * len(classes), seed, where / cell_name(name, steps, cfg)
            )
            preds, feats = classify(classifier, images_to_classifier_input(made["images"]))
            sampler = samplers.get(name)
            results.append(
                _row(
                    name,
                    sampler.label,
                    steps,
                    sampler.nfe(steps, bundle.scheduler_config),
                    preds,
                    torch.from_numpy(made["labels"]),
                    feats,
                    reference,
                    made["seconds"],
                )
            )
    return results


def _reference_rows(bundle, classifier, classes, per_class, reference, data_dir) -> list[dict]:
    train_images, train_labels = load_fashion_mnist("train", data_dir)
    idx = balanced_subset(train_labels, classes, per_class)
    real, real_labels = train_images[idx], train_labels[idx]
    rows = []
    for key, label, images in (
        ("real", "Real training images (reference)", real),
        ("vae", "VAE round trip of them (reference)", vae_round_trip(bundle, real)),
    ):
        preds, feats = classify(classifier, images)
        rows.append(_row(key, label, 0, 0, preds, real_labels, feats, reference, 0.0))
    return rows


def _row(
    name: str,
    label: str,
    steps: int,
    nfe: int,
    preds: torch.Tensor,
    target: torch.Tensor,
    feats: np.ndarray,
    reference: tuple[np.ndarray, np.ndarray],
    seconds: float,
) -> dict:
    return {
        "sampler": name,
        "label": label,
        "steps": steps,
        "nfe": nfe,
        "accuracy": float((preds == target).float().mean()),
        "frechet": frechet_distance(feature_stats(feats), reference) if len(feats) > 1 else float("nan"),
        "seconds": seconds,
        "samples": len(target),
    }


def markdown(results: list[dict], cfg: float, per_class: int) -> str:
    lines = [
        f"cfg {cfg:g}, {per_class} samples per class; Frechet distance on the classifier's 128-d features "
        "against the 10k test images (lower is better)",
        "",
        "| sampler | steps | NFE | class accuracy | Frechet distance | wall time (s) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        steps, nfe, secs = (r["steps"], r["nfe"], f"{r['seconds']:.1f}") if r["steps"] else ("–", "–", "–")
        lines.append(f"| {r['label']} | {steps} | {nfe} | {100 * r['accuracy']:.1f}% | {r['frechet']:.2f} | {secs} |")
    return "\n".join(lines)


def default_rows(names: list[str], steps: list[int], ddpm_steps: int) -> list[tuple[str, int]]:
    rows = [(n, s) for n in names for s in steps]
    if "ddpm" in names and ddpm_steps and ("ddpm", ddpm_steps) not in rows:
        rows.append(("ddpm", ddpm_steps))
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m dit_demo.evaluate", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default=None, help="bundle folder or hub id (default: embedded model)")
    parser.add_argument("--classifier", default=None, help="classifier folder (default: the bundle's classifier/)")
    parser.add_argument("--samplers", default=",".join(samplers.names()))
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
        rows = default_rows(parse_names(args.samplers), parse_steps(args.steps), args.ddpm_steps)
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
