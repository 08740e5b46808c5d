"""A comparison's grid images: every cell, and every cell's difference to its reference, labelled."""

from __future__ import annotations

import numpy as np
from PIL import Image

import samplers
from dit_demo.lab.compare.comparison import Comparison
from dit_demo.lab.outputs.grid import LIGHT, Palette, make_grid
from dit_demo.lab.specs.model_axis import model_label


def comparison_grid(comparison: Comparison, palette: Palette = LIGHT) -> Image.Image:
    """Rows (model, preset, cfg, sampler) x columns (steps, seed), labelled; axes of one value go in the title."""
    captions = [f"NFE {c.nfe} | {c.seconds:.2f}s" for c in comparison.cells]
    return _grid(comparison, [c.image for c in comparison.cells], captions, palette=palette)


def difference_grid(comparison: Comparison, palette: Palette = LIGHT) -> Image.Image:
    """|cell - reference| for every cell, each against the reference of its model, cfg and seed. One gain for
    the whole grid (the largest difference becomes white) so cells compare; the title gives it."""
    refs = {
        (r.model, r.cfg_scale, r.seed): np.asarray(r.image.convert("RGB"), dtype=np.int16) for r in comparison.reference
    }
    diffs = [
        np.abs(np.asarray(c.image.convert("RGB"), dtype=np.int16) - refs[c.model, c.cfg_scale, c.seed])
        for c in comparison.cells
    ]
    peak = max(int(d.max()) for d in diffs) or 1
    gain = 255 / peak
    images = [Image.fromarray((d * gain).clip(0, 255).astype(np.uint8)) for d in diffs]
    captions = [f"max {d.max() / 255:.3f} | rms {np.sqrt(((d / 255.0) ** 2).mean()):.3f}" for d in diffs]
    scale = f"|cell - reference| x{gain:.1f} (white = {peak / 255:.3f})"
    return _grid(comparison, images, captions, scale, palette)


def _grid(
    comparison: Comparison, images: list[Image.Image], captions: list[str], what: str = "", palette: Palette = LIGHT
) -> Image.Image:
    spec = comparison.spec
    multi_cfg, multi_seed, multi_preset = len(spec.cfg_scales) > 1, spec.seeds > 1, len(spec.presets) > 1
    multi_model = len(spec.models) > 1
    per_row = len(spec.steps) * spec.seeds
    rows, row_captions, row_labels = [], [], []
    for start in range(0, len(comparison.cells), per_row):
        first = comparison.cells[start]
        rows.append(images[start : start + per_row])
        row_captions.append(captions[start : start + per_row])
        label = f"{model_label(first.model)}: " if multi_model else ""
        label += samplers.get(first.sampler).label
        label += f", cfg {first.cfg_scale:g}" if multi_cfg else ""
        label += f" ({first.preset})" if multi_preset else ""
        row_labels.append(label)
    col_labels = [
        f"{steps} steps" + (f", seed {seed}" if multi_seed else "") for steps in spec.steps for seed in spec.seed_list
    ]
    title = f"{comparison.class_name} (class {comparison.class_id})"
    title += "" if multi_seed else f", seed {spec.seed}"
    title += "" if multi_cfg else f", cfg {spec.cfg_scales[0]:g}"
    title += "" if multi_preset or spec.presets == ("exact",) else f", {spec.presets[0]} preset"
    title += f", {model_label(spec.models[0])}" if len(spec.models) == 1 else ""
    title += f": {what}" if what else ""
    return make_grid(rows, row_labels, col_labels, row_captions, title=title, palette=palette)
