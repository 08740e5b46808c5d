"""SiT's interpolant paths (Linear, GVP, VP) and what its samplers derive from them: drift, score, diffusion, interval.

A path writes x_t = alpha_t x_data + sigma_t noise, t running from 0 (noise) to 1 (data) (Ma et al. 2024, SiT's
``transport/path.py``). Each quantity a sampler needs is linear in the state x and the model output, so it is
given here as a pair of coefficients ``(on_x, on_output)`` at one time t, computed in float64 from the float32 t
the sampler visits. Where a formula divides by zero (SBDM's diffusion at t = 0, a score at t = 1) the value is
infinite or NaN, as SiT's own float arithmetic gives it, rather than an exception.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

PATHS = ("Linear", "GVP", "VP")
PREDICTIONS = ("velocity", "score", "noise")
# SiT's diffusion forms by lower-case name; SiT's command line offers "increasing-decreasing" but its table spells
# it "inccreasing-decreasing", so SiT itself cannot run that form: the right spelling is the only one taken here
DIFFUSIONS = {
    "sigma": "sigma",
    "constant": "constant",
    "sbdm": "SBDM",
    "linear": "linear",
    "decreasing": "decreasing",
    "increasing-decreasing": "increasing-decreasing",
}
VP_SIGMA_MIN, VP_SIGMA_MAX = 0.1, 20.0  # path.VPCPlan's defaults, which SiT's create_transport keeps


@dataclass(frozen=True)
class PathPoint:
    """A path at one t: its coefficients and their t-derivatives, d_alpha / alpha, and SiT's ``compute_drift``
    variance (the SBDM diffusion), all float64."""

    alpha: float
    d_alpha: float
    sigma: float
    d_sigma: float
    alpha_ratio: float
    drift_var: float


def check_transport(path_type: str, prediction: str) -> None:
    """A ``ValueError`` unless ``path_type`` and ``prediction`` are names SiT's train.py takes."""
    if path_type not in PATHS or prediction not in PREDICTIONS:
        raise ValueError(
            f"Unknown SiT transport path_type={path_type}, prediction={prediction}; SiT's paths are "
            f"{', '.join(PATHS)} and its predictions {', '.join(PREDICTIONS)}."
        )


def path_at(path_type: str, t: float) -> PathPoint:
    """``path_type``'s coefficients at t (torch float64 scalars: a division by zero gives inf, not an exception)."""
    t = torch.tensor(float(t), dtype=torch.float64)
    if path_type == "Linear":
        alpha, d_alpha, sigma, d_sigma = t, torch.ones_like(t), 1 - t, -torch.ones_like(t)
        ratio = 1 / t
    elif path_type == "GVP":
        half = t * math.pi / 2
        alpha, d_alpha = torch.sin(half), math.pi / 2 * torch.cos(half)
        sigma, d_sigma = torch.cos(half), -math.pi / 2 * torch.sin(half)
        ratio = math.pi / (2 * torch.tan(half))
    elif path_type == "VP":
        spread = VP_SIGMA_MAX - VP_SIGMA_MIN
        log_mean = -0.25 * (1 - t) ** 2 * spread - 0.5 * (1 - t) * VP_SIGMA_MIN
        d_log_mean = 0.5 * (1 - t) * spread + 0.5 * VP_SIGMA_MIN  # = beta_t / 2
        alpha, d_alpha = torch.exp(log_mean), torch.exp(log_mean) * d_log_mean
        sigma = torch.sqrt(1 - torch.exp(2 * log_mean))
        d_sigma = torch.exp(2 * log_mean) * (2 * d_log_mean) / (-2 * sigma)
        ratio = d_log_mean
    else:
        check_transport(path_type, "velocity")
    # VPCPlan's compute_drift gives beta_t / 2 directly; the Linear and GVP form reduces to it on the VP path
    var = ratio if path_type == "VP" else ratio * sigma**2 - sigma * d_sigma
    return PathPoint(*(float(v) for v in (alpha, d_alpha, sigma, d_sigma, ratio, var)))


def _div(a: float, b: float) -> float:
    """a / b with IEEE answers where b is 0 (inf or NaN), as a float32 division on the device gives them."""
    return float(torch.tensor(a, dtype=torch.float64) / b)


def score_coefficients(point: PathPoint, prediction: str) -> tuple[float, float]:
    """The score grad log p_t(x) = a x + b output, from the model's prediction (SiT's ``get_score``)."""
    if prediction == "score":
        return 0.0, 1.0
    if prediction == "noise":  # x_t = alpha x_data + sigma eps: the score is -eps / sigma
        return 0.0, _div(-1.0, point.sigma)
    # from a velocity (path.get_score_from_velocity): (alpha / d_alpha * v - x) / var
    reverse_ratio = _div(point.alpha, point.d_alpha)
    var = point.sigma**2 - reverse_ratio * point.d_sigma * point.sigma
    return _div(-1.0, var), _div(reverse_ratio, var)


def ode_coefficients(point: PathPoint, prediction: str) -> tuple[float, float]:
    """The probability-flow drift = a x + b output (SiT's ``get_drift``): the velocity itself, or from the score,
    d_alpha / alpha x + var score."""
    if prediction == "velocity":
        return 0.0, 1.0
    on_x, on_out = score_coefficients(point, prediction)
    return point.alpha_ratio + point.drift_var * on_x, point.drift_var * on_out


def diffusion_at(path_type: str, form: str, norm: float, t: float) -> float:
    """SiT's diffusion coefficient w(t) (``compute_diffusion``) for one of the forms in ``DIFFUSIONS``."""
    t = float(t)
    if form == "constant":
        return norm
    if form == "SBDM":
        return norm * path_at(path_type, t).drift_var
    if form == "sigma":
        return norm * path_at(path_type, t).sigma
    if form == "linear":
        return norm * (1 - t)
    if form == "decreasing":
        return 0.25 * (norm * math.cos(math.pi * t) + 1) ** 2
    return norm * math.sin(math.pi * t) ** 2  # increasing-decreasing


def sde_coefficients(path_type: str, prediction: str, form: str, norm: float, t: float) -> tuple[float, float]:
    """The SDE drift = a x + b output: the probability-flow drift plus w(t) times the score (``sample_sde``)."""
    point = path_at(path_type, t)
    drift, score = ode_coefficients(point, prediction), score_coefficients(point, prediction)
    w = diffusion_at(path_type, form, norm, t)
    return drift[0] + w * score[0], drift[1] + w * score[1]


def data_coefficients(point: PathPoint, prediction: str) -> tuple[float, float]:
    """The data estimate x_data = a x_t + b output, solving x_t = alpha x_data + sigma noise for x_data."""
    if prediction == "noise":
        return _div(1.0, point.alpha), _div(-point.sigma, point.alpha)
    if prediction == "score":  # noise = -sigma score
        return _div(1.0, point.alpha), _div(point.sigma**2, point.alpha)
    # v = d_alpha x_data + d_sigma noise, with the path's x_t: two equations in x_data and noise
    det = point.d_sigma * point.alpha - point.sigma * point.d_alpha
    return _div(point.d_sigma, det), _div(-point.sigma, det)


def default_eps(path_type: str, prediction: str, train_eps: float | None, sample_eps: float | None) -> float:
    """SiT's sample_eps as ``create_transport`` settles it: 1e-3 on the VP path and for score or noise models
    unless train_eps was given (then sample_eps as given: SiT keys both on train_eps), 0 for velocity elsewhere."""
    if path_type != "VP" and prediction == "velocity":
        return 0.0
    if train_eps is None:
        return 1e-3
    if sample_eps is None:
        raise ValueError("This SiT transport gives train_eps without sample_eps; SiT needs both or neither.")
    return float(sample_eps)


def sit_interval(
    path_type: str, prediction: str, eps: float, sde: bool, diffusion: str = "sigma", last_step_size: float = 0.0
) -> tuple[float, float]:
    """(t0, t1) as SiT's ``check_interval`` gives them for sampling: the VP path stops eps short of the data
    (an SDE, ``last_step_size`` short), the others integrate all of [0, 1] for a velocity ODE and keep eps off
    the ends otherwise (t0 = eps only for SBDM's SDE or a score or noise model)."""
    t0, t1 = 0.0, 1.0
    end = 1 - eps if (not sde or last_step_size == 0) else 1 - last_step_size
    if path_type == "VP":
        t1 = end
    elif prediction != "velocity" or sde:
        t0 = eps if (diffusion == "SBDM" and sde) or prediction != "velocity" else 0.0
        t1 = end
    return t0, t1
