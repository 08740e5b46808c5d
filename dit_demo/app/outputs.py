"""The PNGs the app hands out, and keeping the disk they use bounded."""

from __future__ import annotations

import re
import tempfile
import time
import uuid
import zipfile
from pathlib import Path

from PIL import Image

from dit_demo.lab.outputs.pngmeta import save_png

OUTPUT_DIR = Path(tempfile.gettempdir()) / "dit_sampler_lab"
OUTPUT_MAX_AGE = 3600  # seconds an output PNG stays on disk; Gradio's cache is swept on the same clock
DELETE_CACHE = (600, OUTPUT_MAX_AGE)  # Gradio: every 10 minutes, delete its files older than an hour
_last_sweep = [0.0]


def sweep_outputs(folder: Path = OUTPUT_DIR, max_age: float = OUTPUT_MAX_AGE, now: float | None = None) -> int:
    """Delete this app's PNGs (and zips) older than ``max_age`` seconds, and folders left empty (Gradio serves copies)."""
    now = time.time() if now is None else now
    removed = 0
    for path in [*folder.glob("*.png"), *folder.glob("*/*.png"), *folder.glob("*/*.zip")]:
        try:
            if now - path.stat().st_mtime > max_age:
                path.unlink()
                removed += 1
        except FileNotFoundError:  # another worker swept it first
            pass
    for sub in folder.glob("*/"):
        try:
            sub.rmdir()  # only succeeds when empty
        except OSError:
            pass
    return removed


def file_name(*parts: object) -> str:
    """A file name that says what the image is: ``sneaker_dpmpp_2m_25_seed0.png``."""
    text = "_".join(str(p) for p in parts if p not in (None, ""))
    text = re.sub(r"[^a-z0-9_.]+", "-", text.lower())  # "dpmpp_2m[karras=true]" -> "dpmpp_2m-karras-true"
    return re.sub(r"-*_-*", "_", text).strip("-_.")[:120] + ".png"


def save_output(image: Image.Image, parameters: dict, name: str) -> str:
    """A PNG carrying ``parameters``, named ``name`` in a folder of its own (two users may ask for the same
    image at once); old outputs are swept at most once a minute."""
    OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
    if time.time() - _last_sweep[0] > 60:
        _last_sweep[0] = time.time()
        sweep_outputs()
    return str(save_png(image, OUTPUT_DIR / uuid.uuid4().hex[:12] / name, parameters))


def save_zip(name: str, files: dict[str, str | tuple[Image.Image, dict]], folder_hint: str = "") -> str:
    """One zip of ``files`` (archive name -> a saved file's path, or an image and the parameters its PNG
    carries), in a folder of its own like every output; PNGs are stored, not recompressed."""
    OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
    path = OUTPUT_DIR / uuid.uuid4().hex[:12] / name
    path.parent.mkdir(parents=True)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        for arcname, item in files.items():
            if isinstance(item, str):
                archive.write(item, arcname)
            else:
                image, parameters = item
                archive.write(save_png(image, path.parent / arcname, parameters), arcname)
                (path.parent / arcname).unlink()
    return str(path)
