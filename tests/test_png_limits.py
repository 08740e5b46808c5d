"""PNG metadata from hostile uploads: size limits, decompression bombs, damaged files."""

from __future__ import annotations

import io
import json
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from PIL import Image
from png_helpers import PARAMS, chunk, ihdr, join_chunks, split_chunks

from dit_demo.lab.outputs import pngmeta as grid
from dit_demo.lab.outputs.pngmeta import MAX_PNG_SIDE, METADATA_KEY, PNG_SIGNATURE, read_parameters

REPO = Path(__file__).resolve().parents[1]


def test_file_over_the_size_limit_is_refused_unread(saved, tmp_path, monkeypatch):
    monkeypatch.setattr(grid, "MAX_PNG_BYTES", 100)
    data = saved.read_bytes()
    assert len(data) > 100
    for source in (saved, data):
        with pytest.raises(ValueError, match=r"This file is 0\.0 MB; at most 100 bytes is read"):
            read_parameters(source)
    not_png = tmp_path / "big.txt"
    not_png.write_bytes(b"x" * 101)
    with pytest.raises(ValueError, match="at most 100 bytes"):  # the size is checked before the content
        read_parameters(not_png)
    monkeypatch.setattr(grid, "MAX_PNG_BYTES", 32 * 2**20)
    with pytest.raises(ValueError, match=r"This file is 50\.0 MB; at most 32 MB is read"):
        grid._check_file_size(50 * 2**20)


def test_the_limits_are_exported():
    assert grid.MAX_PNG_BYTES == 32 * 2**20
    assert grid.MAX_PNG_SIDE == 16384
    assert grid.MAX_TEXT_BYTES == 2**20


@pytest.mark.parametrize("size", [(20000, 20000), (MAX_PNG_SIDE + 1, 10), (10, 1 << 31)])
def test_too_many_pixels_a_side_is_refused_from_the_header(size, tmp_path):
    width, height = size
    data = PNG_SIGNATURE + ihdr(width, height) + chunk(b"tEXt", METADATA_KEY.encode() + b"\0{}") + chunk(b"IEND", b"")
    path = tmp_path / "wide.png"
    path.write_bytes(data)
    for source in (data, path):
        with pytest.raises(ValueError, match=rf"This PNG is {width} x {height} pixels; .* up to 16384 pixels a side"):
            read_parameters(source)


def write_bomb(path: Path, side: int, parameters: dict) -> None:
    """A valid 1-bit PNG of side x side zeros, compressed row by row, with our text chunk after the pixel data."""
    row = bytes(1 + -(-side // 8))  # filter byte, then the packed bits
    compressor = zlib.compressobj(9)
    with path.open("wb") as file:
        file.write(PNG_SIGNATURE + ihdr(side, side, bit_depth=1))
        for _ in range(side):
            if data := compressor.compress(row):
                file.write(chunk(b"IDAT", data))
        file.write(chunk(b"IDAT", compressor.flush()))
        file.write(chunk(b"tEXt", METADATA_KEY.encode() + b"\0" + json.dumps(parameters).encode()))
        file.write(chunk(b"IEND", b""))


# VmHWM: the peak resident memory of this process image. Not ru_maxrss: Linux carries the parent's peak over through
# fork and exec, so under pytest (which holds torch) both runs would report the parent's size and any read would pass.
PEAK_MEMORY = """
import sys
from dit_demo.lab.outputs.pngmeta import read_parameters
if sys.argv[2] == "read":
    assert read_parameters(sys.argv[1])["seed"] == 9
print(next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:")))
"""


def peak_kib(path: Path, action: str) -> int:
    done = subprocess.run(
        [sys.executable, "-c", PEAK_MEMORY, str(path), action], cwd=REPO, capture_output=True, text=True, check=True
    )
    return int(done.stdout.strip())


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc/self/status")
def test_a_decompression_bomb_under_the_side_limit_is_read_without_decoding_it(tmp_path):
    path = tmp_path / "bomb.png"
    write_bomb(path, 12000, PARAMS)
    assert path.stat().st_size < 1_000_000  # decoded, its 144 million pixels take 144 MB
    with pytest.warns(Image.DecompressionBombWarning), Image.open(path) as image:  # Pillow's view of it too
        assert image.size == (12000, 12000) and image.mode == "1"  # and a valid PNG
    assert read_parameters(path) == PARAMS
    grown_mib = (peak_kib(path, "read") - peak_kib(path, "import")) / 1024
    assert grown_mib < 50, f"reading the parameters grew the process by {grown_mib:.0f} MiB"


# ---- damaged and foreign files: always a ValueError


def foreign_bytes() -> dict[str, bytes]:
    jpeg, gif = io.BytesIO(), io.BytesIO()
    Image.new("RGB", (8, 8)).save(jpeg, format="JPEG")
    Image.new("P", (8, 8)).save(gif, format="GIF")
    return {
        "a JPEG": jpeg.getvalue(),
        "a GIF": gif.getvalue(),
        "the PNG signature": b"hello, I am text\n",
        "empty": b"",
    }


@pytest.mark.parametrize("what", ["a JPEG", "a GIF", "the PNG signature", "empty"])
def test_files_that_are_not_png_are_refused(what, tmp_path):
    data = foreign_bytes()[what]
    path = tmp_path / "upload.png"
    path.write_bytes(data)
    for source in (data, path):
        with pytest.raises(ValueError, match=rf"This file is not a PNG \(.*{what}"):
            read_parameters(source)


def test_every_truncation_is_refused(saved):
    data = saved.read_bytes()
    for cut in range(len(data)):
        with pytest.raises(ValueError, match="not a PNG|damaged or cut short") as caught:
            read_parameters(data[:cut])
        assert ("not a PNG" in str(caught.value)) == (cut == 0), cut


@pytest.mark.parametrize("length", [0xFFFFFFFF, 0x7FFFFFFF, 1 << 20])
def test_a_chunk_length_past_the_end_of_the_file_is_refused(saved, length):
    chunks = split_chunks(saved.read_bytes())
    lying = chunk(b"tEXt", b"x")
    lying = struct.pack(">I", length) + lying[4:]
    data = PNG_SIGNATURE + chunk(b"IHDR", chunks[0][1]) + lying + join_chunks(chunks[1:])[8:]
    with pytest.raises(ValueError, match=rf"damaged or cut short \(its tEXt chunk at byte 33 claims {length} bytes"):
        read_parameters(data)


def test_garbage_where_a_chunk_should_start_is_refused(saved):
    data = saved.read_bytes()
    with pytest.raises(ValueError, match="byte 33 does not start a chunk"):
        read_parameters(data[:33] + b"\0\0\0\0\x01\x02\x03\x04" + data[41:])
    with pytest.raises(ValueError, match="does not start with an image header"):
        read_parameters(PNG_SIGNATURE + chunk(b"tEXt", b"a\0b") + chunk(b"IEND", b""))
    with pytest.raises(ValueError, match="size of 0 x 5 pixels"):
        read_parameters(PNG_SIGNATURE + ihdr(0, 5) + chunk(b"IEND", b""))


def test_a_parameters_chunk_with_a_bad_checksum_is_refused(saved):
    data = bytearray(saved.read_bytes())
    at = data.index(b'"seed": 9')
    data[at + 8] = ord("7")
    with pytest.raises(ValueError, match="fails its checksum"):
        read_parameters(bytes(data))


def test_any_flipped_byte_gives_the_parameters_or_a_value_error(saved):
    data = saved.read_bytes()
    outcomes = set()
    for position in range(len(data)):
        for flip in (0x01, 0x80, 0xFF):
            damaged = bytearray(data)
            damaged[position] ^= flip
            try:
                outcomes.add("read" if read_parameters(bytes(damaged)) == PARAMS else "other")
            except ValueError:
                outcomes.add("refused")
    assert outcomes == {"read", "refused"}  # bytes in the pixel data are not checked; nothing else gets through


def test_other_sources_are_a_type_error():
    with pytest.raises(TypeError, match="path, the file's bytes or a PIL image"):
        read_parameters(12)  # type: ignore[arg-type]
