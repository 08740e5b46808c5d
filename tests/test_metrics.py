"""The Frechet distance against its closed form, on covariances as singular as the classifier's."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from dit_demo.lab.quality.metrics import feature_stats, frechet_distance


def _diagonal_gaussians(dead: int = 3) -> tuple[tuple, tuple, float]:
    """Two diagonal Gaussians with some dead (zero-variance) features, and their exact distance."""
    rng = np.random.default_rng(0)
    var_a, var_b = rng.uniform(0.5, 2.0, 8), rng.uniform(0.5, 2.0, 8)
    var_a[:dead] = var_b[:dead] = 0.0
    mu_a, mu_b = rng.normal(size=8), rng.normal(size=8)
    exact = ((mu_a - mu_b) ** 2).sum() + ((np.sqrt(var_a) - np.sqrt(var_b)) ** 2).sum()
    return (mu_a, np.diag(var_a)), (mu_b, np.diag(var_b)), exact


def test_frechet_distance_matches_the_closed_form_with_dead_features():
    a, b, exact = _diagonal_gaussians()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # singular covariances must not warn
        assert np.isclose(frechet_distance(a, b), exact, rtol=1e-9)


def test_frechet_distance_is_rotation_invariant():
    """A full (non-diagonal) covariance pair: rotate both Gaussians by the same orthogonal matrix."""
    (mu_a, s_a), (mu_b, s_b), exact = _diagonal_gaussians()
    q, _ = np.linalg.qr(np.random.default_rng(1).normal(size=(8, 8)))
    rotated = frechet_distance((q @ mu_a, q @ s_a @ q.T), (q @ mu_b, q @ s_b @ q.T))
    assert np.isclose(rotated, exact, rtol=1e-6)


def test_frechet_distance_of_a_feature_set_with_itself_is_zero():
    feats = np.random.default_rng(2).normal(size=(500, 16))
    feats[:, :5] = 0.0  # dead ReLU units
    stats = feature_stats(feats)
    assert abs(frechet_distance(stats, stats)) < 1e-8
    shifted = feature_stats(feats + 1.0)
    assert np.isclose(frechet_distance(stats, shifted), 16.0)  # only the means differ: ||1||^2


def test_the_basic_interval_reflects_the_replicates_about_the_estimate():
    from dit_demo.lab.quality.cell_metrics import basic_interval

    # replicates 11..20 around an estimate of 10: their 10% and 90% quantiles are 11.9 and 19.1, so the
    # basic interval is 2 x 10 - 19.1 = 0.9 to 2 x 10 - 11.9 = 8.1 (a percentile interval would be 11.9 to 19.1)
    assert basic_interval(10.0, np.arange(11.0, 21.0), level=0.8) == pytest.approx((0.9, 8.1))
    assert basic_interval(10.0, np.arange(11.0, 21.0), level=0.8, bounds=(1.0, 5.0)) == pytest.approx((1.0, 5.0))
