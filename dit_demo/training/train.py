"""Train the embedded Fashion-MNIST model: VAE, then classifier, then DiT (hybrid loss, EMA).

    python -m dit_demo.train all --out dit_demo/weights/fashion-mnist --work runs/fmnist

Every stage is seeded and checkpoints into ``--work`` so a killed run resumes where it was;
finished stages are exported (safetensors) into ``--out`` in the hub's DiT folder layout.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import time
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, DiTTransformer2DModel

from dit_demo.runtime.loader import save_bundle
from dit_demo.training.architecture import (
    DEFAULT_CFG,
    NUM_TRAIN_TIMESTEPS,
    Checkpoint,
    autocast,
    build_dit,
    build_scheduler,
    build_vae,
    pick_device,
)
from dit_demo.training.classifier import FashionClassifier
from dit_demo.training.data import CLASS_NAMES, load_fashion_mnist
from dit_demo.training.hybrid_loss import GaussianDiffusion, hybrid_loss
from dit_demo.training.loop import batches as _batches
from dit_demo.training.loop import dit_learning_rate, ema_update, encoded_latents
from dit_demo.training.loop import resumable_loop as _loop
from dit_demo.training.sit import export_sit, train_sit


def train_vae(args, device) -> AutoencoderKL:
    torch.manual_seed(args.seed)
    images, _ = load_fashion_mnist("train", args.data_dir, args.limit)
    vae = build_vae().to(device).train()
    opt = torch.optim.AdamW(vae.parameters(), lr=args.vae_lr)
    batches = None

    def step_fn(step, gen):
        nonlocal batches
        batches = batches or _batches(len(images), args.vae_batch, gen)
        x = images[next(batches)].to(device)
        with autocast(device):
            posterior = vae.encode(x).latent_dist
            recon = vae.decode(posterior.sample(generator=None)).sample
        rec = F.l1_loss(recon.float(), x) + F.mse_loss(recon.float(), x)
        kl = posterior.kl().mean() / x[0].numel()
        loss = rec + args.vae_kl * kl
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return {"rec": f"{rec.item():.4f}", "kl": f"{kl.item():.3f}"}

    _loop("vae", vae, opt, Checkpoint(args.work / "vae.pt"), args.vae_steps, step_fn)
    vae.eval()
    # latent-diffusion recipe: scale latents to unit variance, measured on the data
    with torch.no_grad():
        z = torch.cat(
            [
                vae.encode(images[i : i + 512].to(device)).latent_dist.mean
                for i in range(0, min(len(images), 10000), 512)
            ]
        )
    vae.register_to_config(scaling_factor=float(1.0 / z.flatten().std()))
    print(f"[vae] scaling_factor = {vae.config.scaling_factor:.5f}")
    return vae.cpu()


def train_classifier(args, device) -> FashionClassifier:
    torch.manual_seed(args.seed)
    images, labels = load_fashion_mnist("train", args.data_dir, args.limit)
    model = FashionClassifier().to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    batches = None

    def step_fn(step, gen):
        nonlocal batches
        batches = batches or _batches(len(images), 128, gen)
        idx = next(batches)
        x, y = images[idx].to(device), labels[idx].to(device)
        for group in opt.param_groups:  # cosine decay: the last epochs settle the accuracy
            group["lr"] = 1e-3 * 0.5 * (1 + math.cos(math.pi * step / args.classifier_steps))
        if torch.rand((), generator=gen) < 0.5:
            x = x.flip(-1)  # garments are left-right symmetric enough
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return {"loss": f"{loss.item():.3f}"}

    _loop("classifier", model, opt, Checkpoint(args.work / "classifier.pt"), args.classifier_steps, step_fn)
    model.eval().cpu()
    test_x, test_y = load_fashion_mnist("test", args.data_dir)
    with torch.no_grad():
        pred = torch.cat([model(test_x[i : i + 1000]).argmax(1) for i in range(0, len(test_x), 1000)])
    accuracy = (pred == test_y).float().mean().item()
    print(f"[classifier] test accuracy = {accuracy:.4f}")
    model.test_accuracy = accuracy
    return model


def train_dit(args, device, vae: AutoencoderKL) -> tuple[DiTTransformer2DModel, dict]:
    torch.manual_seed(args.seed)
    images, labels = load_fashion_mnist("train", args.data_dir, args.limit)
    mean, std, scale = encoded_latents(vae, images, device)  # (N, 4, 8, 8) each
    labels = labels.to(device)

    dit = build_dit(args.dit_hidden, args.dit_layers, args.dit_heads).to(device).train()
    ema = copy.deepcopy(dit).eval().requires_grad_(False)
    opt = torch.optim.AdamW(dit.parameters(), lr=args.dit_lr, weight_decay=0.0)
    diffusion = GaussianDiffusion(NUM_TRAIN_TIMESTEPS)
    batches = None
    extra = {
        "save": lambda: {"ema": ema.state_dict()},
        "load": lambda state: ema.load_state_dict(state["ema"]),
    }

    def step_fn(step, gen):
        nonlocal batches
        batches = batches or _batches(len(mean), args.dit_batch, gen)
        idx = next(batches).to(device)
        x0 = (mean[idx] + std[idx] * torch.randn(mean[idx].shape, generator=gen).to(device)) * scale
        t = torch.randint(0, NUM_TRAIN_TIMESTEPS, (len(idx),), generator=gen).to(device)
        noise = torch.randn(x0.shape, generator=gen).to(device)
        xt = diffusion.q_sample(x0, t, noise)
        lr = dit_learning_rate(step, args.dit_steps, args.dit_lr, cooldown=args.dit_cooldown)
        for group in opt.param_groups:
            group["lr"] = lr
        with autocast(device):  # the embedding's own 10% label dropout to the null class runs in train mode
            out = dit(xt, timestep=t, class_labels=labels[idx]).sample
        loss, logs = hybrid_loss(diffusion, out.float(), x0, xt, t, noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(dit.parameters(), 1.0)
        opt.step()
        ema_update(ema, dit, step, args.ema_decay)
        return {"mse": f"{logs['mse']:.4f}", "vb": f"{logs['vb']:.4f}", "lr": f"{lr:.1e}"}

    _loop("dit", dit, opt, Checkpoint(args.work / "dit.pt"), args.dit_steps, step_fn, extra_state=extra)
    info = {"params": sum(p.numel() for p in ema.parameters())}
    return ema.cpu(), info


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m dit_demo.train", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("stage", choices=["all", "vae", "classifier", "dit", "sit"])
    parser.add_argument(
        "--sit-out", type=Path, default=Path("dit_demo/weights/fashion-mnist-sit"), help="where the sit stage exports"
    )
    parser.add_argument("--out", type=Path, default=Path("dit_demo/weights/fashion-mnist"))
    parser.add_argument("--work", type=Path, default=Path("runs/fashion-mnist"))
    parser.add_argument(
        "--data-dir", default=None, help="folder with the IDX files (default $DIT_FASHION_MNIST or Debian's)"
    )
    parser.add_argument("--limit", type=int, default=None, help="use only the first N training images (smoke tests)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--vae-steps", type=int, default=800)
    parser.add_argument("--vae-batch", type=int, default=64)
    parser.add_argument("--vae-lr", type=float, default=1e-3)
    parser.add_argument("--vae-kl", type=float, default=1e-4)
    parser.add_argument("--classifier-steps", type=int, default=3000)
    parser.add_argument("--dit-steps", type=int, default=16000)
    parser.add_argument(
        "--dit-cooldown", type=int, default=4000, help="last N steps decay the learning rate linearly to 0"
    )
    parser.add_argument("--dit-batch", type=int, default=128)
    parser.add_argument("--dit-lr", type=float, default=5e-4)
    parser.add_argument("--dit-hidden", type=int, default=128)
    parser.add_argument("--dit-layers", type=int, default=6)
    parser.add_argument("--dit-heads", type=int, default=4)
    parser.add_argument("--ema-decay", type=float, default=0.999)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device()
    args.work.mkdir(parents=True, exist_ok=True)
    times = {}
    stages = ["vae", "classifier", "dit"] if args.stage == "all" else [args.stage]
    vae_dir = args.out / "vae"

    if "vae" in stages:
        start = time.perf_counter()
        vae = train_vae(args, device)
        vae.save_pretrained(vae_dir, safe_serialization=True)
        times["vae"] = time.perf_counter() - start
    if "classifier" in stages:
        start = time.perf_counter()
        clf = train_classifier(args, device)
        clf.save(args.out / "classifier")
        times["classifier"] = time.perf_counter() - start
        (args.work / "classifier_accuracy.json").write_text(json.dumps({"test_accuracy": clf.test_accuracy}))
    if "dit" in stages:
        start = time.perf_counter()
        vae = AutoencoderKL.from_pretrained(vae_dir)
        dit, info = train_dit(args, device, vae)
        id2label = {str(i): name for i, name in enumerate(CLASS_NAMES)}
        save_bundle(
            args.out,
            transformer=dit,
            vae=vae,
            scheduler=build_scheduler(),
            id2label=id2label,
            default_cfg_scale=DEFAULT_CFG,
        )
        times["dit"] = time.perf_counter() - start
        print(f"[dit] {info['params'] / 1e6:.2f} M parameters")
    if "sit" in stages:  # the DiT's flags set its network and recipe; it reuses the trained VAE and judge
        start = time.perf_counter()
        vae = AutoencoderKL.from_pretrained(vae_dir)
        network = partial(build_dit, args.dit_hidden, args.dit_layers, args.dit_heads, learned_sigma=False)
        export_sit(args.sit_out, train_sit(args, device, vae, network), vae, args.out / "classifier")
        times["sit"] = time.perf_counter() - start
    log = args.work / "times.json"
    previous = json.loads(log.read_text()) if log.is_file() else {}
    previous.update({k: round(v, 1) for k, v in times.items()})
    log.write_text(json.dumps(previous, indent=2))
    targets = [str(args.out)] * bool(set(stages) - {"sit"}) + [str(args.sit_out)] * ("sit" in stages)
    print("wall time (s):", {k: round(v) for k, v in times.items()}, "-> exported to", ", ".join(targets))


if __name__ == "__main__":
    main()
