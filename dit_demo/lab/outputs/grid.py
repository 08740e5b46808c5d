"""Labeled grid images: rows x columns of cells with legends drawn on the image."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageFont

MIN_CELL = 160  # tiny models make 32 px images: upscale (nearest) so a grid is readable


def _font(size: int) -> ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


@dataclass(frozen=True)
class Palette:
    background: str = "white"
    text: str = "black"
    caption: str = "#333333"
    empty: str = "#eeeeee"  # a cell with no image


LIGHT = Palette()
DARK = Palette(background="#0b0f19", text="#e5e7eb", caption="#9ca3af", empty="#1f2937")  # a dark page's colours
LEGEND_PER_WIDTH = 50  # legend font size: at least 1/50 of the cells' width (12 px when shown 600 px wide)


def _caption_layout(probe: ImageDraw.ImageDraw, captions, cell: int, size: int) -> tuple[ImageFont.ImageFont, bool]:
    """The largest font up to ``size`` in which every caption fits under its cell, and whether the
    captions break at their " | " into lines (when that lets the font be larger)."""
    texts = [t for row in captions or [] for t in row] or [""]

    def fits(font: ImageFont.ImageFont, lines: bool) -> bool:
        parts = [p for t in texts for p in (t.split(" | ") if lines else [t])]
        return max(probe.textlength(p, font=font) for p in parts) <= 0.96 * cell

    for lines in (False, True):
        if fits(_font(size), lines):
            return _font(size), lines
    while size > 9 and not fits(_font(size), True):
        size -= 1
    return _font(size), True


def upscale(image: Image.Image, min_size: int = MIN_CELL) -> Image.Image:
    if image.width >= min_size:
        return image
    factor = -(-min_size // image.width)
    return image.resize((image.width * factor, image.height * factor), Image.NEAREST)


def make_grid(
    cells: Sequence[Sequence[Image.Image | None]],
    row_labels: Sequence[str],
    col_labels: Sequence[str],
    captions: Sequence[Sequence[str]] | None = None,
    title: str = "",
    palette: Palette = LIGHT,
) -> Image.Image:
    """Rows x columns of images with legends drawn on the image (row labels left, columns on top)."""
    first = next(img for row in cells for img in row if img is not None)
    cell = upscale(first).size[0]
    # a wide grid is shown shrunk to the page: its legends grow with it, so they stay readable there
    font = _font(max(14, cell // 10, cell * len(col_labels) // LEGEND_PER_WIDTH))
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    small, broken = _caption_layout(probe, captions, cell, font.size)
    lines = max((len(t.split(" | ")) for row in captions or [] for t in row), default=1) if broken else 1
    left = max(probe.textlength(label, font=font) for label in row_labels) + 20
    line = font.size + 6
    top = line * (2 if title else 1) + 10
    caption_h = (lines * (small.size + 2) + 6) if captions else 0
    width = int(left + cell * len(col_labels))
    height = int(top + (cell + caption_h) * len(row_labels))
    grid = Image.new("RGB", (width, height), palette.background)
    draw = ImageDraw.Draw(grid)
    if title:  # centred: viewers such as Gradio's image box overlay their label on the top-left corner
        draw.text((max(10, (width - draw.textlength(title, font=font)) / 2), 5), title, fill=palette.text, font=font)
    for j, label in enumerate(col_labels):
        x = left + j * cell + (cell - draw.textlength(label, font=font)) / 2
        draw.text((x, top - line), label, fill=palette.text, font=font)
    for i, label in enumerate(row_labels):
        y0 = top + i * (cell + caption_h)
        draw.text((10, y0 + cell / 2 - font.size / 2), label, fill=palette.text, font=font)
        for j in range(len(col_labels)):
            image = cells[i][j]
            x0 = int(left + j * cell)
            if image is None:
                draw.rectangle([x0, y0, x0 + cell - 1, y0 + cell - 1], fill=palette.empty)
            else:
                grid.paste(upscale(image).resize((cell, cell), Image.NEAREST), (x0, int(y0)))
            if captions:
                parts = captions[i][j].split(" | ") if broken else [captions[i][j]]
                for k, text in enumerate(parts):
                    x = x0 + (cell - draw.textlength(text, font=small)) / 2
                    draw.text((x, y0 + cell + 2 + k * (small.size + 2)), text, fill=palette.caption, font=small)
    return grid
