"""Train the embedded Fashion-MNIST SiT: the DiT's network and recipe, trained as SiT trains (a Linear-path velocity).

The one change from the DiT stage is the objective, SiT's default transport: t ~ U(0, 1), x_t = t x + (1 - t) noise,
and the network regresses the velocity x - noise with a plain mean squared error. Everything else is the DiT's
recipe (network size, batch, learning-rate schedule, EMA, 10% label dropout, the same VAE and its posterior
drawn afresh each step), so the two embedded models differ in how they were trained and nothing else.
"""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import torch
import torch.nn.functional as F

from dit_demo.runtime.loader import save_bundle
from dit_demo.runtime.parameterization import SIT_FAMILY
from dit_demo.training.architecture import DEFAULT_CFG, Checkpoint, autocast
from dit_demo.training.data import CLASS_NAMES, load_fashion_mnist
from dit_demo.training.loop import batches, dit_learning_rate, ema_update, encoded_latents, resumable_loop
from samplers.flow import SiTFlowScheduler

# what the model folder says about its time, as an imported SiT checkpoint's says it
SIT_TIME = "t in [0, 1], 0 = noise, 1 = data; x_t = t x_data + (1 - t) noise; v = x_data - noise"


def velocity_loss(model, x1: torch.Tensor, labels: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """SiT's training loss for a velocity model on the Linear path (its train_eps is 0 there: t spans [0, 1])."""
    t = torch.rand(len(x1), generator=gen).to(x1.device)
    x0 = torch.randn(x1.shape, generator=gen).to(x1.device)
    t4 = t.view(-1, 1, 1, 1)
    xt = t4 * x1 + (1 - t4) * x0
    with autocast(x1.device):  # the embedding's own label dropout to the null class runs in train mode
        out = model(xt, timestep=t, class_labels=labels).sample
    return F.mse_loss(out.float(), x1 - x0)


def train_sit(args, device: torch.device, vae, build_network) -> torch.nn.Module:
    """The EMA SiT after ``args.dit_steps`` steps (resumable from ``args.work / "sit.pt"``)."""
    torch.manual_seed(args.seed)
    images, labels = load_fashion_mnist("train", args.data_dir, args.limit)
    mean, std, scale = encoded_latents(vae, images, device)
    labels = labels.to(device)
    sit = build_network().to(device).train()
    ema = copy.deepcopy(sit).eval().requires_grad_(False)
    opt = torch.optim.AdamW(sit.parameters(), lr=args.dit_lr, weight_decay=0.0)
    draw = None
    extra = {"save": lambda: {"ema": ema.state_dict()}, "load": lambda state: ema.load_state_dict(state["ema"])}

    def step_fn(step, gen):
        nonlocal draw
        draw = draw or batches(len(mean), args.dit_batch, gen)
        idx = next(draw).to(device)
        x1 = (mean[idx] + std[idx] * torch.randn(mean[idx].shape, generator=gen).to(device)) * scale
        lr = dit_learning_rate(step, args.dit_steps, args.dit_lr, cooldown=args.dit_cooldown)
        for group in opt.param_groups:
            group["lr"] = lr
        loss = velocity_loss(sit, x1, labels[idx], gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(sit.parameters(), 1.0)
        opt.step()
        ema_update(ema, sit, step, args.ema_decay)
        return {"mse": f"{loss.item():.4f}", "lr": f"{lr:.1e}"}

    resumable_loop("sit", sit, opt, Checkpoint(args.work / "sit.pt"), args.dit_steps, step_fn, extra_state=extra)
    return ema.cpu()


def export_sit(out: Path, sit, vae, classifier_dir: Path) -> Path:
    """The SiT in the hub's folder layout, with SiT's flow scheduler, its family and transport, and the judge."""
    transport = {"path_type": "Linear", "prediction": "velocity", "t0": 0.0, "t1": 1.0, "time": SIT_TIME}
    scheduler = SiTFlowScheduler(path_type="Linear", prediction="velocity", t0=0.0, t1=1.0)
    index = {"family": SIT_FAMILY, "transport": transport, "scheduler": ["samplers.flow", "SiTFlowScheduler"]}
    id2label = {str(i): name for i, name in enumerate(CLASS_NAMES)}
    save_bundle(out, sit, vae, scheduler, id2label, default_cfg_scale=DEFAULT_CFG, index=index)
    if classifier_dir.is_dir():  # the evaluator's judge travels with each model folder
        shutil.copytree(classifier_dir, out / "classifier", dirs_exist_ok=True)
    return out
