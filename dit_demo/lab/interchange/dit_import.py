"""Bring your own DiT: a checkpoint of the original DiT (or SiT: ``sit_import``, REPA: ``repa_import``) training
code -> a model folder in the hub layout (``python -m dit_demo import``), and back (``python -m dit_demo export``).

    python -m dit_demo import results/000-DiT-S-2/checkpoints/0400000.pt --out models/my-dit \\
        --vae stabilityai/sd-vae-ft-ema --labels classes.txt
    python app.py --model models/my-dit

Everything is checked before anything is written: a bad checkpoint, flag, VAE or labels file ends
with one line and no folder.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

import torch
from diffusers import AutoencoderKL, DDPMScheduler

from dit_demo.lab.interchange.original_dit import Arch, infer_arch, read_checkpoint, to_diffusers, to_original
from dit_demo.lab.interchange.repa_import import (
    FLOW_FLAGS,
    IMPORT_FAMILIES,
    add_flow_flags,
    import_family,
    repa_parts,
    with_flow_flags,
)
from dit_demo.lab.interchange.sit_import import sit_scheduler, sit_transport
from dit_demo.runtime.checkpoints import EMBEDDED_MODEL, SAFETENSORS_WEIGHTS, file_sha256, reason
from dit_demo.runtime.dit import ORIGINAL_FEATURES
from dit_demo.runtime.loader import load_bundle, save_bundle
from dit_demo.runtime.parameterization import REPA_FAMILY, SIT_FAMILY
from dit_demo.runtime.qk_norm import qk_norms_to_original

IMAGENET_LABELS = Path(__file__).resolve().parents[2] / "imagenet_id2label.json"
DEFAULT_VAE = "stabilityai/sd-vae-ft-ema"  # the VAE the DiT paper's models were trained on (-mse also fits)
DIT_CFG = 4.0  # the paper's scale for pictures, for models with a null class
VAE_FILES = ("*.json", "*.safetensors")  # what is read of a hub VAE; the download command asks for the same
EMBEDDED_VAE = EMBEDDED_MODEL / "vae"  # the one VAE folder every checkout has (4-channel latents)


def import_checkpoint(
    checkpoint: str | Path,
    out: str | Path,
    weights: str = "ema",
    arch: str | None = None,
    image_size: int | None = None,
    num_classes: int | None = None,
    heads: int | None = None,
    vae: str | None = None,
    labels: str | Path | None = None,
    force: bool = False,
    family: str | None = None,
    **flow_flags: str | int | None,
) -> Path:
    """Write ``out`` from ``checkpoint`` (``family``: "dit", "sit" or "repa", else from train.py's args;
    ``flow_flags``: ``repa_import.FLOW_FLAGS`` for what the args do not say); one-line errors otherwise."""
    out = Path(out)
    _check_target(out, force)
    state, args = read_checkpoint(checkpoint, weights)
    family = import_family(family, args, state)
    args = with_flow_flags(args, family, **flow_flags)
    transport = sit_transport(args) if family == SIT_FAMILY else None  # refused before any work
    repa = repa_parts(state, args) if family == REPA_FAMILY else None  # its projector heads dropped
    found = infer_arch(repa.state if repa else state, args, arch, num_classes, heads)
    transformer = to_diffusers(repa.state if repa else state, found)
    if repa is not None:
        repa.attach(transformer)
    autoencoder = load_vae(vae or _trained_vae(args), found, stated_size(image_size, args))
    id2label = read_labels(labels, found.num_classes)
    with tempfile.TemporaryDirectory(dir=out.parent if out.parent.exists() else None) as scratch:
        staged = Path(scratch) / "model"
        index = {
            "timestep_features": ORIGINAL_FEATURES,
            "source": {"checkpoint": Path(checkpoint).name, "weights": weights, "arch": found.name},
        }
        if not found.has_null_class:
            index["null_class"] = False
        scheduler = scheduler_for(found)
        if transport is not None:  # the cfg default stays 4.0: SiT's sample.py has it too
            scheduler = sit_scheduler(transport)
            index.update(family=SIT_FAMILY, transport=transport, scheduler=["samplers.flow", "SiTFlowScheduler"])
        if repa is not None:  # the cfg default stays 4.0, as for SiT
            scheduler = repa.record(index)
        save_bundle(staged, transformer, autoencoder, scheduler, id2label,
                    default_cfg_scale=DIT_CFG if found.has_null_class else 1.0, index=index)  # fmt: skip
        _record_hash(staged)
        if out.exists():
            shutil.rmtree(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(staged), out)
    return out


def _trained_vae(args) -> str:
    """The VAE train.py was told to use (``--vae ema|mse``), else the paper's."""
    kind = getattr(args, "vae", None)
    return f"stabilityai/sd-vae-ft-{kind}" if kind in ("ema", "mse") else DEFAULT_VAE


def stated_size(flag: int | None, args: argparse.Namespace | None) -> tuple[int, str] | None:
    """(pixels, who says so): the pixels the model was trained at, from --image-size, else train.py's args."""
    if flag is not None:
        return flag, "--image-size"
    for key in ("image_size", "resolution"):  # DiT's and SiT's train.py name it so, REPA's the other way
        if isinstance(told := getattr(args, key, None), int):
            return told, f"args.{key}"
    return None


def _check_target(out: Path, force: bool) -> None:
    if not out.exists():
        return
    if not force:
        raise FileExistsError(f"{out} already exists; nothing was written (add --force to replace it).")
    if any(out.iterdir()) and not (out / "model_index.json").is_file():
        raise FileExistsError(
            f"{out} is not a model folder (no model_index.json); --force replaces model folders only."
        )


def scheduler_for(arch: Arch) -> DDPMScheduler:
    """DiT's training schedule: linear betas over 1000 steps; the learned variance's range when it has one."""
    return DDPMScheduler(
        num_train_timesteps=1000,
        beta_schedule="linear",
        beta_start=1e-4,
        beta_end=0.02,
        variance_type="learned_range" if arch.learned_sigma else "fixed_small",
        clip_sample=False,
    )


def load_vae(where: str, arch: Arch, stated: tuple[int, str] | None = None) -> AutoencoderKL:
    """The VAE from a local folder, or a hub id from the hub's cache (nothing is downloaded here), checked
    against the DiT and the image size ``stated`` for it (:func:`stated_size`)."""
    folder = Path(where).expanduser()
    if not folder.is_dir():
        folder = _cached_hub_folder(where, _local_vae_hint(arch, stated))
    try:
        vae = AutoencoderKL.from_pretrained(folder)
    except (OSError, ValueError) as exc:
        raise ValueError(f"{where} is not a diffusers VAE folder ({reason(exc)}).") from None
    misfit = vae_misfit(vae.config, arch, stated)
    if misfit:
        raise ValueError(f"The VAE {where} {misfit}")
    return vae


def vae_misfit(config: Mapping, arch: Arch, stated: tuple[int, str] | None) -> str | None:
    """Why a VAE with this config cannot decode the DiT's latents, or None. The pixels of the folder written
    are the latent times the VAE's upscale; a model trained at other pixels used another VAE."""
    channels, latent = config["latent_channels"], arch.latent_size
    pixels = latent * 2 ** (len(config["block_out_channels"]) - 1)
    if channels != arch.in_channels:
        return f"makes {channels}-channel latents; the DiT takes {arch.in_channels}."
    if pixels > 4096:
        return f"turns the DiT's {latent}x{latent} latent into {pixels} px images; too large."
    if stated is not None and stated[0] != pixels:
        told, who = stated
        return (
            f"turns the DiT's {latent}x{latent} latent into {pixels} px images, but {who} says {told} px: use a "
            f"VAE that makes {told} px of it (the one the model was trained with), or --image-size {pixels} if "
            f"{pixels} px pictures are meant."
        )
    return None


def _local_vae_hint(arch: Arch, stated: tuple[int, str] | None) -> str:
    """The embedded model's VAE folder, named only where it would pass :func:`vae_misfit`."""
    try:
        fits = vae_misfit(json.loads((EMBEDDED_VAE / "config.json").read_text()), arch, stated) is None
    except (OSError, ValueError, KeyError, TypeError):  # no embedded model in this checkout, or a damaged one
        fits = False
    return f" (this one fits: --vae {EMBEDDED_VAE}, the embedded model's)" if fits else ""


def _cached_hub_folder(hub_id: str, hint: str) -> Path:
    from huggingface_hub import snapshot_download

    if hub_id.count("/") != 1:
        raise FileNotFoundError(
            f"--vae {hub_id!r} is neither a folder nor a hub id (owner/name); give a diffusers VAE folder{hint}."
        )
    try:
        return Path(snapshot_download(hub_id, allow_patterns=list(VAE_FILES), local_files_only=True))
    except Exception:
        download = " ".join(f"--include '{pattern}'" for pattern in VAE_FILES)
        raise FileNotFoundError(
            f"The VAE {hub_id} is not in the hub cache and nothing is downloaded here: run "
            f"`hf download {hub_id} {download}` once with internet access, or pass a local diffusers VAE "
            f"folder with --vae{hint}."
        ) from None


def read_labels(path: str | Path | None, num_classes: int) -> dict[str, str]:
    """id2label from a JSON map or a text file (one name a line); ImageNet's for 1000 classes; else "class i"."""
    if path is None:
        if num_classes == 1000:
            return json.loads(IMAGENET_LABELS.read_text())
        return {str(i): f"class {i}" for i in range(num_classes)}
    text = Path(path).read_text(encoding="utf-8")
    if Path(path).suffix == ".json":
        try:
            data = json.loads(text)
            names = [str(data[str(i)]) for i in range(len(data))]
        except (ValueError, KeyError, TypeError):
            raise ValueError(f"{path} is not a JSON map of ids 0..N-1 to names.") from None
    else:
        names = [line.strip() for line in text.splitlines() if line.strip()]
    if len(names) != num_classes:
        raise ValueError(f"{path} names {len(names)} classes; the model has {num_classes}.")
    return {str(i): name for i, name in enumerate(names)}


def _record_hash(folder: Path) -> None:
    """The transformer weights' sha256 in model_index.json: PNGs name it, Reproduce checks it."""
    index_path = folder / "model_index.json"
    index = json.loads(index_path.read_text())
    index["weights_sha256"] = file_sha256(folder / "transformer" / SAFETENSORS_WEIGHTS)
    index_path.write_text(json.dumps(index, indent=2))


def export_folder(folder: str | Path, out: str | Path) -> Path:
    """A model folder's transformer as a plain state dict in the original code's key layout."""
    bundle = load_bundle(str(folder), "cpu", "fp32")
    state = {**to_original(bundle.transformer, bundle.has_null_class), **qk_norms_to_original(bundle.transformer)}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, out)
    return out


def add_commands(sub) -> None:
    """``import`` and ``export`` on the command line's subcommands."""
    imp = sub.add_parser("import", help="a checkpoint of the original DiT, SiT or REPA code -> a model folder")
    imp.add_argument("checkpoint", help="a train.py checkpoint or a plain state dict (.pt)")
    imp.add_argument("--out", required=True, help="the model folder to write")
    imp.add_argument(
        "--weights", choices=("ema", "model"), default="ema", help="train.py's EMA (default) or raw weights"
    )
    imp.add_argument("--arch", default=None, help="DiT-S/2 ... DiT-XL/8 (default: from the tensors or args.model)")
    imp.add_argument(
        "--image-size", type=int, default=None, help="pixels the model makes, checked against the VAE (default: args)"
    )
    imp.add_argument("--num-classes", type=int, default=None, help="class count without the null class")
    imp.add_argument("--heads", type=int, default=None, help="attention heads, for sizes outside the twelve configs")
    imp.add_argument("--vae", default=None, help=f"a local VAE folder or a hub id in the cache (default {DEFAULT_VAE})")
    imp.add_argument("--labels", default=None, help="class names: a JSON id2label map or a text file, one a line")
    imp.add_argument("--force", action="store_true", help="replace an existing model folder")
    imp.add_argument("--family", choices=IMPORT_FAMILIES, default=None, help="default: from train.py's args")
    add_flow_flags(imp)
    imp.set_defaults(func=_cmd_import)
    exp = sub.add_parser(
        "export", help="a model folder's transformer -> the original DiT, SiT or REPA code's state dict"
    )
    exp.add_argument("folder")
    exp.add_argument("--out", required=True, help="the .pt file to write")
    exp.set_defaults(func=lambda args: print(f"wrote {export_folder(args.folder, args.out)}"))


def _cmd_import(args: argparse.Namespace) -> None:
    names = ("weights", "arch", "image_size", "num_classes", "heads", "vae", "labels", "family", *FLOW_FLAGS)
    options = {k: getattr(args, k) for k in names}
    out = import_checkpoint(args.checkpoint, args.out, force=args.force, **options)
    if dropped := json.loads((out / "model_index.json").read_text())["source"].get("dropped"):
        print(dropped)  # REPA's projector heads: the user hears what was left out
    bundle = load_bundle(str(out), "cpu", "fp32")
    guidance = f"cfg {bundle.default_cfg:g}" if bundle.has_null_class else "no null class: no guidance"
    print(
        f"wrote {out}: {bundle.num_classes} classes, {bundle.image_size} px, {guidance}; `python app.py --model {out}`"
    )
