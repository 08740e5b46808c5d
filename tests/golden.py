"""Reference images: the same inputs must keep giving them, through every change of the code.

python tests/golden.py   # writes tests/data/golden/*.png (only when a change of output is intended)
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dit_demo.lab.compare.run import run_comparison  # noqa: E402
from dit_demo.lab.outputs.generate import generate, generation_lanes  # noqa: E402
from dit_demo.lab.specs.compare_spec import ComparisonSpec

FOLDER = Path(__file__).resolve().parent / "data" / "golden"

# (sampler, steps, cfg, cfg_channels, seed, per_class, classes) for generate; a spec for compare
GENERATE = {
    "generate-dpmpp_2m": ("dpmpp_2m", 25, 1.5, None, 0, 2, ["Sneaker", "Bag"]),
    "generate-ddpm": ("ddpm", 50, 1.5, None, 3, 1, ["Coat"]),
    "generate-euler_a-3ch": ("euler_a", 20, 4.0, 3, 7, 1, ["Dress"]),
}
COMPARE = {"compare-cells": ("ddim,dpmpp_2m,heun", "5,10", "Trouser", 1, "1.5,4")}


def render(bundle, name: str) -> Image.Image:
    """The images a case gives, side by side (a comparison's cells: its grid also prints wall times)."""
    if name in GENERATE:
        sampler, steps, cfg, channels, seed, per_class, classes = GENERATE[name]
        lanes = generation_lanes(classes, sampler, steps, cfg, seed, per_class, channels)
        images = [g.image for g in generate(bundle, lanes)]
    else:
        samplers_text, steps_text, class_name, seed, cfgs = COMPARE[name]
        spec = ComparisonSpec.build(samplers_text, steps_text, class_name, seed=seed, cfg_text=cfgs)
        images = [cell.image for cell in run_comparison(bundle, spec).cells]
    return Image.fromarray(np.concatenate([np.asarray(im) for im in images], axis=1))


def names() -> list[str]:
    return [*GENERATE, *COMPARE]


if __name__ == "__main__":
    from dit_demo.runtime.loader import load_bundle

    FOLDER.mkdir(parents=True, exist_ok=True)
    embedded = load_bundle(None, device="cpu", dtype="fp32")
    for case in names():
        render(embedded, case).save(FOLDER / f"{case}.png")
        print("wrote", FOLDER / f"{case}.png")
