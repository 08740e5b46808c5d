"""The improved-DDPM hybrid loss that DiT trains with: L_simple + L_vlb (learned variance).

Follows ``training_losses`` in facebookresearch/DiT ``diffusion/gaussian_diffusion.py``:
the VLB term sees a *detached* eps so that it only trains the variance channels, and the
variance is interpolated in log space between beta_t and the clipped posterior variance.
"""

from __future__ import annotations

import math

import torch


class GaussianDiffusion:
    """Linear-beta diffusion constants (float64 for accuracy, gathered per sample)."""

    def __init__(self, num_timesteps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02):
        self.num_timesteps = num_timesteps
        betas = torch.linspace(beta_start, beta_end, num_timesteps, dtype=torch.float64)
        alphas_cumprod = torch.cumprod(1.0 - betas, 0)
        prev = torch.cat([torch.ones(1, dtype=torch.float64), alphas_cumprod[:-1]])
        self.betas = betas
        self.alphas_cumprod = alphas_cumprod
        self.posterior_variance = betas * (1.0 - prev) / (1.0 - alphas_cumprod)
        # posterior variance is 0 at t=0: clip to the t=1 value, as improved DDPM does
        self.posterior_log_variance_clipped = torch.log(
            torch.cat([self.posterior_variance[1:2], self.posterior_variance[1:]])
        )
        self.posterior_mean_coef1 = betas * prev.sqrt() / (1.0 - alphas_cumprod)
        self.posterior_mean_coef2 = (1.0 - prev) * (1.0 - betas).sqrt() / (1.0 - alphas_cumprod)

    @staticmethod
    def _at(values: torch.Tensor, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return values.to(like.device)[t].to(like.dtype).view(-1, *([1] * (like.ndim - 1)))

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        ab = self._at(self.alphas_cumprod, t, x0)
        return ab.sqrt() * x0 + (1.0 - ab).sqrt() * noise

    def q_posterior(self, x0: torch.Tensor, xt: torch.Tensor, t: torch.Tensor):
        mean = self._at(self.posterior_mean_coef1, t, xt) * x0 + self._at(self.posterior_mean_coef2, t, xt) * xt
        return mean, self._at(self.posterior_log_variance_clipped, t, xt)

    def p_mean_log_variance(self, eps: torch.Tensor, v: torch.Tensor, xt: torch.Tensor, t: torch.Tensor):
        """The model's reverse-step Gaussian from eps and the raw variance output v in [-1, 1]."""
        min_log = self._at(self.posterior_log_variance_clipped, t, xt)
        max_log = self._at(self.betas.log(), t, xt)
        frac = (v + 1.0) / 2.0
        log_variance = frac * max_log + (1.0 - frac) * min_log
        ab = self._at(self.alphas_cumprod, t, xt)
        pred_x0 = (xt - (1.0 - ab).sqrt() * eps) / ab.sqrt()
        mean, _ = self.q_posterior(pred_x0, xt, t)
        return mean, log_variance


def normal_kl(mean1, logvar1, mean2, logvar2) -> torch.Tensor:
    return 0.5 * (-1.0 + logvar2 - logvar1 + torch.exp(logvar1 - logvar2) + (mean1 - mean2) ** 2 * torch.exp(-logvar2))


def discretized_gaussian_log_likelihood(x, means, log_scales) -> torch.Tensor:
    """Log-likelihood of x under a Gaussian discretized to 256 bins on [-1, 1] (DDPM decoder)."""
    centered = x - means
    inv_stdv = torch.exp(-log_scales)
    cdf_plus = torch.special.ndtr(inv_stdv * (centered + 1.0 / 255.0))
    cdf_min = torch.special.ndtr(inv_stdv * (centered - 1.0 / 255.0))
    log_cdf_plus = torch.log(cdf_plus.clamp(min=1e-12))
    log_one_minus_cdf_min = torch.log((1.0 - cdf_min).clamp(min=1e-12))
    log_probs = torch.where(
        x < -0.999,
        log_cdf_plus,
        torch.where(x > 0.999, log_one_minus_cdf_min, torch.log((cdf_plus - cdf_min).clamp(min=1e-12))),
    )
    return log_probs


def hybrid_loss(
    diffusion: GaussianDiffusion,
    model_output: torch.Tensor,
    x0: torch.Tensor,
    xt: torch.Tensor,
    t: torch.Tensor,
    noise: torch.Tensor,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Mean over the batch of MSE(eps) + L_vlb (bits per dim), DiT's default (lambda = 1, plain MSE)."""
    channels = x0.shape[1]
    eps, v = model_output[:, :channels], model_output[:, channels:]
    mse = ((eps - noise) ** 2).mean(dim=(1, 2, 3))
    model_mean, model_log_var = diffusion.p_mean_log_variance(eps.detach(), v, xt, t)
    true_mean, true_log_var = diffusion.q_posterior(x0, xt, t)
    kl = normal_kl(true_mean, true_log_var, model_mean, model_log_var).mean(dim=(1, 2, 3)) / math.log(2.0)
    nll = -discretized_gaussian_log_likelihood(x0, model_mean, 0.5 * model_log_var).mean(dim=(1, 2, 3)) / math.log(2.0)
    vb = torch.where(t == 0, nll, kl)
    loss = (mse + vb).mean()
    return loss, {"mse": mse.mean().item(), "vb": vb.mean().item()}
