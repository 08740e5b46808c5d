"""PNG metadata read back from uploads: round trips, and hostile files refused with a ValueError the user can act on."""

from __future__ import annotations

import io
import json
import zlib
from pathlib import Path

import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo
from png_helpers import PARAMS, join_chunks, png_bytes, split_chunks, with_text

from dit_demo.lab.outputs import pngmeta as grid
from dit_demo.lab.outputs.pngmeta import METADATA_KEY, png_info, read_parameters, save_png

REPO = Path(__file__).resolve().parents[1]


# ---- round trips


def test_round_trip_through_path_bytes_and_image(saved):
    assert read_parameters(saved) == PARAMS
    assert read_parameters(str(saved)) == PARAMS
    assert read_parameters(saved.read_bytes()) == PARAMS
    assert read_parameters(bytearray(saved.read_bytes())) == PARAMS
    with Image.open(saved) as image:
        assert read_parameters(image) == PARAMS


def test_save_png_writes_what_pillow_writes_with_our_text_chunks_before_idat(saved):
    info = PngInfo()
    info.add_text(METADATA_KEY, json.dumps(PARAMS, sort_keys=True))
    info.add_itxt("parameters", "comparison, class Bag\nSteps: 10 / 20, Sampler: ddim / heun, CFG scale: 1.5, Seed: 9")
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), "navy").save(buffer, format="PNG", pnginfo=info)
    assert saved.read_bytes() == buffer.getvalue()
    assert png_info(PARAMS).chunks == info.chunks
    kinds = [kind for kind, _ in split_chunks(saved.read_bytes())]
    assert kinds.index(b"tEXt") < kinds.index(b"iTXt") < kinds.index(b"IDAT")  # other tools may put text after


def test_png_info_tools_see_the_settings_a1111_style(tmp_path):
    params = {
        "mode": "generate",
        "class_id": 7,
        "class_name": "Sneaker",
        "sampler": "dpmpp_2m",
        "steps": 25,
        "cfg_scale": 1.5,
        "seed": 3,
        "model": "embedded Fashion-MNIST DiT",
    }
    path = save_png(Image.new("RGB", (8, 8)), tmp_path / "a.png", params)
    assert Image.open(path).info["parameters"] == (
        "Sneaker\nSteps: 25, Sampler: dpmpp_2m, CFG scale: 1.5, Seed: 3, Model: embedded Fashion-MNIST DiT"
    )
    assert read_parameters(path) == params  # ours is still the one read back


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
