"""Evaluate samplers on a Fashion-MNIST bundle: class accuracy, Frechet distance, NFE, wall time.

    python -m dit_demo.evaluate --per-class 50 --out-dir eval

For every registered sampler x step count (plus DDPM at 250 steps) it draws N samples per
class with fixed seeds, classifies them with the shipped classifier and compares the
classifier's penultimate features with those of the 10k Fashion-MNIST test images. Two
reference rows come first, at the same N: real training images and their VAE round trip.
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

import samplers
from dit_demo.lab.quality import cell_metrics
from dit_demo.lab.quality.metrics import feature_stats, frechet_distance
from dit_demo.lab.sweep.run import cell_name, sample_cell
from dit_demo.runtime.bundle import DiTBundle
from dit_demo.runtime.levers import LaneLevers, Levers
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
    replicates (``lab/quality/cell_metrics.py``)."""
    preds, feats = classify(classifier, images_to_classifier_input(images))
    labels = np.asarray(labels)
    correct = preds.numpy() == labels
    counts = np.bincount(labels, minlength=classifier.num_classes)
    if counts.min() < 2 or len(feats) <= cell_metrics.K_NEIGHBOURS:  # too few for covariances and neighbours
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
    return cell_metrics.summarize(feats, correct, labels, test_set_stats(classifier, data_dir), class_stats, real)


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

    Each row's samples are a cell of a sweep (``lab/sweep/run.py``); with ``sweep_dir`` its shards are
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
                    made["nfe"] if made.get("nfe") is not None else sampler.nfe(steps, bundle.scheduler_config),
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
