"""How sure a quality number is: bootstrap intervals over samples, a paired test between cells, and the
distribution-level metrics beyond Frechet distance (precision and recall, per-class Frechet distance).

Every cell of a sweep has the same sample count and the same sample order (sample i is class
i % classes with seed seed + i // classes), so one set of resampled indices (fixed seed) serves every
cell: the replicates of two cells are paired, and their difference has an interval of its own.

- Interval: the basic (reverse-percentile) bootstrap, 2 x estimate - the replicates' upper and lower
  quantiles. Frechet distance from N samples is biased upward (its trace term); the basic interval
  carries that bias back, where a plain percentile interval would sit above the true value.
- Distinguishable: two cells differ when the 95% basic interval of the difference of their
  replicates (paired: the same resampled samples) excludes 0.
- Across sweeps (another model's, say) the pairing holds exactly when both have the same sample count,
  classes and seed, and the same bootstrap: then sample i is the same class and seed in both, and
  resampled set r holds the same sample indices. ``unpaired`` says why two cells are not paired.
"""

from __future__ import annotations

import numpy as np
import torch

from dit_demo.lab.quality.metrics import feature_stats, frechet_distance

REPLICATES = 200
SEED = 0
LEVEL = 0.95
METHOD = f"basic bootstrap over samples, {REPLICATES} replicates, seed {SEED}, paired across cells"
K_NEIGHBOURS = 3  # Kynkaanniemi et al. 2019


def resamples(n: int, replicates: int = REPLICATES, seed: int = SEED) -> np.ndarray:
    """(replicates, n) indices drawn with replacement: the same for every cell of n samples."""
    return np.random.default_rng(seed).integers(0, n, size=(replicates, n))


def basic_interval(
    estimate: float, replicates: np.ndarray, level: float = LEVEL, bounds: tuple[float, float] = (-np.inf, np.inf)
) -> tuple[float, float]:
    """2 x estimate - the replicates' upper and lower quantiles, kept within the metric's ``bounds``."""
    lo, hi = np.quantile(replicates, [(1 - level) / 2, (1 + level) / 2])
    return float(np.clip(2 * estimate - hi, *bounds)), float(np.clip(2 * estimate - lo, *bounds))


def frechet_replicates(features: np.ndarray, reference: tuple, indices: np.ndarray) -> np.ndarray:
    return np.array([frechet_distance(feature_stats(features[i]), reference) for i in indices])


def mean_replicates(values: np.ndarray, indices: np.ndarray) -> np.ndarray:
    return np.asarray(values, dtype=np.float64)[indices].mean(axis=1)


def pairing(cell: dict) -> dict[str, int | str | None]:
    """What pairs a cell's samples with another cell's: its sample count, classes, seed and bootstrap
    (None where its sweep did not record one; the classes also show as its per-class Frechet distances)."""
    per_class = cell.get("frechet_per_class")
    classes = cell.get("classes", len(per_class) if isinstance(per_class, list) and per_class else None)
    return {
        "samples": cell.get("samples"),
        "classes": classes,
        "seed": cell.get("seed"),
        "bootstrap": (cell.get("bootstrap") or {}).get("method"),
    }


def unpaired(a: dict, b: dict) -> str | None:
    """Why cells ``a`` and ``b`` are not paired sample by sample, as a clause ("seed 0 against 1"); None
    where they are. Cells of one model with a record missing are taken as paired (a model's sweeps
    have always been read as one); across models each record must be there and agree."""
    known_a, known_b = pairing(a), pairing(b)
    for key, value_a in known_a.items():
        value_b = known_b[key]
        if value_a is not None and value_b is not None and value_a != value_b:
            return f"{key} {value_a} against {value_b}" if key != "bootstrap" else "their bootstraps differ"
        if (value_a is None or value_b is None) and a.get("model") != b.get("model"):
            return f"a sweep that does not record its {key}"
    return None


def distinguishable(a: dict, b: dict, metric: str = "frechet", level: float = LEVEL) -> bool | None:
    """Whether cells ``a`` and ``b`` (their ``metric`` and its paired replicates) differ at ``level``;
    None when either has no replicates (a sweep scored elsewhere) or their samples are not paired."""
    found = paired_difference(a, b, metric, level)
    return None if found is None else not found[1] <= 0 <= found[2]


def paired_difference(
    a: dict, b: dict, metric: str = "frechet", level: float = LEVEL
) -> tuple[float, float, float] | None:
    """``a``'s ``metric`` minus ``b``'s, with the basic interval of that paired difference; None when
    either has no replicates or their samples are not paired."""
    reps_a, reps_b = _replicates(a, metric), _replicates(b, metric)
    if reps_a is None or reps_b is None or len(reps_a) != len(reps_b) or unpaired(a, b) is not None:
        return None
    difference = a[metric] - b[metric]
    return (difference, *basic_interval(difference, reps_a - reps_b, level))


def _replicates(cell: dict, metric: str) -> np.ndarray | None:
    reps = (cell.get("bootstrap") or {}).get(metric)
    return None if reps is None else np.asarray(reps, dtype=np.float64)


def knn_radii(points: torch.Tensor, k: int = K_NEIGHBOURS) -> torch.Tensor:
    """Each point's distance to its k-th nearest other point."""
    distances = torch.cdist(points, points)
    return distances.kthvalue(k + 1, dim=1).values  # the 1st is the point itself


def inside(points: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor) -> torch.Tensor:
    """For each point, whether it lies in some centre's ball (the k-NN manifold estimate)."""
    return (torch.cdist(points, centres) <= radii[None]).any(dim=1)


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int = K_NEIGHBOURS) -> tuple[np.ndarray, np.ndarray]:
    """Improved precision and recall (Kynkaanniemi et al. 2019) as per-sample indicators: each fake
    sample inside the real manifold, each real sample inside the fake one (their means are the metrics)."""
    r, f = torch.as_tensor(real, dtype=torch.float64), torch.as_tensor(fake, dtype=torch.float64)
    precision = inside(f, r, knn_radii(r, k))
    recall = inside(r, f, knn_radii(f, k))
    return precision.numpy(), recall.numpy()


def per_class_frechet(features: np.ndarray, labels: np.ndarray, class_stats: dict[int, tuple]) -> list[float]:
    """Frechet distance of each class's samples against that class of the reference set."""
    labels = np.asarray(labels)
    return [frechet_distance(feature_stats(features[labels == c]), stats) for c, stats in sorted(class_stats.items())]


def spread_replicates(
    features: np.ndarray, labels: np.ndarray, class_stats: dict[int, tuple], indices: np.ndarray
) -> np.ndarray | None:
    """The per-class Frechet distances' sd on each resampled set: the same samples as the other replicates.
    None where a resampled set holds under two samples of some class (too few a class for a distance)."""
    labels = np.asarray(labels)
    classes = np.array(sorted(class_stats))
    if any(np.min((labels[i][:, None] == classes[None]).sum(axis=0)) < 2 for i in indices):
        return None
    return np.array([float(np.std(per_class_frechet(features[i], labels[i], class_stats))) for i in indices])


def summarize(
    features: np.ndarray,
    correct: np.ndarray,
    labels: np.ndarray,
    reference: tuple,
    class_stats: dict[int, tuple],
    real_features: np.ndarray,
) -> dict:
    """Every metric of one cell with its 95% interval, and the replicates that pair it with other cells."""
    indices = resamples(len(features))
    fd = frechet_distance(feature_stats(features), reference)
    fd_reps = frechet_replicates(features, reference, indices)
    share = (0.0, 1.0)  # a fraction's interval stays a fraction
    accuracy = float(np.mean(correct))
    acc_reps = mean_replicates(correct, indices)
    precision, recall = precision_recall(real_features, features)
    prec_reps = mean_replicates(precision, indices)  # over the generated samples
    rec_reps = mean_replicates(recall, resamples(len(recall), seed=SEED + 1))  # over the real ones
    per_class = per_class_frechet(features, labels, class_stats)
    spread, spread_reps = float(np.std(per_class)), spread_replicates(features, labels, class_stats, indices)
    # every metric keeps its replicates, so the paired test can tell any two cells apart on any of them
    replicates = {"frechet": fd_reps, "accuracy": acc_reps, "precision": prec_reps, "recall": rec_reps}
    if spread_reps is not None:
        replicates["frechet_class_spread"] = spread_reps
    return {
        "frechet": fd,
        "frechet_ci": basic_interval(fd, fd_reps, bounds=(0.0, np.inf)),
        "accuracy": accuracy,
        "accuracy_ci": basic_interval(accuracy, acc_reps, bounds=share),
        "precision": float(precision.mean()),
        "precision_ci": basic_interval(float(precision.mean()), prec_reps, bounds=share),
        "recall": float(recall.mean()),
        "recall_ci": basic_interval(float(recall.mean()), rec_reps, bounds=share),
        "frechet_per_class": per_class,
        "frechet_class_spread": spread,
        "frechet_class_spread_ci": None
        if spread_reps is None
        else basic_interval(spread, spread_reps, bounds=(0.0, np.inf)),
        "bootstrap": {"method": METHOD, "level": LEVEL, **{m: r.tolist() for m, r in replicates.items()}},
    }
