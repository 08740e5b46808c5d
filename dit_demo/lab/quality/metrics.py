"""Distances between images and latents, and the Frechet distance between feature sets."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image


def latent_rmse(a: torch.Tensor, b: torch.Tensor) -> float:
    """Root-mean-square difference of two latents (unit-variance space, so ~1.4 means unrelated)."""
    return float((a.float() - b.float()).pow(2).mean().sqrt())


def pixel_rmse(a: Image.Image, b: Image.Image) -> float:
    """RMSE of two images in [0, 1] units."""
    x = np.asarray(a.convert("RGB"), dtype=np.float64) / 255.0
    y = np.asarray(b.convert("RGB"), dtype=np.float64) / 255.0
    return float(np.sqrt(((x - y) ** 2).mean()))


def feature_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    features = np.asarray(features, dtype=np.float64)
    return features.mean(0), np.cov(features, rowvar=False)


def frechet_distance(stats_a: tuple[np.ndarray, np.ndarray], stats_b: tuple[np.ndarray, np.ndarray]) -> float:
    """||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^1/2), as in FID (Heusel et al. 2017)."""
    (mu1, s1), (mu2, s2) = stats_a, stats_b
    # Tr (S_a S_b)^1/2 is the sum of the square roots of the eigenvalues of S_a S_b, which are
    # real and >= 0 for covariances. Unlike scipy's sqrtm this stays exact (and quiet) when dead
    # ReLU features make both covariances singular, as the classifier's do.
    eigenvalues = np.linalg.eigvals(s1 @ s2).real.clip(min=0)
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.sqrt(eigenvalues).sum())
