"""Sampler sweeps at scale: thousands of samples per (sampler, steps, cfg) cell, on one process or
many (``accelerate launch``), resumable.

    python -m dit_demo.sweep --samplers ddim,dpmpp_2m --steps 5,10 --cfg 1.5 --num-samples 1000 --out DIR
    accelerate launch --num_processes 2 --cpu -m dit_demo.sweep ...   (same arguments)

Sample ``i`` of every cell is class ``i % classes`` with seed ``seed + i // classes`` (classes
balanced, the evaluator's seeds). Work is cut into fixed shards of ``--shard-size`` samples per
cell, and each shard always runs as one lock-step batch whichever process takes it, so any
number of processes gives byte-identical images. Shards are split across processes with
accelerate's ``split_between_processes``; each is written atomically to ``DIR/shards/`` and never
rewritten, so the same command on the same ``DIR`` resumes. When a cell is complete the main
process writes ``DIR/<cell>.npz`` in the ADM evaluator's format (``arr_0``: uint8 NHWC in
sample order; ``arr_1``: the class labels) and ``DIR/sweep.json`` (arguments, versions, per
cell NFE, time, images/s and, for models with an evaluator, class accuracy and Frechet distance).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from dataclasses import KW_ONLY, asdict, dataclass
from pathlib import Path

import numpy as np
import torch

import samplers
from dit_demo.runtime.bundle import DiTBundle
from dit_demo.runtime.engine import run
from dit_demo.runtime.levers import Levers
from dit_demo.runtime.request import Lane, check_lanes

MAX_SAMPLES = 1_000_000
log = logging.getLogger("dit_demo.sweep")


@dataclass(frozen=True)
class SweepSpec:
    """What decides a sweep's images: two runs with equal specs write identical files."""

    model: str
    samplers: tuple[str, ...]
    steps: tuple[int, ...]
    cfg_scales: tuple[float, ...]
    _: KW_ONLY
    num_samples: int
    seed: int = 0
    shard_size: int = 100
    levers: str = "no shortcuts (exact)"  # Levers.describe() of the request
    cfg_channels: int | None = None  # 3: guidance as in the original DiT code (its FID numbers)
    threads: int = 1  # CPU threads per process: matrix kernels split work by thread count, so it is part of the result

    def cell_keys(self) -> list[tuple[str, int, float]]:
        return [(s, n, c) for c in self.cfg_scales for s in self.samplers for n in self.steps]

    def shards(self) -> list[tuple[int, int]]:
        """(cell index, shard index) for every piece of work: shard 0 of every cell, then shard 1, ...

        Processes take contiguous shares of this list (``split_between_processes``), so in this
        order each process gets the same slice of every cell; cell after cell, the process holding
        the last cells (Heun's two evaluations per step, the most steps) would finish last.
        """
        per_cell = -(-self.num_samples // self.shard_size)
        return [(c, k) for k in range(per_cell) for c in range(len(self.cell_keys()))]

    def to_json(self) -> dict:
        data = asdict(self)
        data["samplers"], data["steps"], data["cfg_scales"] = (
            list(self.samplers),
            list(self.steps),
            list(self.cfg_scales),
        )
        return data


def cell_name(sampler: str, steps: int, cfg: float) -> str:
    """A file name for a cell: ``dpmpp_2m-karras-true_25_cfg1.5``."""
    safe = "".join(ch if ch.isalnum() or ch in "_." else "-" for ch in sampler).strip("-")
    return f"{safe}_{steps}_cfg{cfg:g}"


def sample_class_and_seed(index: int, num_classes: int, seed: int) -> tuple[int, int]:
    """Sample ``index``'s class (balanced) and seed: image j of every class uses seed + j."""
    return index % num_classes, seed + index // num_classes


class Sweep:
    """One sweep in ``out``: which shards exist, running the missing ones, assembling the cells."""

    def __init__(self, spec: SweepSpec, bundle: DiTBundle, levers: Levers, out: str | os.PathLike):
        self.spec, self.bundle, self.levers, self.out = spec, bundle, levers, Path(out)
        self.shard_dir = self.out / "shards"

    # ---- files

    def shard_path(self, cell: int, shard: int) -> Path:
        sampler, steps, cfg = self.spec.cell_keys()[cell]
        return self.shard_dir / f"{cell_name(sampler, steps, cfg)}-{shard:05d}.npz"

    def cell_path(self, cell: int) -> Path:
        return self.out / f"{cell_name(*self.spec.cell_keys()[cell])}.npz"

    def missing(self, shards: list[tuple[int, int]]) -> list[tuple[int, int]]:
        return [s for s in shards if not self.shard_path(*s).exists()]

    # ---- work

    def lanes(self, cell: int, shard: int) -> list[Lane]:
        sampler, steps, cfg = self.spec.cell_keys()[cell]
        first = shard * self.spec.shard_size
        last = min(first + self.spec.shard_size, self.spec.num_samples)
        pairs = [sample_class_and_seed(i, self.bundle.num_classes, self.spec.seed) for i in range(first, last)]
        return [
            Lane(sampler, steps, c, s, cfg, cfg_channels=self.spec.cfg_channels, levers=self.levers.lane)
            for c, s in pairs
        ]

    def run_shard(self, cell: int, shard: int) -> float:
        """Sample one shard in one lock-step batch and write it atomically; its seconds."""
        lanes = self.lanes(cell, shard)
        started, start = time.time(), time.perf_counter()
        results = run(self.bundle, check_lanes(self.bundle, lanes, max_lanes=len(lanes)), max_batch=2 * len(lanes))
        pixels = self.bundle.decode(torch.stack([r.latents for r in results]))  # (N, 1 or 3, H, W) in [-1, 1]
        if pixels.shape[1] == 1:
            pixels = pixels.expand(-1, 3, -1, -1)
        images = ((pixels + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
        seconds = time.perf_counter() - start
        labels = np.array([lane.class_id for lane in lanes], dtype=np.int64)
        span = np.array([started, started + seconds])  # wall-clock interval, for the cell's wall time
        nfe = np.array([r.nfe for r in results], dtype=np.int64)  # an adaptive solver's differ sample by sample
        atomic_savez(
            self.shard_path(cell, shard), images=images, labels=labels, seconds=np.array(seconds), span=span, nfe=nfe
        )
        return seconds

    def assemble(self, cell: int) -> dict:
        """The cell's ``.npz`` from its shards (in sample order), once; its images, labels and seconds."""
        per_cell = [k for c, k in self.spec.shards() if c == cell]
        parts = [np.load(self.shard_path(cell, k)) for k in per_cell]
        images = np.concatenate([p["images"] for p in parts])
        labels = np.concatenate([p["labels"] for p in parts])
        if not self.cell_path(cell).exists():
            atomic_savez(self.cell_path(cell), arr_0=images, arr_1=labels)
        busy = float(sum(float(p["seconds"]) for p in parts))
        spans = [tuple(p["span"]) for p in parts if "span" in p]
        wall = covered_seconds(spans) if len(spans) == len(parts) else busy
        nfes = [p["nfe"] for p in parts if "nfe" in p]  # shards from before this was kept have none
        nfe = float(np.concatenate(nfes).mean()) if nfes and len(nfes) == len(parts) else None
        nfe = int(nfe) if nfe is not None and nfe.is_integer() else nfe  # a fixed grid's count stays a count
        return {"images": images, "labels": labels, "seconds": wall, "process_seconds": busy, "nfe": nfe}


def covered_seconds(spans: list[tuple[float, float]]) -> float:
    """Length of the union of (start, end) intervals: the time some process worked on a cell.

    Shards of one cell run side by side on several processes, so their seconds add up to more
    than the wall time; a resumed sweep's pause between runs is not the cell's time either.
    """
    total, reach = 0.0, float("-inf")
    for start, end in sorted(spans):
        if end > reach:
            total += end - max(start, reach)
            reach = end
    return total


def atomic_savez(path: Path, **arrays) -> None:
    """``np.savez`` to a temporary name, then rename: a killed process never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
    os.replace(tmp, path)


def check_out_dir(out: Path, spec: SweepSpec, force_new: bool) -> None:
    """A ``DIR`` that holds another sweep is refused (and left untouched) unless ``force_new``."""
    manifest = out / "sweep.json"
    if not manifest.exists():
        return
    try:
        old = json.loads(manifest.read_text())["spec"]
    except (json.JSONDecodeError, KeyError, OSError):
        old = None
    if old == spec.to_json():
        return
    if not force_new:
        differs = sorted(k for k in spec.to_json() if old is None or old.get(k) != spec.to_json()[k])
        raise ValueError(
            f"{out} holds another sweep (different {', '.join(differs) or 'manifest'}); its files are left as they "
            "are. Use another --out, the same arguments to resume it, or --force-new to start over there."
        )
    shutil.rmtree(out / "shards", ignore_errors=True)
    for path in out.glob("*.npz"):
        path.unlink()
    manifest.unlink()


def versions() -> dict:
    import accelerate
    import diffusers

    return {"torch": torch.__version__, "diffusers": diffusers.__version__, "accelerate": accelerate.__version__}


def nfe_of(spec: SweepSpec, bundle: DiTBundle, cell: int, made: dict | None = None) -> float:
    """A cell's model evaluations per sample: the mean its samples took where its shards kept them (an adaptive
    solver's differ), else its schedule's."""
    if made is not None and made.get("nfe") is not None:
        return made["nfe"]
    sampler, steps, _ = spec.cell_keys()[cell]
    return samplers.get(sampler).nfe(steps, bundle.scheduler_config)


def write_manifest(out: Path, spec: SweepSpec, extra: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    data = {"spec": spec.to_json(), "versions": versions(), **extra}
    tmp = out / ".sweep.json.tmp"
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, out / "sweep.json")


def sample_cell(
    bundle: DiTBundle,
    levers: Levers,
    sampler: str,
    steps: int,
    cfg: float,
    num_samples: int,
    seed: int,
    out: str | os.PathLike,
    shard_size: int = 250,
) -> dict:
    """One cell of a sweep in this process (the evaluator's front end): its images, labels and
    seconds. ``out`` keeps its shards, so an interrupted evaluation resumes where it stopped."""
    spec = SweepSpec(
        bundle.name,
        (sampler,),
        (steps,),
        (cfg,),
        num_samples=num_samples,
        seed=seed,
        shard_size=shard_size,
        levers=levers.describe(),
    )
    out = Path(out)
    check_out_dir(out, spec, force_new=True)  # a folder of this cell's; other arguments start it over
    if not (out / "sweep.json").exists():
        write_manifest(out, spec, {"status": "running", "processes": 1})
    sweep = Sweep(spec, bundle, levers, out)
    for cell, shard in sweep.missing(spec.shards()):
        sweep.run_shard(cell, shard)
    return sweep.assemble(0)
