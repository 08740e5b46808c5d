"""One record type per output kind: every writer builds one, every reader reads one, and the PNGs of
version 1 (before records had a version; tests/data/records-v1) still restore."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest

from dit_demo.lab.outputs.pngmeta import read_parameters
from dit_demo.lab.outputs.records import (
    VERSION,
    BatchRecord,
    ComparisonRecord,
    ImageRecord,
    check_same_model,
    record_from_dict,
)
from dit_demo.runtime.levers import LaneLevers

V1 = Path(__file__).resolve().parent / "data" / "records-v1"
KINDS = {
    "generate": ImageRecord,
    "compare-cell": ImageRecord,
    "generate-batch": BatchRecord,
    "compare": ComparisonRecord,
}


@pytest.mark.parametrize("name", sorted(KINDS))
def test_version_1_pngs_restore_and_write_back_the_same_keys(name):
    old = read_parameters(V1 / f"{name}.png")
    record = record_from_dict(old)
    assert type(record) is KINDS[name] and "version" not in old
    new = record.to_dict()
    assert new["version"] == VERSION and record_from_dict(new) == record  # round trip
    if name != "generate-batch":
        assert {k: v for k, v in new.items() if k != "version"} == old  # nothing renamed, nothing lost


def test_the_fields_that_decide_an_image_survive_the_round_trip():
    record = ImageRecord.from_dict(read_parameters(V1 / "generate.png"))
    assert record.levers == LaneLevers(guidance_interval=(0.28, float("inf")), cache_threshold=0.05)
    assert (record.sampler, record.steps, record.seed, record.spacing, record.class_name) == (
        "euler",
        2,
        3,
        "linspace",
        "Bag",
    )
    assert record.took_shortcuts
    cell = ImageRecord.from_dict(read_parameters(V1 / "compare-cell.png"))
    assert cell.preset == "fast" and cell.took_shortcuts


def test_a1111_text_is_made_from_the_record():
    assert record_from_dict(read_parameters(V1 / "generate.png")).a1111() == (
        "Bag\nSteps: 2, Sampler: euler, CFG scale: 2, Seed: 3, Model: embedded Fashion-MNIST DiT, Schedule type: linspace"
    )
    text = record_from_dict(read_parameters(V1 / "compare.png")).a1111()
    assert text.startswith("comparison, class Trouser\nSteps: 2 / 3, Sampler: ddim / dpmpp_2m[karras=true], CFG")
    assert record_from_dict(read_parameters(V1 / "generate-batch.png")).a1111().startswith("batch of 2 images\n")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"mode": "upscale"}, "cannot restore \\('upscale'\\)"),
        ([1, 2], "cannot restore"),
        ({"mode": "generate", "version": VERSION + 1, "sampler": "ddim"}, "newer DiT Sampler Lab"),
        ({"mode": "generate", "sampler": "ddim"}, "field .class_id. is missing"),
        ({"mode": "generate", "sampler": "ddim", "steps": "x", "cfg_scale": 1, "class_id": 1, "seed": 0}, "damaged"),
        ({"mode": "generate-batch", "images": []}, "list no images"),
    ],
)
def test_foreign_or_newer_records_are_refused_with_a_reason(data, message):
    with pytest.raises(ValueError, match=message):
        record_from_dict(data)


@pytest.mark.parametrize("name", sorted(KINDS))
def test_the_app_restores_every_version_1_png(client, name):
    from gradio_client import handle_file

    message = client.predict(handle_file(str(V1 / f"{name}.png")), api_name="/reproduce")[-1]
    assert message.startswith("Restored"), message


def test_every_field_of_an_image_record_survives_the_round_trip():
    record = ImageRecord(
        model="a model",
        sampler="dpmpp_2m[karras=true]",
        steps=7,
        cfg_scale=2.5,
        class_id=3,
        class_name="Dress",
        seed=11,
        cfg_channels=3,
        spacing="linspace",
        levers=LaneLevers(guidance_interval=(0.5, 2.0), cache_threshold=0.1),
        model_levers="bf16",
        preset="fast",
        model_hash="0123abcd",
        family="sit",
    )
    assert all(getattr(record, f.name) != f.default for f in fields(ImageRecord))  # no field left at its default
    assert ImageRecord.from_dict(record.to_dict()) == record


def test_a_png_of_another_model_family_is_refused_naming_both():
    record = ImageRecord(
        model="sit-xl",
        sampler="sit_ode_euler",
        steps=2,
        cfg_scale=1.0,
        class_id=0,
        class_name="x",
        seed=0,
        family="sit",
    )
    with pytest.raises(ValueError, match="made by a sit model .sit-xl.; the loaded model, embedded, is a dit model"):
        check_same_model(record, "embedded", None, "dit")
    check_same_model(record, "another sit", None, "sit")  # same family, no hashes: taken as it is
    unmarked = ImageRecord.from_dict({k: v for k, v in record.to_dict().items() if k != "family"})
    check_same_model(unmarked, "embedded", None, "dit")  # PNGs from before families were recorded


def test_old_sampler_names_read_from_a_png_are_spelled_anew():
    data = ImageRecord(model="m", sampler="euler_ancestral", steps=2, cfg_scale=1.0, class_id=0, class_name="x", seed=0)
    old = {**data.to_dict(), "sampler": "euler_a"}
    assert ImageRecord.from_dict(old).sampler == "euler_ancestral"
    assert ImageRecord.from_dict({**old, "sampler": "dpmpp_sde[karras=true]"}).sampler == "dpmpp_2m_sde[karras=true]"
