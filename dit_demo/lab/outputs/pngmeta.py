"""PNG files that carry the parameters that made them, and reading those back safely.

``save_png`` writes the parameters as a JSON text chunk; ``read_parameters`` reads them back from
the chunk stream itself, never decoding a pixel: it serves the public Reproduce endpoint, where
a file may come from anyone (a decompression bomb, a truncated file, something not a PNG).
"""

from __future__ import annotations

import io
import json
import os
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from PIL import Image
from PIL.PngImagePlugin import PngInfo

from dit_demo.lab.outputs.records import record_from_dict

METADATA_KEY = "dit_sampler_lab"  # JSON of the request, readable back by read_parameters()

# Limits for PNGs read back by read_parameters(), which serves the public Reproduce endpoint: files come from anyone.
MAX_PNG_BYTES = 32 * 2**20  # larger files are refused unread; the app gives Gradio's max_file_size the same value
MAX_PNG_SIDE = 16384  # pixels a side, from the header only; this app's largest grids are about 8.5k px wide
MAX_TEXT_BYTES = 2**20  # the parameters' JSON once decompressed; this app's own take a few KB

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_TEXT_CHUNKS = (b"tEXt", b"zTXt", b"iTXt")
_MAX_KEYWORD = 79  # PNG spec: a text chunk's keyword is 1-79 bytes, then a NUL
# room in a text chunk beyond the text: keyword, iTXt language tags, zlib headers of incompressible text
_TEXT_CHUNK_SLACK = 4096
_OTHER_FORMATS = {b"\xff\xd8\xff": "a JPEG", b"GIF8": "a GIF", b"RIFF": "a WebP or other RIFF file", b"BM": "a BMP"}
_JSON_KINDS = {list: "a list", str: "a string", bool: "true or false", int: "a number", float: "a number"}
_DROP_OURS = "Drop a PNG saved by this app."


def png_info(parameters: dict) -> PngInfo:
    """Our JSON, and the same settings as an A1111-style ``parameters`` line, which PNG-info tools show."""
    info = PngInfo()
    info.add_text(METADATA_KEY, json.dumps(parameters, sort_keys=True))
    text = a1111_text(parameters)
    if text:
        info.add_itxt("parameters", text)  # iTXt: UTF-8, class names may need it
    return info


def a1111_text(p: dict) -> str | None:
    """The settings in the layout of A1111's ``parameters`` chunk, for the records this app writes."""
    try:
        return record_from_dict(p).a1111()
    except ValueError:
        return None


def save_png(image: Image.Image, path: str | Path, parameters: dict) -> Path:
    """Lossless PNG with the parameters that made it embedded as a text chunk."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format="PNG", pnginfo=png_info(parameters))
    return path


def read_parameters(source: Image.Image | str | os.PathLike | bytes) -> dict:
    """The parameters saved by :func:`save_png`, from a path, the file's bytes or an open image.

    Paths and bytes are read from the PNG's chunks without decoding a pixel (uploads may be decompression bombs).
    ``ValueError`` with a message for the user if the file is not such a PNG, is damaged or passes a limit.
    """
    if isinstance(source, Image.Image):
        text = _text_from_image(source)
    elif isinstance(source, (bytes, bytearray, memoryview)):
        size = memoryview(source).nbytes
        _check_file_size(size)
        text = _text_from_png(io.BytesIO(source), size)
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source)
        size = path.stat().st_size
        _check_file_size(size)  # before reading a byte
        with path.open("rb") as file:
            text = _text_from_png(file, size)
    else:
        raise TypeError(f"read_parameters takes a path, the file's bytes or a PIL image, not {type(source).__name__}")
    if not text:  # an empty value counts as none
        raise ValueError("This image carries no DiT Sampler Lab parameters (only PNGs saved by this app do).")
    return _parse_parameters(text)


def _text_from_image(image: Image.Image) -> str | None:
    # chunks before IDAT (where Pillow writes text) are in .info once opened; .text also finds those after IDAT,
    # but decodes every pixel to get there, so it is only the fallback
    text = image.info.get(METADATA_KEY)
    if text is None:
        text = getattr(image, "text", {}).get(METADATA_KEY)
    return text


def _parse_parameters(text: str) -> dict:
    try:
        parameters = json.loads(text)
    except (ValueError, RecursionError) as exc:  # RecursionError: "[[[[..." nested past the parser's stack
        raise ValueError(f"The image's DiT Sampler Lab parameters are damaged: {exc}") from exc
    if not isinstance(parameters, dict):
        kind = _JSON_KINDS.get(type(parameters), "null" if parameters is None else type(parameters).__name__)
        raise ValueError(
            f"The image's DiT Sampler Lab parameters are not a JSON object (got {kind}); "
            f"this PNG was not saved by this app, or was edited since. {_DROP_OURS}"
        )
    return parameters


def _megabytes(size: int) -> str:
    return f"{size / 2**20:.1f} MB"


def _limit(size: int) -> str:
    # "32 MB" rather than "32.0 MB"; limits under 1 MB (set by tests) in bytes rather than "0.0 MB"
    return f"{size / 2**20:g} MB" if size >= 2**20 else f"{size:,} bytes"


def _check_file_size(size: int) -> None:
    if size > MAX_PNG_BYTES:
        raise ValueError(f"This file is {_megabytes(size)}; at most {_limit(MAX_PNG_BYTES)} is read. {_DROP_OURS}")


def _not_png(head: bytes) -> ValueError:
    if not head:
        what = "it is empty"
    else:
        kind = next((name for magic, name in _OTHER_FORMATS.items() if head.startswith(magic)), None)
        what = f"it looks like {kind}" if kind else "it does not start with the PNG signature"
    return ValueError(
        f"This file is not a PNG ({what}); DiT Sampler Lab reads parameters only from the PNGs it saves. {_DROP_OURS}"
    )


def _damaged(detail: str) -> ValueError:
    return ValueError(f"This PNG is damaged or cut short ({detail}). Drop the file as DiT Sampler Lab saved it.")


def _too_much_text() -> ValueError:
    return ValueError(
        f"The image's DiT Sampler Lab parameters are larger than {_limit(MAX_TEXT_BYTES)}, the most that is read "
        f"(this app's own take a few KB). {_DROP_OURS}"
    )


def _text_from_png(file: BinaryIO, size: int) -> str | None:
    """Our text chunk's text, or None; walks the chunk list by length and never touches the pixel data (IDAT)."""
    head = file.read(len(PNG_SIGNATURE))
    if head != PNG_SIGNATURE:
        if head and len(head) < len(PNG_SIGNATURE) and PNG_SIGNATURE.startswith(head):
            raise _damaged(f"it ends at byte {len(head)}, inside the PNG signature")
        raise _not_png(head)
    chunks = _chunks(file, size)
    _check_header(file, next(chunks))
    text = None
    for kind, length, offset in chunks:
        # the first copy wins; the walk still goes on to IEND so that a cut-short upload is reported as such
        if kind in _TEXT_CHUNKS and text is None:
            text = _our_text(file, kind, length, offset)
    return text


def _chunks(file: BinaryIO, size: int) -> Iterator[tuple[bytes, int, int]]:
    """(type, data length, data offset) of each chunk, up to IEND; lengths are checked against the file's size."""
    position = len(PNG_SIGNATURE)
    while True:
        file.seek(position)
        header = file.read(8)
        if len(header) < 8:
            raise _damaged(f"it ends at byte {size} without the IEND chunk that closes a PNG")
        length, kind = struct.unpack(">I4s", header)
        if not kind.isalpha():  # chunk types are 4 ASCII letters: anything else means the lengths went astray
            raise _damaged(f"byte {position} does not start a chunk")
        end = position + 12 + length  # length, type, data, CRC
        if end > size:
            raise _damaged(f"its {kind.decode()} chunk at byte {position} claims {length} bytes; the file has {size}")
        yield kind, length, position + 8
        if kind == b"IEND":
            return
        position = end


def _check_header(file: BinaryIO, first: tuple[bytes, int, int]) -> None:
    kind, length, offset = first
    if kind != b"IHDR" or length != 13:
        raise _damaged("it does not start with an image header (IHDR)")
    file.seek(offset)
    width, height = struct.unpack(">II", _read(file, 8))
    if width == 0 or height == 0:
        raise _damaged(f"its header gives a size of {width} x {height} pixels")
    if max(width, height) > MAX_PNG_SIDE:
        raise ValueError(
            f"This PNG is {width} x {height} pixels; DiT Sampler Lab reads PNGs up to {MAX_PNG_SIDE} pixels a side "
            f"(its own grids are smaller). {_DROP_OURS}"
        )


def _our_text(file: BinaryIO, kind: bytes, length: int, offset: int) -> str | None:
    """The text of a tEXt/zTXt/iTXt chunk if its keyword is ours; other apps' text is skipped unread."""
    file.seek(offset)
    keyword, nul, _ = file.read(min(length, _MAX_KEYWORD + 1)).partition(b"\0")
    if not nul or keyword != METADATA_KEY.encode("latin-1"):
        return None
    if length > MAX_TEXT_BYTES + _TEXT_CHUNK_SLACK:  # refused before reading it: no text that large fits the cap
        raise _too_much_text()
    file.seek(offset)
    data = _read(file, length)
    (crc,) = struct.unpack(">I", _read(file, 4))
    if zlib.crc32(kind + data) != crc:
        raise _damaged(f"its {kind.decode()} chunk with the parameters fails its checksum")
    body = data[len(keyword) + 1 :]
    if kind == b"tEXt":
        return _checked_text(body).decode("latin-1")
    if kind == b"zTXt":
        if body[:1] != b"\0":  # compression method 0 (zlib) is the only one defined
            raise _damaged("its zTXt chunk with the parameters has an unknown compression method")
        return _inflate(body[1:]).decode("latin-1")
    return _itxt_text(body)


def _read(file: BinaryIO, size: int) -> bytes:
    # lengths were checked against the size measured up front; a file cut short since must still be a ValueError
    data = file.read(size)
    if len(data) < size:
        raise _damaged("it got shorter while being read")
    return data


def _itxt_text(body: bytes) -> str:
    # compression flag, compression method, language tag NUL, translated keyword NUL, UTF-8 text
    fields = body[2:].split(b"\0", 2)
    if len(body) < 2 or body[0] not in (0, 1) or len(fields) < 3:
        raise _damaged("its iTXt chunk with the parameters is malformed")
    text = fields[2]
    if body[0] == 1:
        if body[1] != 0:
            raise _damaged("its iTXt chunk with the parameters has an unknown compression method")
        text = _inflate(text)
    try:
        return _checked_text(text).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _damaged(f"its iTXt chunk with the parameters is not UTF-8: {exc}") from exc


def _inflate(data: bytes) -> bytes:
    """zlib data decompressed to at most MAX_TEXT_BYTES: a few KB of zeros could otherwise inflate to gigabytes."""
    stream = zlib.decompressobj()
    try:
        text = stream.decompress(data, MAX_TEXT_BYTES + 1)
    except zlib.error as exc:
        raise _damaged(f"the compressed parameters do not decompress: {exc}") from exc
    if len(text) > MAX_TEXT_BYTES:
        raise _too_much_text()
    if not stream.eof:
        raise _damaged("the compressed parameters are cut short")
    return text


def _checked_text(text: bytes) -> bytes:
    if len(text) > MAX_TEXT_BYTES:
        raise _too_much_text()
    return text
