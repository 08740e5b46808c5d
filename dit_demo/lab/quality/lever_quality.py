"""The quality of each speed lever on the embedded model: Frechet distance and class accuracy against
exact, with the same evaluator and seeds (the suite's quality table; the bar is in ``levers.py``)."""

from __future__ import annotations

import torch

from dit_demo.runtime.bundle import DiTBundle
from dit_demo.runtime.devices import has_native_bf16
from dit_demo.runtime.levers import Levers, has_int8_kernels, preset, with_model_levers


def quality_levers(device: torch.device) -> dict[str, Levers]:
    """The fast preset and each lever on its own, as far as this device runs them natively."""
    fast = preset("fast", device)
    levers = {"engine_fast": fast, "cache_0.05": Levers(cache_threshold=0.05)}
    levers["interval_0.28_5.42"] = Levers(guidance_interval=(0.28, 5.42))
    if has_native_bf16(device):
        levers["bf16"] = Levers(dtype="bf16")
    if device.type == "cpu" and has_int8_kernels():
        levers["int8"] = Levers(quantize="int8")
    return levers


def quality(embedded: DiTBundle, per_class: int = 100, sampler: str = "dpmpp_2m", steps: int = 25) -> list[dict]:
    """Frechet distance and class accuracy of each lever against exact, same evaluator and seeds."""
    from dit_demo.lab.quality.evaluate import evaluate
    from dit_demo.training.classifier import FashionClassifier

    classifier = FashionClassifier.load(embedded.extras["classifier_dir"])
    cfg = embedded.default_cfg

    def score(levers: Levers) -> dict:
        model = with_model_levers(embedded, levers)
        rows = [(sampler, steps)]  # no reference rows: each lever is measured against exact, not the data
        for _ in range(2 if levers.compile else 1):  # a compiled model's first run compiles its bucket sizes
            row = evaluate(
                model, classifier, rows, per_class, cfg, progress=False, references=False, lane_levers=levers.lane
            )[-1]
        return row

    exact = score(Levers())
    rows = []
    for name, levers in quality_levers(embedded.device).items():
        row = score(levers)
        rows.append(
            {
                "model": "embedded",
                "preset": name,
                "levers": levers.describe(),
                "sampler": sampler,
                "steps": steps,
                "cfg": cfg,
                "samples": row["samples"],
                "fd": row["frechet"],
                "accuracy": row["accuracy"],
                "seconds": row["seconds"],
                "fd_exact": exact["frechet"],
                "accuracy_exact": exact["accuracy"],
                "seconds_exact": exact["seconds"],
            }
        )
    return rows
