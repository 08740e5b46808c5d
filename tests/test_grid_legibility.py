"""Large comparison grids stay readable when the page shrinks them to its width ."""

from __future__ import annotations

import numpy as np
from PIL import Image

from dit_demo.lab.outputs.grid import MIN_CELL, make_grid

SHOWN_WIDTH = 700  # about what the Compare tab gives the grid at 1400 px


def _ink_runs(strip: Image.Image) -> list[int]:
    """Heights of the runs of rows with dark (text) pixels, top to bottom."""
    dark = (np.asarray(strip.convert("L")) < 100).any(axis=1)
    runs, length = [], 0
    for row in dark:
        if row:
            length += 1
        elif length:
            runs, length = [*runs, length], 0
    return runs + ([length] if length else [])


def test_legends_and_captions_of_a_32_cell_grid_stay_readable_when_shown_700_px_wide():
    cell = Image.new("RGB", (16, 16), "gray")
    steps = [f"{n} steps" for n in (5, 10, 15, 20, 25, 30, 40, 50)]
    rows = ["DDIM", "DPM-Solver++ 2M", "Euler", "Heun"]
    captions = [["max 0.123 | rms 0.045"] * 8 for _ in rows]
    grid = make_grid([[cell] * 8 for _ in rows], rows, steps, captions, title="Bag (class 8)")
    scale = SHOWN_WIDTH / grid.width
    last = grid.crop((grid.width - MIN_CELL, 0, grid.width, grid.height))  # the last column: no title over it
    header, *captions_ink = _ink_runs(last)
    assert header * scale >= 8  # "50 steps", as tall as 8 px on the page
    assert len(captions_ink) >= len(rows) and min(captions_ink) * scale >= 6  # every cell's caption, legible
