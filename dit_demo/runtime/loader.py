"""Load a DiT bundle (transformer + VAE + scheduler config + labels) in the hub's folder layout.

The layout is that of ``facebook/DiT-XL-2-256``: ``model_index.json`` (with ``id2label``),
``transformer/``, ``vae/`` and ``scheduler/``. The embedded Fashion-MNIST model uses the same
layout, so one loader serves the shipped model, local folders and hub ids.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import pickle
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch
from diffusers import AutoencoderKL, DiTTransformer2DModel

from dit_demo.runtime.labels import Labels

EMBEDDED_MODEL = Path(__file__).resolve().parents[1] / "weights" / "fashion-mnist"
HUB_MODELS = ("facebook/DiT-XL-2-256", "facebook/DiT-XL-2-512")
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
_COMPONENT_FILES = ["model_index.json", "*/config.json", "*/scheduler_config.json", "*/*.safetensors"]
_WEIGHT_PARTS = ("transformer", "vae")
SAFETENSORS_WEIGHTS = "diffusion_pytorch_model.safetensors"
PICKLE_WEIGHTS = "diffusion_pytorch_model.bin"
TRAIN_COMMAND = "python -m dit_demo.train all --out dit_demo/weights/fashion-mnist"
LAYOUT = (
    "model_index.json, transformer/{config.json, diffusion_pytorch_model.safetensors}, "
    "vae/{config.json, diffusion_pytorch_model.safetensors} and scheduler/scheduler_config.json"
)

logger = logging.getLogger(__name__)


class ModelLoadError(ValueError):
    """A bundle that cannot be read; the one-line message names the file and what to do about it."""


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
    """A local folder as is; a hub id downloaded (configs and safetensors; for ``HUB_MODELS`` also a .bin
    where a component has no safetensors) into the HF cache."""
    return _locate(name).folder


@dataclass(frozen=True)
class _Source:
    """Where a bundle's files came from: this decides the fix a message offers and whether .bin is read."""

    folder: Path
    hub_id: str | None = None

    @property
    def reads_pickles(self) -> bool:
        # only the paper's checkpoints, fetched from their hub repos, may fall back to weights-only .bin
        return self.hub_id in HUB_MODELS

    def fix(self, path: Path) -> str:
        """What a person does about a missing or unreadable ``path`` of this bundle."""
        if self.folder == EMBEDDED_MODEL:
            return f"re-train the embedded model with `{TRAIN_COMMAND}` (or restore it from the repository)"
        if self.hub_id is not None:
            rel = path.relative_to(self.folder).as_posix()
            what = rel if path.suffix else f"--include '{rel}/*'"  # a file, or a whole component folder
            return f"re-download it with `hf download {self.hub_id} {what} --force-download`"
        return f"put a good copy there; a DiT bundle folder holds {LAYOUT} (the layout of {HUB_MODELS[0]})"


def _locate(name: str | os.PathLike | None) -> _Source:
    if name is None or str(name) in ("", "embedded", "fashion-mnist"):
        folder = EMBEDDED_MODEL
        if not (folder / "model_index.json").is_file():
            raise FileNotFoundError(
                f"The embedded model is missing from {folder}. Re-clone the repository, or train it "
                f"with `{TRAIN_COMMAND}`."
            )
        return _Source(folder)
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "model_index.json").is_file():
            raise FileNotFoundError(
                f"{path} is a folder but holds no model_index.json; a DiT bundle folder holds {LAYOUT} "
                f"(the layout of {HUB_MODELS[0]})."
            )
        return _Source(path)
    text = str(name)
    if text.count("/") != 1 or text.startswith((".", "/", "~")):
        raise FileNotFoundError(
            f"No model folder at {text!r}, and it is not a hub id of the form 'owner/name' (e.g. {HUB_MODELS[0]})."
        )
    folder = _download(text, _COMPONENT_FILES)
    if text in HUB_MODELS:
        # a component the paper's repo publishes only as a PyTorch pickle: fetch that too, for
        # load_bundle to read with weights-only unpickling (no other repo gets this fallback)
        for part in _WEIGHT_PARTS:
            if not _has_safetensors(folder / part):
                folder = _download(text, [f"{part}/*.bin"])
    return _Source(folder, hub_id=text)


def _download(hub_id: str, patterns: list[str]) -> Path:
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(hub_id, allow_patterns=patterns))
    except Exception as exc:  # network, auth, missing repo: all end the same way for the user
        raise FileNotFoundError(
            f"Could not get {hub_id!r} from the Hugging Face hub ({_reason(exc)}). "
            "Check the id and your internet connection, or download it once and pass the local "
            "folder (`--model /path/to/DiT-XL-2-256`); with HF_HUB_OFFLINE=1 only the cache is used."
        ) from exc


def _has_safetensors(part_dir: Path) -> bool:
    return (part_dir / SAFETENSORS_WEIGHTS).is_file() or (part_dir / f"{SAFETENSORS_WEIGHTS}.index.json").is_file()


def _reason(exc: BaseException, limit: int = 200) -> str:
    """An exception as one short line: library messages span lines, ours must not."""
    text = " ".join(str(exc).split())
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _read_json(path: Path, source: _Source) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelLoadError(f"{path} is missing; {source.fix(path)}.") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"{path} is not readable JSON ({_reason(exc)}); {source.fix(path)}.") from None
    if not isinstance(data, dict):
        raise ModelLoadError(f"{path} holds a JSON {type(data).__name__}, not an object; {source.fix(path)}.")
    return data


def _check_safetensors(path: Path, source: _Source) -> None:
    """Read the header, which also checks the file is as long as the tensors it lists (truncation)."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            f.keys()
    except (SafetensorError, OSError) as exc:
        raise ModelLoadError(f"{path} is truncated or corrupt ({_reason(exc)}); {source.fix(path)}.") from None


def _load_component(cls, part_dir: Path, dtype: torch.dtype, source: _Source):
    """One model (transformer or VAE) from its folder; every failure becomes a ModelLoadError."""
    config = _read_json(part_dir / "config.json", source)
    weights = part_dir / SAFETENSORS_WEIGHTS
    if weights.is_file():
        _check_safetensors(weights, source)
    elif not _has_safetensors(part_dir):
        pickled = part_dir / PICKLE_WEIGHTS
        if not pickled.is_file():
            note = ""
            if source.hub_id is not None and not source.reads_pickles:
                note = f" (from hub repos other than {', '.join(HUB_MODELS)} only safetensors weights are read)"
            raise ModelLoadError(f"{weights} is missing; {source.fix(weights)}{note}.")
        if source.reads_pickles:
            return _load_pickled(cls, config, pickled, dtype, source)
        raise ModelLoadError(
            f"{part_dir} has only {pickled.name}, but only safetensors are read from local folders and "
            "non-allowlisted hub repos (a pickle can run code when loaded). Convert it once, if you trust it: "
            f'`python -c "from diffusers import {cls.__name__} as M; '
            f"M.from_pretrained('{part_dir}', use_safetensors=False)"
            f".save_pretrained('{part_dir}', safe_serialization=True)\"`."
        )
    mismatch = f"its config.json must describe its weights; {source.fix(weights)}"
    try:
        # diffusers only warns about weights the file lacks (and leaves them unloaded); that is an error
        # here, reported below in one line, so its multi-line warning is held back
        with _quiet("diffusers.models.modeling_utils"):
            model, info = cls.from_pretrained(
                part_dir, torch_dtype=dtype, use_safetensors=True, output_loading_info=True
            )
    except Exception as exc:  # shapes that disagree with config.json, odd dtypes, ...: say so in one line
        raise ModelLoadError(
            f"{part_dir} could not be loaded as a {cls.__name__} ({_reason(exc)}); {mismatch}."
        ) from None
    missing = list(info.get("missing_keys") or [])
    if missing:
        raise ModelLoadError(
            f"{weights} lacks {len(missing)} weight(s) that {part_dir / 'config.json'} calls for "
            f"(e.g. {', '.join(sorted(missing)[:3])}); {mismatch}."
        )
    return model


@contextlib.contextmanager
def _quiet(logger_name: str):
    """Hold back a library logger's warnings (errors still show) for the duration."""
    target = logging.getLogger(logger_name)
    level = target.level
    target.setLevel(logging.ERROR)
    try:
        yield
    finally:
        target.setLevel(level)


def _load_pickled(cls, config: dict, path: Path, dtype: torch.dtype, source: _Source):
    """A hub .bin read with torch's weights-only unpickler: tensors and plain containers, never code."""
    try:
        state_dict = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"GLOBAL (\S+)", str(exc))
        what = f"it references {found.group(1)}" if found else "it holds objects other than tensors"
        raise ModelLoadError(
            f"{path} was refused by weights-only unpickling and not loaded: {what}. Only plain weights "
            f"are read from .bin files; {source.fix(path)}, or use a copy in safetensors format."
        ) from None
    except Exception as exc:  # truncated zip, empty file, ...
        raise ModelLoadError(f"{path} is truncated or corrupt ({_reason(exc)}); {source.fix(path)}.") from None
    if not isinstance(state_dict, dict):
        raise ModelLoadError(f"{path} holds a {type(state_dict).__name__}, not a state dict; {source.fix(path)}.")
    try:
        model = cls.from_config(config)
        # diffusers' own renames for checkpoints saved before its attention refactor (from_pretrained does the same)
        fix_keys = getattr(model, "_fix_state_dict_keys_on_load", None)
        if fix_keys is not None:
            fix_keys(state_dict)
        model.load_state_dict(state_dict, strict=True)
    except Exception as exc:  # missing/unexpected keys or shapes that disagree with config.json
        raise ModelLoadError(
            f"{path} does not match {path.parent / 'config.json'} ({_reason(exc)}); {source.fix(path)}."
        ) from None
    logger.warning(
        "%s: %s/ has no safetensors; loaded %s with weights-only unpickling (torch.load(weights_only=True)).",
        source.hub_id,
        path.parent.name,
        path.name,
    )
    return model.to(dtype)


def _cfg_scale(value, path: Path, source: _Source) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ModelLoadError(f"{path} has default_cfg_scale {value!r}, not a number; {source.fix(path)}.") from None


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
    index = _read_json(folder / "model_index.json", source)
    for part in ("transformer", "vae", "scheduler"):
        if not (folder / part).is_dir():
            raise ModelLoadError(f"{folder / part} is missing; {source.fix(folder / part)}.")
    # the hub config names the legacy Transformer2DModel; loading it as a DiT is what it is
    transformer = _load_component(DiTTransformer2DModel, folder / "transformer", dtype, source)
    vae = _load_component(AutoencoderKL, folder / "vae", dtype, source)
    scheduler_config = _read_json(folder / "scheduler" / "scheduler_config.json", source)
    num_classes = int(transformer.config.num_embeds_ada_norm)
    id2label = index.get("id2label") or {str(i): f"class {i}" for i in range(num_classes)}
    try:
        labels = Labels.from_id2label(id2label)
    except (AttributeError, TypeError, ValueError) as exc:
        path = folder / "model_index.json"
        raise ModelLoadError(f"{path} has an unusable id2label ({_reason(exc)}); {source.fix(path)}.") from None
    transformer.to(device).eval().requires_grad_(False)
    vae.to(device).eval().requires_grad_(False)
    classifier_dir = folder / "classifier"
    extras = {"classifier_dir": classifier_dir} if classifier_dir.is_dir() else {}
    if "default_cfg_scale" in index:
        extras["default_cfg_scale"] = _cfg_scale(index["default_cfg_scale"], folder / "model_index.json", source)
    label = "embedded Fashion-MNIST DiT" if folder == EMBEDDED_MODEL else str(name)
    return DiTBundle(label, transformer, vae, scheduler_config, labels, device, dtype, extras)


def save_bundle(
    folder: str | os.PathLike,
    transformer,
    vae,
    scheduler,
    id2label: dict,
    legacy_class_name: bool = False,
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
