"""PNG metadata read back from uploads: round trips, and hostile files refused with a ValueError the user can act on."""

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
from PIL.PngImagePlugin import PngInfo

from dit_demo.lab import pngmeta as grid
from dit_demo.lab.pngmeta import MAX_PNG_SIDE, METADATA_KEY, PNG_SIGNATURE, png_info, read_parameters, save_png

REPO = Path(__file__).resolve().parents[1]
PARAMS = {"mode": "compare", "samplers": ["ddim", "heun"], "steps": [10, 20], "seed": 9, "label": "café"}


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


@pytest.fixture
def saved(tmp_path) -> Path:
    return save_png(Image.new("RGB", (40, 30), "navy"), tmp_path / "out" / "saved.png", PARAMS)


# ---- round trips


def test_round_trip_through_path_bytes_and_image(saved):
    assert read_parameters(saved) == PARAMS
    assert read_parameters(str(saved)) == PARAMS
    assert read_parameters(saved.read_bytes()) == PARAMS
    assert read_parameters(bytearray(saved.read_bytes())) == PARAMS
    with Image.open(saved) as image:
        assert read_parameters(image) == PARAMS


def test_save_png_writes_what_pillow_writes_with_one_text_chunk_before_idat(saved):
    info = PngInfo()
    info.add_text(METADATA_KEY, json.dumps(PARAMS, sort_keys=True))
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), "navy").save(buffer, format="PNG", pnginfo=info)
    assert saved.read_bytes() == buffer.getvalue()
    assert png_info(PARAMS).chunks == info.chunks
    kinds = [kind for kind, _ in split_chunks(saved.read_bytes())]
    assert kinds.index(b"tEXt") < kinds.index(b"IDAT")  # where Pillow puts text; other tools may put it after


def test_text_chunk_after_the_pixel_data_is_found(saved, tmp_path):
    chunks = split_chunks(saved.read_bytes())
    text = next(c for c in chunks if c[0] == b"tEXt")
    chunks.remove(text)
    chunks.insert(len(chunks) - 1, text)  # just before IEND
    assert [kind for kind, _ in chunks][-3:] == [b"IDAT", b"tEXt", b"IEND"]
    moved = join_chunks(chunks)
    (tmp_path / "moved.png").write_bytes(moved)
    assert read_parameters(moved) == PARAMS
    assert read_parameters(tmp_path / "moved.png") == PARAMS
    with Image.open(io.BytesIO(moved)) as image:  # the PIL branch falls back to .text
        assert read_parameters(image) == PARAMS


def test_ztxt_and_itxt_carrying_the_key_are_read():
    zipped = PngInfo()
    zipped.add_text(METADATA_KEY, json.dumps(PARAMS), zip=True)
    for zip_itxt in (False, True):
        international = PngInfo()
        international.add_itxt(
            METADATA_KEY, json.dumps(PARAMS, ensure_ascii=False), lang="en", tkey="Paramètres", zip=zip_itxt
        )
        data = png_bytes(international)
        assert b"iTXt" in data and (zip_itxt or "café".encode() in data)
        assert read_parameters(data) == PARAMS
    data = png_bytes(zipped)
    assert b"zTXt" in data and b"tEXt" not in data
    assert read_parameters(data) == PARAMS


def test_other_text_chunks_are_skipped():
    info = PngInfo()
    info.add_text("Software", "something else")
    info.add_text(METADATA_KEY + "_old", "[1]")
    info.add_itxt("XML:com.adobe.xmp", "<x/>" * 100, zip=True)
    info.add_text(METADATA_KEY, json.dumps(PARAMS))
    assert read_parameters(png_bytes(info)) == PARAMS


def test_missing_key_keeps_its_message(tmp_path):
    info = PngInfo()
    info.add_text("Software", "another app")
    for data in (png_bytes(), png_bytes(info)):
        with pytest.raises(ValueError, match=r"carries no DiT Sampler Lab parameters \(only PNGs saved by this app"):
            read_parameters(data)
    with pytest.raises(ValueError, match="carries no DiT Sampler Lab parameters"):
        read_parameters(Image.new("RGB", (4, 4)))


# ---- what the parameters hold


@pytest.mark.parametrize(
    ("text", "kind"), [("[1, 2]", "a list"), ("null", "null"), ("3", "a number"), ('"x"', "a string")]
)
def test_json_that_is_not_an_object_is_refused(text, kind):
    message = rf"not a JSON object \(got {kind}\)"
    with pytest.raises(ValueError, match=message):
        read_parameters(with_text(text))
    with Image.open(io.BytesIO(with_text(text))) as image:
        with pytest.raises(ValueError, match=message):
            read_parameters(image)


@pytest.mark.parametrize("text", ['{"mode": ', "[" * 100_000, "{" + "\x00" * 3])
def test_damaged_json_is_refused(text):
    with pytest.raises(ValueError, match="parameters are damaged"):
        read_parameters(with_text(text))


def test_ztxt_past_the_text_cap_is_refused():
    info = PngInfo()
    info.add_text(METADATA_KEY, json.dumps({"pad": " " * (grid.MAX_TEXT_BYTES + 10)}), zip=True)
    data = png_bytes(info)
    assert len(data) < 10_000  # a few KB that would inflate past the cap
    with pytest.raises(ValueError, match=r"parameters are larger than 1 MB"):
        read_parameters(data)


def test_text_chunks_past_the_text_cap_are_refused():
    big = json.dumps({"pad": " " * (grid.MAX_TEXT_BYTES + 10)})
    plain, international = PngInfo(), PngInfo()
    plain.add_text(METADATA_KEY, big)
    international.add_itxt(METADATA_KEY, big, zip=True)
    for info in (plain, international):
        with pytest.raises(ValueError, match=r"parameters are larger than 1 MB"):
            read_parameters(png_bytes(info))


def test_broken_compressed_text_is_refused():
    chunks = split_chunks(png_bytes())
    good = zlib.compress(json.dumps(PARAMS).encode())
    key = METADATA_KEY.encode() + b"\0"
    bodies = [
        (b"zTXt", key + b"\0" + good[: len(good) // 2]),  # stream cut short
        (b"zTXt", key + b"\0" + b"not zlib at all"),
        (b"zTXt", key + b"\x07" + good),  # unknown compression method
        (b"iTXt", key + b"\x01\x00en\0\0" + b"garbage"),
        (b"iTXt", key + b"\x00\x00en\0\0" + b"\xff\xfe{}"),  # not UTF-8
        (b"iTXt", key + b"\x00"),  # fields missing
    ]
    for kind, body in bodies:
        with pytest.raises(ValueError, match="damaged or cut short"):
            read_parameters(join_chunks([chunks[0], (kind, body), *chunks[1:]]))


# ---- limits


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
from dit_demo.lab.pngmeta import read_parameters
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
