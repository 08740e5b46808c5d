"""Fashion-MNIST from Debian's ``dataset-fashion-mnist`` package (IDX files, gzip)."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import torch

DEFAULT_DIR = Path("/usr/share/datasets/fashion-mnist")
ENV_VAR = "DIT_FASHION_MNIST"
CLASS_NAMES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


def data_dir(override: str | os.PathLike | None = None) -> Path:
    """The folder holding the IDX files: argument, then $DIT_FASHION_MNIST, then Debian's path."""
    return Path(override or os.environ.get(ENV_VAR) or DEFAULT_DIR)


def _read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        raw = f.read()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_fashion_mnist(
    split: str = "train", root: str | os.PathLike | None = None, limit: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Images as float32 (N, 1, 32, 32) in [-1, 1] (28x28 padded with background), labels (N,)."""
    if split not in FILES:
        raise ValueError(f"split must be one of {sorted(FILES)}, got {split!r}")
    folder = data_dir(root)
    paths = [folder / name for name in FILES[split]]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(
            f"Fashion-MNIST files not found: {', '.join(missing)}. Install them with "
            f"`apt-get install dataset-fashion-mnist`, or put the four *-ubyte.gz files in a "
            f"folder and point ${ENV_VAR} (or --data-dir) at it."
        )
    images, labels = (_read_idx(p) for p in paths)
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    x = torch.from_numpy(images.copy()).float().div(127.5).sub(1.0)  # (N, 28, 28) in [-1, 1]
    x = torch.nn.functional.pad(x, (2, 2, 2, 2), value=-1.0).unsqueeze(1)  # (N, 1, 32, 32)
    return x, torch.from_numpy(labels.astype(np.int64))
