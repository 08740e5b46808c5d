"""What every training stage shares: the resumable loop, the batches, the learning rate, the latents and the EMA."""

from __future__ import annotations

import torch
from tqdm import tqdm

from dit_demo.training.architecture import Checkpoint


def dit_learning_rate(step: int, steps: int, base: float, warmup: int = 500, cooldown: int = 0) -> float:
    """Warm-up, constant, then a linear cool-down to zero (warmup-stable-decay).

    A constant middle lets a finished run be extended by resuming it with a larger ``--dit-steps``;
    the cool-down at the end is where the loss drops most for the time spent.
    """
    lr = base * min(1.0, (step + 1) / warmup)
    cooldown = min(cooldown, steps)
    if cooldown and step >= steps - cooldown:
        lr *= (steps - step) / cooldown
    return lr


def batches(n: int, batch: int, generator: torch.Generator):
    """Endless full batches of indices into ``n`` items, a fresh permutation each epoch."""
    while True:
        for idx in torch.randperm(n, generator=generator).split(batch):
            if len(idx) == batch:
                yield idx


def resumable_loop(name, model, opt, ckpt: Checkpoint, steps: int, step_fn, extra_state=None, every: int = 200):
    """Restores model, optimizer and RNG from ``ckpt`` when it exists, runs ``step_fn``, checkpoints."""
    state = ckpt.load()
    start = 0
    gen = torch.Generator().manual_seed(0)
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        gen.set_state(state["gen"])
        start = state["step"]
        if extra_state is not None:
            extra_state["load"](state)
        print(f"[{name}] resuming at step {start}/{steps}")
    bar = tqdm(range(start, steps), desc=name, initial=start, total=steps, dynamic_ncols=True)
    for step in bar:
        logs = step_fn(step, gen)
        bar.set_postfix(logs)
        if (step + 1) % every == 0 or step + 1 == steps:
            payload = {"model": model.state_dict(), "opt": opt.state_dict(), "gen": gen.get_state(), "step": step + 1}
            if extra_state is not None:
                payload.update(extra_state["save"]())
            ckpt.save(payload)


def encoded_latents(vae, images: torch.Tensor, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, float]:
    """The VAE posterior of every image, (mean, std) of shape (N, C, h, w), and its scaling factor: encoded once,
    so each step draws its latents afresh from the posterior at the cost of a multiply-add."""
    vae = vae.to(device).eval()
    with torch.no_grad():
        dists = [vae.encode(images[i : i + 512].to(device)).latent_dist for i in range(0, len(images), 512)]
    return torch.cat([d.mean for d in dists]), torch.cat([d.std for d in dists]), vae.config.scaling_factor


def ema_update(ema: torch.nn.Module, model: torch.nn.Module, step: int, decay: float) -> None:
    """One EMA step, with the usual warm-up ((1 + step) / (10 + step)) so early weights do not linger."""
    decay = min(decay, (1 + step) / (10 + step))
    with torch.no_grad():
        for p_ema, p in zip(ema.parameters(), model.parameters()):
            p_ema.lerp_(p, 1.0 - decay)
