"""Reading a bundle's files: configs, safetensors weights and (for the paper's hub repos only) weights-only
pickles. Every failure becomes a :class:`ModelLoadError` whose one-line message names the file and the fix."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import pickle
import re
from dataclasses import dataclass
from pathlib import Path

import torch

EMBEDDED_MODEL = Path(__file__).resolve().parents[1] / "weights" / "fashion-mnist"
# the same data, VAE and network trained as SiT trains (python -m dit_demo.train sit): the flow family offline
EMBEDDED_SIT_MODEL = EMBEDDED_MODEL.with_name("fashion-mnist-sit")
SIT_TRAIN_COMMAND = "python -m dit_demo.train sit --sit-out dit_demo/weights/fashion-mnist-sit"
HUB_MODELS = ("facebook/DiT-XL-2-256", "facebook/DiT-XL-2-512")
WEIGHT_PARTS = ("transformer", "vae")
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


@dataclass(frozen=True)
class Source:
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


def has_safetensors(part_dir: Path) -> bool:
    return (part_dir / SAFETENSORS_WEIGHTS).is_file() or (part_dir / f"{SAFETENSORS_WEIGHTS}.index.json").is_file()


def reason(exc: BaseException, limit: int = 200) -> str:
    """An exception as one short line: library messages span lines, ours must not."""
    text = " ".join(str(exc).split())
    if len(text) > limit:  # whole sentences only: the first ones that fit (a cut word reads as a bug)
        end = text.rfind(". ", 0, limit)
        text = text[: end + 1] if end > 0 else text[: limit - 3].rsplit(" ", 1)[0] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def read_json(path: Path, source: Source) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelLoadError(f"{path} is missing; {source.fix(path)}.") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"{path} is not readable JSON ({reason(exc)}); {source.fix(path)}.") from None
    if not isinstance(data, dict):
        raise ModelLoadError(f"{path} holds a JSON {type(data).__name__}, not an object; {source.fix(path)}.")
    return data


def _check_safetensors(path: Path, source: Source) -> None:
    """Read the header, which also checks the file is as long as the tensors it lists (truncation)."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            f.keys()
    except (SafetensorError, OSError) as exc:
        raise ModelLoadError(f"{path} is truncated or corrupt ({reason(exc)}); {source.fix(path)}.") from None


def load_component(cls, part_dir: Path, dtype: torch.dtype, source: Source):
    """One model (transformer or VAE) from its folder; every failure becomes a ModelLoadError."""
    config = read_json(part_dir / "config.json", source)
    weights = part_dir / SAFETENSORS_WEIGHTS
    if weights.is_file():
        _check_safetensors(weights, source)
    elif not has_safetensors(part_dir):
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
            f"{part_dir} could not be loaded as a {cls.__name__} ({reason(exc)}); {mismatch}."
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


def _load_pickled(cls, config: dict, path: Path, dtype: torch.dtype, source: Source):
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
        raise ModelLoadError(f"{path} is truncated or corrupt ({reason(exc)}); {source.fix(path)}.") from None
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
            f"{path} does not match {path.parent / 'config.json'} ({reason(exc)}); {source.fix(path)}."
        ) from None
    logger.warning(
        "%s: %s/ has no safetensors; loaded %s with weights-only unpickling (torch.load(weights_only=True)).",
        source.hub_id,
        path.parent.name,
        path.name,
    )
    return model.to(dtype)


def cfg_scale(value, path: Path, source: Source) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ModelLoadError(f"{path} has default_cfg_scale {value!r}, not a number; {source.fix(path)}.") from None


_HASHES: dict[tuple, str] = {}  # (file, size, mtime) -> its hash: a server reloads the same model often
HASH_LENGTH = 12


def weights_hash(part_dir: Path, index: dict | None = None) -> str:
    """A short hash of a component's weights, naming exactly the numbers a PNG was made with: the one an
    import wrote into model_index.json, else the hub cache's file name (a blob is named by its sha256),
    else computed from the file (once per file)."""
    if index and isinstance(index.get("weights_sha256"), str):
        return index["weights_sha256"][:HASH_LENGTH]
    files = sorted(part_dir.glob("*.safetensors")) or sorted(part_dir.glob("*.bin"))
    digest = hashlib.sha256()
    for file in files:
        blob = file.resolve().name
        if re.fullmatch(r"[0-9a-f]{64}", blob):  # the hub cache: the blob's name is its sha256
            digest.update(blob.encode())
            continue
        stat = file.stat()
        key = (str(file.resolve()), stat.st_size, stat.st_mtime_ns)
        if key not in _HASHES:
            _HASHES[key] = file_sha256(file)
        digest.update(_HASHES[key].encode())
    return digest.hexdigest()[:HASH_LENGTH]


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(2**20), b""):
            digest.update(chunk)
    return digest.hexdigest()
