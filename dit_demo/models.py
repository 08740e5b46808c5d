"""Load a DiT bundle (transformer + VAE + scheduler config + labels) in the hub's folder layout.

The layout is that of ``facebook/DiT-XL-2-256``: ``model_index.json`` (with ``id2label``),
``transformer/``, ``vae/`` and ``scheduler/``. The embedded Fashion-MNIST model uses the same
layout, so one loader serves the shipped model, local folders and hub ids.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from diffusers import AutoencoderKL, DiTTransformer2DModel

from dit_demo.labels import Labels

EMBEDDED_MODEL = Path(__file__).resolve().parent / "weights" / "fashion-mnist"
HUB_MODELS = ("facebook/DiT-XL-2-256", "facebook/DiT-XL-2-512")
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
_COMPONENT_FILES = ["model_index.json", "*/config.json", "*/scheduler_config.json", "*/*.safetensors"]


@dataclass
class DiTBundle:
    """A loaded model and the facts the samplers need, all read from its configs."""

    name: str
    transformer: DiTTransformer2DModel
    vae: AutoencoderKL
    scheduler_config: dict
    labels: Labels
    device: torch.device
    dtype: torch.dtype
    extras: dict = field(default_factory=dict)

    @property
    def null_class(self) -> int:
        # the CFG "no class" embedding sits right after the real classes
        return int(self.transformer.config.num_embeds_ada_norm)

    @property
    def num_classes(self) -> int:
        return self.null_class

    @property
    def latent_channels(self) -> int:
        return int(self.transformer.config.in_channels)

    @property
    def latent_size(self) -> int:
        return int(self.transformer.config.sample_size)

    @property
    def learned_sigma(self) -> bool:
        return int(self.transformer.config.out_channels or 0) == 2 * self.latent_channels

    @property
    def default_cfg(self) -> float:
        """The guidance scale the model's authors recommend (model_index.json), else DiT's visual 4.0."""
        return float(self.extras.get("default_cfg_scale", 4.0))

    @property
    def num_train_timesteps(self) -> int:
        return int(self.scheduler_config.get("num_train_timesteps", 1000))

    @property
    def image_size(self) -> int:
        return self.latent_size * 2 ** (len(self.vae.config.block_out_channels) - 1)


def default_device() -> torch.device:
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def default_dtype(device: torch.device) -> torch.dtype:
    # half precision where the hardware is built for it; fp32 on CPUs (exact and not slower there)
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "mps":
        return torch.float16
    return torch.float32


def parse_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    if dtype is None or dtype == "auto":
        return default_dtype(device)
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in DTYPES:
        raise ValueError(f"Unknown dtype {dtype!r}; allowed: auto, {', '.join(DTYPES)}.")
    return DTYPES[dtype]


def parse_device(device: str | torch.device | None) -> torch.device:
    if device is None or device == "auto":
        return default_device()
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"Unknown device {device!r}; allowed: auto, cpu, cuda, cuda:N, mps.") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("Device 'cuda' was asked for but no CUDA GPU is available; use --device cpu.")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError("Device 'mps' was asked for but Apple MPS is not available; use --device cpu.")
    return device


def resolve_model_folder(name: str | os.PathLike | None) -> Path:
    """A local folder as is; a hub id downloaded (safetensors and configs only) into the HF cache."""
    if name is None or str(name) in ("", "embedded", "fashion-mnist"):
        folder = EMBEDDED_MODEL
        if not (folder / "model_index.json").is_file():
            raise FileNotFoundError(
                f"The embedded model is missing from {folder}. Re-clone the repository, or train it "
                "with `python -m dit_demo.train all`."
            )
        return folder
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "model_index.json").is_file():
            raise FileNotFoundError(
                f"{path} is a folder but holds no model_index.json; a DiT bundle needs model_index.json, "
                "transformer/, vae/ and scheduler/ (the layout of facebook/DiT-XL-2-256)."
            )
        return path
    text = str(name)
    if text.count("/") != 1 or text.startswith((".", "/", "~")):
        raise FileNotFoundError(
            f"No model folder at {text!r}, and it is not a hub id of the form 'owner/name' "
            f"(e.g. {HUB_MODELS[0]})."
        )
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(text, allow_patterns=_COMPONENT_FILES))
    except Exception as exc:  # network, auth, missing repo: all end the same way for the user
        raise FileNotFoundError(
            f"Could not get {text!r} from the Hugging Face hub ({type(exc).__name__}: {exc}). "
            "Check the id and your internet connection, or download it once and pass the local "
            "folder (`--model /path/to/DiT-XL-2-256`); with HF_HUB_OFFLINE=1 only the cache is used."
        ) from exc


def load_bundle(
    name: str | os.PathLike | None = None,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
) -> DiTBundle:
    """Load a DiT bundle from a local folder, a hub id, or (``None``) the embedded model."""
    device = parse_device(device)
    dtype = parse_dtype(dtype, device)
    folder = resolve_model_folder(name)
    index = json.loads((folder / "model_index.json").read_text())
    for part in ("transformer", "vae", "scheduler"):
        if not (folder / part).is_dir():
            raise FileNotFoundError(f"{folder} has no {part}/ folder; a DiT bundle needs transformer/, vae/ and scheduler/.")
    # the hub config names the legacy Transformer2DModel; loading it as a DiT is what it is
    transformer = DiTTransformer2DModel.from_pretrained(folder / "transformer", torch_dtype=dtype, use_safetensors=True)
    vae = AutoencoderKL.from_pretrained(folder / "vae", torch_dtype=dtype, use_safetensors=True)
    scheduler_config = json.loads((folder / "scheduler" / "scheduler_config.json").read_text())
    num_classes = int(transformer.config.num_embeds_ada_norm)
    labels = Labels.from_id2label(index.get("id2label") or {str(i): f"class {i}" for i in range(num_classes)})
    transformer.to(device).eval().requires_grad_(False)
    vae.to(device).eval().requires_grad_(False)
    classifier_dir = folder / "classifier"
    extras = {"classifier_dir": classifier_dir} if classifier_dir.is_dir() else {}
    if "default_cfg_scale" in index:
        extras["default_cfg_scale"] = float(index["default_cfg_scale"])
    label = "embedded Fashion-MNIST DiT" if folder == EMBEDDED_MODEL else str(name)
    return DiTBundle(label, transformer, vae, scheduler_config, labels, device, dtype, extras)


def save_bundle(
    folder: str | os.PathLike, transformer, vae, scheduler, id2label: dict, legacy_class_name: bool = False,
    default_cfg_scale: float | None = None,
) -> Path:
    """Write a bundle in the hub layout (safetensors). ``legacy_class_name`` mimics the hub's config."""
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

    index = {
        "_class_name": "DiTPipeline",
        "_diffusers_version": diffusers.__version__,
        "id2label": {str(k): v for k, v in id2label.items()},
        "scheduler": ["diffusers", type(scheduler).__name__],
        "transformer": ["diffusers", "Transformer2DModel" if legacy_class_name else type(transformer).__name__],
        "vae": ["diffusers", "AutoencoderKL"],
    }
    if default_cfg_scale is not None:
        index["default_cfg_scale"] = default_cfg_scale
    (folder / "model_index.json").write_text(json.dumps(index, indent=2))
    return folder
