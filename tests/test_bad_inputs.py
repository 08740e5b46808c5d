"""Every bad input through the real app gets a sentence naming the field, and the server keeps serving.

One row per case: (endpoint, arguments, a substring the message must contain). Arguments are the
endpoint's public parameters in order; ``PNG(...)`` stands for an uploaded file made in the test.
"""

from __future__ import annotations

import json
import struct
import zlib

import pytest
from conftest import serve
from PIL import Image

from app import create_app
from dit_demo.lab.outputs.pngmeta import METADATA_KEY

G = {"classes": ["Coat"], "sampler": "ddim", "steps": 2, "cfg": 1.5, "channels": 0, "seed": 0, "per_class": 1}
C = {"samplers": ["ddim"], "steps": "2", "cfgs": "1.5", "class": "Coat", "seed": 0, "channels": 0, "reference": ""}
ALL_SAMPLERS = ["ddpm", "ddpm_fixed", "ddim", "dpmpp_2m", "dpmpp_2m_karras", "dpmpp_3m", "euler", "heun"]


def gen(**changes):
    return ("/generate", tuple({**G, **changes}.values()))


def cmp(**changes):
    return ("/compare", tuple({**C, **changes}.values()))


class PNG:
    """An upload for /reproduce: our metadata chunk holding ``text`` (or none), or raw ``data``."""

    def __init__(self, text: str | None = None, data: bytes | None = None, size: tuple[int, int] = (8, 8)):
        self.text, self.data, self.size = text, data, size

    def write(self, path) -> str:
        if self.data is not None:
            path.write_bytes(self.data)
        elif self.size != (8, 8):  # a header claiming a huge image: a few hundred bytes on disk
            path.write_bytes(_png_header_only(*self.size))
        else:
            info = None
            if self.text is not None:
                from PIL.PngImagePlugin import PngInfo

                info = PngInfo()
                info.add_text(METADATA_KEY, self.text)
            Image.new("RGB", self.size).save(path, pnginfo=info)
        return str(path)


def _png_header_only(width: int, height: int) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def meta(**params) -> str:
    return json.dumps(params)


GOOD_COMPARE = {"mode": "compare", "samplers": ["ddim"], "steps": [2], "class_id": 1, "seed": 0, "cfg_scales": [1.5]}

CASES = [
    # /compare: step counts
    (*cmp(steps="1-99999999999999999999 (+1)"), "this model takes 1 to 1000 steps"),
    (*cmp(steps="1-" + "9" * 400 + " [2]"), "at most 200 are read"),
    (*cmp(steps="1-" + "9" * 150 + " [2]"), "this model takes 1 to 1000 steps"),
    (*cmp(steps=None), "Step counts are missing"),
    (*cmp(steps="²"), "Cannot read step counts '²'"),
    (*cmp(steps="9" * 5000), "at most 200 are read"),
    (*cmp(steps="10,,"), "empty item between commas"),
    (*cmp(steps="10,"), "empty item between commas"),
    (*cmp(steps="1-100000 [1]"), "Step count '100000' in '1-100000 [1]' is out of range"),
    (*cmp(steps="1-5 [1]"), "must be between 2 and 5"),
    (*cmp(steps="1-3 [9]"), "must be between 2 and 3"),
    (*cmp(steps="0"), "this model takes 1 to 1000 steps"),
    (*cmp(steps="five"), "Cannot read step counts 'five'"),
    (*cmp(steps="50-10 (+10)"), "runs backwards"),
    (*cmp(steps="10-50 (+0)"), "The step of range '10-50 (+0)' must be between 1 and"),
    (*cmp(steps="1-100 (+1)"), "gives 100 step counts; at most 16"),
    (*cmp(steps=["2", None]), "Step count is missing"),
    (*cmp(steps={"a": 1}), "Step counts must be text"),
    # /compare: samplers, cfg scales, class, seed, channels, reference, size
    (*cmp(samplers=["nope"]), "Unknown sampler 'nope'; available: ddpm"),
    (*cmp(samplers=[f"fake{i}" for i in range(4001)]), "Too many samplers (4001); at most 16"),
    (*cmp(samplers=[]), "No samplers given"),
    (*cmp(samplers=None), "No samplers given"),
    (*cmp(samplers=[3]), "Sampler names must be text"),
    (*cmp(samplers=ALL_SAMPLERS, steps="1-16 [16]"), "= 128 cells; at most 64 per request"),
    (*cmp(cfgs=None), "CFG scales are missing"),
    (*cmp(cfgs="abc"), "CFG scale must be a number between 0 and 50"),
    (*cmp(cfgs="nan"), "must be a finite number between 0 and 50"),
    (*cmp(cfgs="1e999"), "must be a finite number between 0 and 50"),
    (*cmp(cfgs="-1"), "must be a finite number between 0 and 50, got '-1'"),
    (*cmp(cfgs="1,,2"), "empty item between commas"),
    (*cmp(cfgs=",".join(["1"] * 17)), "Too many CFG scales (17)"),
    (*cmp(**{"class": "Cot"}), "Did you mean: 'Coat'"),
    (*cmp(**{"class": None}), "Class is missing"),
    (*cmp(**{"class": "x" * 5000}), "characters long; no class name is longer than 200"),
    (*cmp(**{"class": "²"}), "Unknown class '²'"),
    (*cmp(seed=-1), "Seed must be between 0"),
    (*cmp(seed="abc"), "Seed must be a whole number"),
    (*cmp(seed=1.5), "Seed must be a whole number"),
    (*cmp(channels=2), "cfg_channels must be one of [3, 4]"),
    (*cmp(channels="all"), "cfg_channels must be one of [3, 4]"),
    (*cmp(reference="ddim@abc"), "The reference's step count ('abc' in 'ddim@abc') must be a whole number"),
    (*cmp(reference="nope@25"), "Unknown sampler 'nope'"),
    (*cmp(reference="ddim"), "must look like ddim@250 (sampler@steps)"),
    (*cmp(reference="ddim@5000"), "must be between 1 and 1000"),
    # /generate
    (*gen(steps="abc"), "Steps for ddim must be a whole number between 1 and 1000, got 'abc'"),
    (*gen(steps="NaN"), "Steps for ddim must be a whole number"),
    (*gen(steps=None), "Steps for ddim is missing"),
    (*gen(steps=0), "Steps for ddim must be between 1 and 1000, got 0"),
    (*gen(steps=2.5), "Steps for ddim must be a whole number"),
    (*gen(steps=10**30), "Steps for ddim must be between 1 and 1000"),
    (*gen(seed="abc"), "Seed must be a whole number"),
    (*gen(seed="NaN"), "Seed must be a whole number"),
    (*gen(seed=2**64), "Seed must be between 0"),
    (*gen(cfg="lots"), "CFG scale must be a number"),
    (*gen(cfg=None), "CFG scale is missing"),
    (*gen(cfg="inf"), "must be a finite number"),
    (*gen(sampler="nope"), "Unknown sampler 'nope'"),
    (*gen(classes=[]), "Choose at least one class"),
    (*gen(classes=None), "Choose at least one class"),
    (*gen(classes=["Coat", "Shrit"]), "Did you mean: 'Shirt'"),
    (
        *gen(classes=["Cot", "Shrit"]),
        "2 of the classes are not this model's: Unknown class 'Cot'. Did you mean: 'Coat'",
    ),
    (*gen(per_class=0), "Images per class must be between 1 and 64"),
    (*gen(classes=["Coat"] * 9, per_class=8), "9 classes x 8 images per class, at most 64"),
    (*gen(channels="3.5"), "cfg_channels must be one of [3, 4]"),
    (
        *gen(classes=["Coat", "Bag"] * 4, sampler="heun", steps=1000, cfg=4.0, per_class=8),
        "limit (--max-request-seconds",
    ),
    # /reproduce
    ("/reproduce", (PNG(text="[1, 2]"),), "not a JSON object"),
    ("/reproduce", (PNG(text="null"),), "not a JSON object"),
    ("/reproduce", (PNG(text="{broken"),), "damaged"),
    ("/reproduce", (PNG(),), "carries no DiT Sampler Lab parameters"),
    ("/reproduce", (PNG(data=b"just some text, not an image"),), "This file is not a PNG"),
    ("/reproduce", (PNG(size=(20000, 20000)),), "up to 16384 pixels a side"),
    ("/reproduce", (PNG(text=meta(mode="video")),), "of a kind this app cannot restore ('video')"),
    ("/reproduce", (PNG(text=meta(mode="generate", sampler="ddim")),), "field 'class_id' is missing"),
    ("/reproduce", (PNG(text=meta(**{**GOOD_COMPARE, "steps": ["a"]})),), "Step count must be a whole number"),
    ("/reproduce", (PNG(text=meta(**{**GOOD_COMPARE, "class_id": 55})),), "Class id 55 is out of range"),
    ("/reproduce", (None,), "Drop a PNG saved by DiT Sampler Lab"),
    # /load_model
    ("/load_model", ("someone/else",), "not offered here"),
    ("/load_model", (None,), "Choose a model"),
]


@pytest.fixture(scope="module")
def client(small_bundle_dir):
    from gradio_client import Client

    # 5 s of estimated work per request: the tiny test model answers the good requests here in
    # milliseconds (even counted 4x for the server's overhead), while 64 Heun lanes of 1000 steps
    # with guidance cost it well over 10 s
    with serve(create_app(str(small_bundle_dir), "cpu", "fp32", max_request_seconds=5.0)) as url:
        yield Client(url, verbose=False)


def _upload(arg, tmp_path):
    from gradio_client import handle_file

    return handle_file(arg.write(tmp_path / "upload.png")) if isinstance(arg, PNG) else arg


@pytest.mark.parametrize(
    ("endpoint", "args", "message"), CASES, ids=[f"{i:02d}-{c[0][1:]}" for i, c in enumerate(CASES)]
)
def test_bad_input_gets_a_specific_message_and_the_server_keeps_serving(client, tmp_path, endpoint, args, message):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError) as info:
        client.predict(*(_upload(a, tmp_path) for a in args), api_name=endpoint)
    assert message in str(info.value)
    _, gallery, _ = client.predict(*G.values(), api_name="/generate")
    assert len(gallery) == 1


def test_there_are_at_least_forty_cases():
    assert len(CASES) >= 40


@pytest.mark.parametrize("channels", [0, 3, "0", "3", 3.0, None])
def test_cfg_channels_accepts_what_the_api_advertises(client, channels):
    _, gallery, _ = client.predict(*gen(channels=channels)[1], api_name="/generate")
    assert len(gallery) == 1


@pytest.mark.parametrize(("steps", "seed"), [("3", "7"), (3.0, 7.0), (3, 7)])
def test_numbers_sent_as_text_or_floats_are_read(client, steps, seed):
    from dit_demo.lab.outputs.pngmeta import read_parameters

    _, gallery, _ = client.predict(*gen(steps=steps, seed=seed)[1], api_name="/generate")
    params = read_parameters(gallery[0]["image"])
    assert (params["steps"], params["seed"]) == (3, 7)


def test_an_upload_over_the_size_limit_is_refused_and_not_kept(client, tmp_path):
    from gradio_client import handle_file

    from dit_demo.lab.outputs.pngmeta import MAX_PNG_BYTES

    big = tmp_path / "big.png"
    with big.open("wb") as f:
        f.truncate(MAX_PNG_BYTES + 1)
    with pytest.raises(Exception, match="(?i)file size|too large|exceeds|413"):
        client.predict(handle_file(str(big)), api_name="/reproduce")
    _, gallery, _ = client.predict(*G.values(), api_name="/generate")
    assert len(gallery) == 1
