"""Building PNG files chunk by chunk, for the metadata tests."""

from __future__ import annotations

import io
import struct
import zlib

from PIL import Image
from PIL.PngImagePlugin import PngInfo

from dit_demo.lab.outputs.pngmeta import METADATA_KEY, PNG_SIGNATURE

PARAMS = {
    "mode": "compare",
    "samplers": ["ddim", "heun"],
    "steps": [10, 20],
    "class_id": "Bag",
    "cfg_scales": [1.5],
    "seed": 9,
    "label": "café",
}


def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def split_chunks(png: bytes) -> list[tuple[bytes, bytes]]:
    """(type, data) of each chunk of a well-formed PNG, for splicing test files."""
    assert png.startswith(PNG_SIGNATURE)
    chunks, position = [], len(PNG_SIGNATURE)
    while position < len(png):
        (length,) = struct.unpack(">I", png[position : position + 4])
        chunks.append((png[position + 4 : position + 8], png[position + 8 : position + 8 + length]))
        position += 12 + length
    return chunks


def join_chunks(chunks: list[tuple[bytes, bytes]]) -> bytes:
    return PNG_SIGNATURE + b"".join(chunk(kind, data) for kind, data in chunks)


def ihdr(width: int, height: int, bit_depth: int = 8, color_type: int = 0) -> bytes:
    return chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0))


def png_bytes(info: PngInfo | None = None, size: tuple[int, int] = (8, 6)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, "teal").save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()


def with_text(text: str) -> bytes:
    info = PngInfo()
    info.add_text(METADATA_KEY, text)
    return png_bytes(info)
