"""Load a DiT bundle (transformer + VAE + scheduler config + labels) in the hub's folder layout.

The layout is that of ``facebook/DiT-XL-2-256``: ``model_index.json`` (with ``id2label``),
``transformer/``, ``vae/`` and ``scheduler/``. The embedded Fashion-MNIST model uses the same
layout, so one loader serves the shipped model, local folders and hub ids.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from diffusers import AutoencoderKL, DiTTransformer2DModel

from dit_demo.runtime.bundle import DiTBundle
from dit_demo.runtime.checkpoints import (
    EMBEDDED_MODEL,
    EMBEDDED_SIT_MODEL,
    HUB_MODELS,
    LAYOUT,
    SAFETENSORS_WEIGHTS,
    SIT_TRAIN_COMMAND,
    TRAIN_COMMAND,
    WEIGHT_PARTS,
    ModelLoadError,
    Source,
    cfg_scale,
    has_safetensors,
    load_component,
    read_json,
    reason,
    weights_hash,
)
from dit_demo.runtime.devices import parse_device, parse_dtype
from dit_demo.runtime.dit import ORIGINAL_FEATURES, as_original_code
from dit_demo.runtime.labels import Labels
from dit_demo.runtime.parameterization import PARAMETERIZATIONS
from dit_demo.runtime.qk_norm import load_qk_norms

__all__ = ["EMBEDDED_MODEL", "HUB_MODELS", "ModelLoadError", "DiTBundle", "load_bundle", "save_bundle"]

_COMPONENT_FILES = ["model_index.json", "*/config.json", "*/scheduler_config.json", "*/*.safetensors"]


# the names that mean a model this project ships: (its folder, what to do when it is missing)
_EMBEDDED = {
    **dict.fromkeys(
        ("", "embedded", "fashion-mnist"),
        (EMBEDDED_MODEL, f"Re-clone the repository, or train it with `{TRAIN_COMMAND}`."),
    ),
    **dict.fromkeys(
        ("embedded-sit", "fashion-mnist-sit"), (EMBEDDED_SIT_MODEL, f"Train it with `{SIT_TRAIN_COMMAND}`.")
    ),
}


def _locate(name: str | os.PathLike | None) -> Source:
    if name is None or str(name) in _EMBEDDED:
        folder, remedy = _EMBEDDED["" if name is None else str(name)]
        if not (folder / "model_index.json").is_file():
            raise FileNotFoundError(f"The embedded model is missing from {folder}. {remedy}")
        return Source(folder)
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "model_index.json").is_file():
            raise FileNotFoundError(
                f"{path} is a folder but holds no model_index.json; a DiT bundle folder holds {LAYOUT} "
                f"(the layout of {HUB_MODELS[0]})."
            )
        return Source(path)
    text = str(name)
    if text.count("/") != 1 or text.startswith((".", "/", "~")):
        raise FileNotFoundError(
            f"No model folder at {text!r}, and it is not a hub id of the form 'owner/name' (e.g. {HUB_MODELS[0]})."
        )
    folder = _download(text, _COMPONENT_FILES)
    if text in HUB_MODELS:
        # a component the paper's repo publishes only as a PyTorch pickle: fetch that too, for
        # load_bundle to read with weights-only unpickling (no other repo gets this fallback)
        for part in WEIGHT_PARTS:
            if not has_safetensors(folder / part):
                folder = _download(text, [f"{part}/*.bin"])
    return Source(folder, hub_id=text)


def _download(hub_id: str, patterns: list[str]) -> Path:
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(hub_id, allow_patterns=patterns))
    except Exception as exc:  # network, auth, missing repo: all end the same way for the user
        raise FileNotFoundError(
            f"Could not get {hub_id!r} from the Hugging Face hub ({reason(exc)}). "
            "Check the id and your internet connection, or download it once and pass the local "
            f"folder (`--model /path/to/{hub_id.split('/')[-1]}`); with HF_HUB_OFFLINE=1 only the cache is used."
        ) from exc


def _known_family(family, path: Path, source) -> str:
    """``model_index.json``'s "family", if this version can sample it; else a ``ModelLoadError`` naming it."""
    if not isinstance(family, str) or family not in PARAMETERIZATIONS:
        raise ModelLoadError(
            f"{path} names the model family {family!r}, which this version cannot sample "
            f"(it knows {', '.join(PARAMETERIZATIONS)}); {source.fix(path)}."
        )
    return family


def load_bundle(
    name: str | os.PathLike | None = None,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
) -> DiTBundle:
    """Load a DiT bundle from a local folder, a hub id, or (``None``) the embedded model.

    A bundle that cannot be read raises ``ModelLoadError`` with a one-line message naming the file and the fix.
    """
    device = parse_device(device)
    dtype = parse_dtype(dtype, device)
    source = _locate(name)
    folder = source.folder
    index = read_json(folder / "model_index.json", source)
    for part in ("transformer", "vae", "scheduler"):
        if not (folder / part).is_dir():
            raise ModelLoadError(f"{folder / part} is missing; {source.fix(folder / part)}.")
    # the hub config names the legacy Transformer2DModel; loading it as a DiT is what it is
    transformer = load_component(DiTTransformer2DModel, folder / "transformer", dtype, source)
    if "qk_norm" in index:  # per-head q/k norms (REPA's --qk-norm), which a DiT's config.json cannot name
        try:
            load_qk_norms(transformer, folder / "transformer" / SAFETENSORS_WEIGHTS, index["qk_norm"])
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"{reason(exc).rstrip('.')}; {source.fix(folder / 'transformer')}.") from None
    vae = load_component(AutoencoderKL, folder / "vae", dtype, source)
    scheduler_config = read_json(folder / "scheduler" / "scheduler_config.json", source)
    num_classes = int(transformer.config.num_embeds_ada_norm)
    id2label = index.get("id2label") or {str(i): f"class {i}" for i in range(num_classes)}
    try:
        labels = Labels.from_id2label(id2label)
    except (AttributeError, TypeError, ValueError) as exc:
        path = folder / "model_index.json"
        raise ModelLoadError(f"{path} has an unusable id2label ({reason(exc)}); {source.fix(path)}.") from None
    original = index.get("timestep_features") == ORIGINAL_FEATURES or source.hub_id in HUB_MODELS
    if original:  # trained by the original DiT code: run it as that code did
        as_original_code(transformer)
    transformer.to(device).eval().requires_grad_(False)
    vae.to(device).eval().requires_grad_(False)
    classifier_dir = folder / "classifier"
    extras: dict = {"classifier_dir": classifier_dir} if classifier_dir.is_dir() else {}
    extras["weights"] = weights_hash(folder / "transformer", index)
    extras["timestep_features"] = ORIGINAL_FEATURES if original else "diffusers"
    if index.get("null_class") is False:  # trained without class dropout: nothing to guide against
        extras["has_null_class"] = False
    if "default_cfg_scale" in index:
        extras["default_cfg_scale"] = cfg_scale(index["default_cfg_scale"], folder / "model_index.json", source)
    if "family" in index:  # how to read its outputs (runtime/parameterization.py); absent: a DiT
        extras["family"] = _known_family(index["family"], folder / "model_index.json", source)
    embedded = {EMBEDDED_MODEL: "embedded Fashion-MNIST DiT", EMBEDDED_SIT_MODEL: "embedded Fashion-MNIST SiT"}
    label = embedded.get(Path(folder).resolve(), str(name))  # the shipped folder by any path keeps its name
    return DiTBundle(
        name=label,
        transformer=transformer,
        vae=vae,
        scheduler_config=scheduler_config,
        labels=labels,
        device=device,
        dtype=dtype,
        extras=extras,
    )


def save_bundle(
    folder: str | os.PathLike,
    transformer,
    vae,
    scheduler,
    id2label: dict,
    legacy_class_name: bool = False,
    default_cfg_scale: float | None = None,
    index: dict | None = None,
) -> Path:
    """Write a bundle in the hub layout (safetensors). ``legacy_class_name`` mimics the hub's config;
    ``index`` adds keys to model_index.json. A transformer running the original code's timestep
    features says so there, so a copy of it keeps them."""
    folder = Path(folder)
    transformer.save_pretrained(folder / "transformer", safe_serialization=True)
    vae.save_pretrained(folder / "vae", safe_serialization=True)
    scheduler.save_pretrained(folder / "scheduler")
    if legacy_class_name:
        cfg_path = folder / "transformer" / "config.json"
        cfg = json.loads(cfg_path.read_text())
        cfg["_class_name"] = "Transformer2DModel"
        cfg_path.write_text(json.dumps(cfg, indent=2))
    import diffusers

    meta = {
        "_class_name": "DiTPipeline",
        "_diffusers_version": diffusers.__version__,
        "id2label": {str(k): v for k, v in id2label.items()},
        "scheduler": ["diffusers", type(scheduler).__name__],
        "transformer": ["diffusers", "Transformer2DModel" if legacy_class_name else type(transformer).__name__],
        "vae": ["diffusers", "AutoencoderKL"],
    }
    if default_cfg_scale is not None:
        meta["default_cfg_scale"] = default_cfg_scale
    if transformer.transformer_blocks[0].norm1.emb.time_proj.downscale_freq_shift == 0:
        meta["timestep_features"] = ORIGINAL_FEATURES
    meta.update(index or {})
    (folder / "model_index.json").write_text(json.dumps(meta, indent=2))
    return folder
