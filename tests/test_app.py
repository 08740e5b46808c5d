"""The Gradio app end to end through a real gradio_client (the browser tests are in test_browser.py)."""

from __future__ import annotations

import io
import os
import zipfile

import pytest
from PIL import Image

from dit_demo.lab.outputs.grid import upscale
from dit_demo.lab.outputs.pngmeta import read_parameters


def test_generate_endpoint_returns_pngs_with_parameters(client):
    _, gallery, summary = client.predict(["Sneaker", "8: Bag"], "ddim", 4, 3.0, 0, 7, 2, api_name="/generate")
    assert len(gallery) == 4 and "NFE" in summary
    first = Image.open(gallery[0]["image"])
    assert first.format == "PNG"
    params = read_parameters(first)
    assert (params["class_name"], params["sampler"], params["steps"], params["seed"]) == ("Sneaker", "ddim", 4, 7)
    assert gallery[0]["caption"].startswith("Sneaker | ddim 4 steps")
    # the downloaded file says what it is
    assert [os.path.basename(g["image"]) for g in gallery[:2]] == [
        "sneaker_ddim_4_cfg3_seed7.png",
        "sneaker_ddim_4_cfg3_seed8.png",
    ]


def test_compare_endpoint_two_samplers_by_two_step_counts(client):
    out = client.predict(["ddim", "heun"], "3,6", "4", "Coat", 5, 0, "", api_name="/compare")
    _, grid_path, zip_path, table, _, _, summary = out
    grid = Image.open(grid_path)
    with zipfile.ZipFile(zip_path) as archive:
        names = archive.namelist()
        first = Image.open(io.BytesIO(archive.read("coat_ddim_3_cfg4_seed5.png")))
        cell_params = read_parameters(archive.read("coat_heun_6_cfg4_seed5.png"))
    cell = upscale(first).width
    # 2 rows x 2 columns of (upscaled) cells plus legends on the left and top, captions under each row
    assert 2 * cell < grid.width < 2 * cell + 400
    assert 2 * cell < grid.height < 2 * cell + 250
    assert read_parameters(grid)["samplers"] == ["ddim", "heun"]
    assert os.path.basename(grid_path) == "coat_compare_ddim-heun_seed5.png"
    assert os.path.basename(zip_path) == "coat_compare_ddim-heun_seed5.zip"
    # the zip: the grid, its difference view, and every cell as a PNG that Reproduce can make again
    assert sorted(names) == sorted(
        [
            "coat_compare_ddim-heun_seed5.png",
            "coat_compare_ddim-heun_seed5_difference.png",
            *(f"coat_{s}_{n}_cfg4_seed5.png" for s in ("ddim", "heun") for n in (3, 6)),
        ]
    )
    assert (cell_params["mode"], cell_params["sampler"], cell_params["steps"], cell_params["seed"]) == (
        "generate",
        "heun",
        6,
        5,
    )
    headers = table["headers"]
    assert headers[:3] == ["Sampler", "Steps", "Latent RMSE to reference"]  # distances before costs
    assert [row[headers.index("NFE")] for row in table["data"]] == [3, 6, 5, 11]  # Heun pays 2 per step
    assert [row[headers.index("Reference")] for row in table["data"]] == ["", "reference", "", ""]
    assert "Coat" in summary


def test_compare_endpoint_with_variants_seeds_and_presets(client):
    out = client.predict(
        ["ddim"],
        "4",
        "2",
        "Coat",
        3,
        0,
        "",
        "dpmpp_2m[karras=true]",
        2,
        ["exact", "fast"],
        "difference",
        api_name="/compare",
    )
    _, shown_path, _, table, _, _, summary = out
    shown = read_parameters(shown_path)
    assert shown["samplers"] == ["ddim", "dpmpp_2m[karras=true]"] and shown["seeds"] == 2
    assert shown["presets"] == ["exact", "fast"]
    assert os.path.basename(shown_path).endswith("_difference.png")  # the view asked for
    headers, rows = table["headers"], table["data"]
    assert "± (sd over seeds)" in headers and "Preset" in headers and len(rows) == 4
    assert [r[0] for r in rows] == ["DDIM", "DPM-Solver++ 2M [karras=true]"] * 2
    assert "mean (and sd) over 2 seeds" in summary


def test_reproduce_restores_a_comparison_from_its_png(client, tmp_path):
    from gradio_client import handle_file

    out = client.predict(["dpmpp_2m", "euler"], "2,4", "1.5", "Trouser", 42, 3, "", api_name="/compare")
    restored = client.predict(handle_file(out[1]), api_name="/reproduce")
    samplers_, steps, cfgs, class_item, seed, channels, ref, variants, seeds, presets, message = restored[-11:]
    assert (samplers_, steps, cfgs, seed, channels) == (["dpmpp_2m", "euler"], "2,4", "1.5", 42, 3)
    assert class_item.startswith("1: Trouser") and "Restored a comparison" in message
    assert (variants, seeds, presets) == ("", 1, ["exact"])


def test_reproduce_refuses_a_foreign_png(client, tmp_path):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    Image.new("RGB", (8, 8)).save(tmp_path / "plain.png")
    with pytest.raises(AppError, match="carries no DiT Sampler Lab parameters"):
        client.predict(handle_file(str(tmp_path / "plain.png")), api_name="/reproduce")


def test_failed_model_switch_keeps_the_current_model(client, monkeypatch, tmp_path):
    import huggingface_hub.constants
    from gradio_client.exceptions import AppError

    # offline with an empty cache, whatever the machine's network: the load fails with a message that says what to do
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(AppError, match="(?s)Could not get 'facebook/DiT-XL-2-256'.*local folder"):
        client.predict("facebook/DiT-XL-2-256", api_name="/load_model")
    with pytest.raises(AppError, match="not offered here"):
        client.predict("someone/else", api_name="/load_model")
    _, gallery, _ = client.predict(["Shirt"], "euler", 3, 2.0, 0, 0, 1, api_name="/generate")
    assert gallery[0]["caption"].startswith("Shirt | euler 3 steps")


def test_reproduce_says_when_a_png_used_another_step_grid(client, tmp_path, small_bundle):
    from gradio_client import handle_file

    from dit_demo.lab.outputs.generate import generate, generation_lanes
    from dit_demo.lab.outputs.pngmeta import save_png

    (made,) = generate(small_bundle, generation_lanes(["Bag"], "ddpm", 3, 1.5, 5, spacing="linspace"))
    assert made.parameters["spacing"] == "linspace"
    path = save_png(made.image, tmp_path / "linspace.png", made.parameters)
    message = client.predict(handle_file(str(path)), api_name="/reproduce")[-1]
    assert "Restored: Bag, ddpm 3 steps, cfg 1.5, seed 5." in message and "'linspace' step grid" in message
