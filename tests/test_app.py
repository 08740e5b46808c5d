"""The Gradio app end to end: a real gradio_client, and a real browser (Debian's Chromium)."""

from __future__ import annotations

import io
import os
import shutil
import socket
import zipfile

import pytest
from PIL import Image

from app import LAUNCH_SETTINGS, create_app
from dit_demo.app.screenshot import CHROMIUM_ARGS
from dit_demo.lab.grid import upscale
from dit_demo.lab.pngmeta import read_parameters


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def app_url(small_bundle_dir):
    demo = create_app(str(small_bundle_dir), "cpu", "fp32")
    port = _free_port()
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True, **LAUNCH_SETTINGS)
    yield f"http://127.0.0.1:{port}/"
    demo.close()


@pytest.fixture(scope="module")
def client(app_url):
    from gradio_client import Client

    return Client(app_url, verbose=False)


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


def _chromium() -> str | None:
    return shutil.which("chromium") or (os.path.exists("/usr/bin/chromium") and "/usr/bin/chromium") or None


def test_browser_runs_a_comparison_by_clicking(app_url, tmp_path):
    browser_path = _chromium()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    if browser_path is None or sync_playwright is None:
        if os.environ.get("CI"):
            pytest.fail("Chromium (apt-get install chromium) and playwright are required in CI")
        pytest.skip("needs Debian's chromium and the playwright package")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=browser_path, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1800})
        page.goto(app_url)
        page.get_by_role("tab", name="Compare").click()
        page.locator("#cmp-steps textarea").fill("4,8")
        page.locator("#cmp-run").click()
        page.locator("#cmp-grid img").wait_for(timeout=120_000)
        page.locator("#distance-plot canvas, #distance-plot svg").first.wait_for(timeout=60_000)
        page.locator("#cmp-status").get_by_text("lock-step batched").wait_for(timeout=60_000)
        shot = tmp_path / "compare.png"
        page.locator("#cmp-status").get_by_text("6 cells").wait_for(timeout=10_000)  # 3 samplers x 2 counts
        grid_size = page.evaluate(
            "(() => { const i = document.querySelector('#cmp-grid img'); return [i.naturalWidth, i.naturalHeight]; })()"
        )
        page.screenshot(path=str(shot), full_page=True)
        browser.close()
    # the page shows the whole grid: 2 columns and 3 rows of (upscaled) cells, plus legends
    assert grid_size[0] > 2 * upscale(Image.new("RGB", (32, 32))).width and grid_size[1] > 3 * 160
    assert Image.open(shot).size[1] > 1000


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

    from dit_demo.lab.generate import generate, generation_lanes
    from dit_demo.lab.pngmeta import save_png

    (made,) = generate(small_bundle, generation_lanes(["Bag"], "ddpm", 3, 1.5, 5, spacing="linspace"))
    assert made.parameters["spacing"] == "linspace"
    path = save_png(made.image, tmp_path / "linspace.png", made.parameters)
    message = client.predict(handle_file(str(path)), api_name="/reproduce")[-1]
    assert "Restored: Bag, ddpm 3 steps" in message and "'linspace' step grid" in message


def test_browser_previews_stay_visible_while_sampling_and_stop_says_where(app_url):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=_chromium(), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        errors = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.goto(app_url)
        page.get_by_role("tab", name="Compare").click()
        page.locator("#cmp-steps textarea").fill("600,1000")  # 1000 rounds: several seconds on the tiny test model
        page.locator("#cmp-run").click()
        page.locator("#cmp-status").get_by_text("Sampling all lanes").wait_for(timeout=60_000)
        page.locator("#cmp-preview img").first.wait_for(timeout=30_000)
        page.locator("#cmp-preview").scroll_into_view_if_needed()  # where the eye goes (the click may have scrolled)
        first = page.locator("#cmp-preview img").evaluate_all("imgs => imgs.map(i => i.src)")
        page.wait_for_timeout(1200)
        later = page.locator("#cmp-preview img").evaluate_all("imgs => imgs.map(i => i.src)")
        # what a person sees at the centre of a preview while it updates: the image, not a progress overlay
        on_top = page.evaluate(
            "(() => { const r = document.querySelector('#cmp-preview img').getBoundingClientRect();"
            " const e = document.elementFromPoint(r.x + r.width / 2, r.y + r.height / 2);"
            " return e.tagName + (e.closest('.wrap.default') ? ' overlay' : ''); })()"
        )
        page.locator("#cmp-stop").click()
        page.locator("#cmp-status").get_by_text("Stopped at round").wait_for(timeout=30_000)
        kept = page.locator("#cmp-preview img").count()
        browser.close()
    assert on_top == "IMG"
    assert first and later and first != later
    assert kept > 0
    assert not [e for e in errors if "favicon" not in e]


def test_browser_enter_takes_the_match_ctrl_enter_runs_and_errors_stay(app_url):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=_chromium(), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(app_url)
        picker = page.locator("#gen-classes input")
        picker.fill("sneak")
        picker.press("Enter")
        page.wait_for_timeout(500)
        chips = [t.replace("×", "").strip() for t in page.locator("#gen-classes .token").all_inner_texts()]
        page.get_by_role("tab", name="Compare").click()
        page.locator("#cmp-steps textarea").fill("2,3")
        page.locator("#cmp-steps textarea").press("Control+Enter")  # runs the tab in view
        page.locator("#cmp-status").get_by_text("lock-step batched").wait_for(timeout=60_000)
        page.locator("#cmp-steps textarea").fill("five")
        page.locator("#cmp-run").click()
        page.get_by_text("Cannot read step counts 'five'").first.wait_for(timeout=30_000)
        page.wait_for_timeout(12_000)  # Gradio's default toast would be gone by now
        still_there = page.get_by_text("Cannot read step counts 'five'").first.is_visible()
        status = page.locator("#cmp-status").inner_text()
        grid_kept = page.locator("#cmp-grid img").is_visible()
        badges = page.locator("#cmp-grid .error, #cmp-table .error").evaluate_all(
            "els => els.filter(e => e.offsetParent !== null).length"
        )
        browser.close()
    assert chips == ["7: Sneaker"]  # the fragment did not stay, and the untouched default gave way
    assert still_there
    assert "last request was refused" in status and grid_kept and badges == 0  # the last good results stay


def test_browser_single_image_whole_pixelated_reuse_seed_and_send_to_compare(app_url):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=_chromium(), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(app_url)
        page.locator("#gen-sampler input").fill("euler")
        page.keyboard.press("Enter")
        page.locator("#gen-steps input[type=number]").fill("3")
        page.locator("#gen-run").click()
        page.locator("#gen-status").get_by_text("NFE each").wait_for(timeout=60_000)
        page.wait_for_timeout(500)
        page.evaluate("window.scrollTo(0, 0)")  # the page as it opens: the image is whole above the fold
        size = page.evaluate(
            "(() => { const i = document.querySelector('#gen-images img'); const r = i.getBoundingClientRect();"
            " return [i.naturalWidth, i.naturalHeight, r.width, r.height, r.bottom, innerHeight,"
            " getComputedStyle(i).imageRendering]; })()"
        )
        page.locator("#gen-seed input").fill("123")
        page.locator("#gen-reuse").click()  # back to the seed the image was made with
        page.wait_for_timeout(700)
        reused = page.locator("#gen-seed input").input_value()
        page.locator("#gen-seed input").fill("77")
        made_cfg = page.locator("#gen-cfg input[type=number]").input_value()
        page.locator("#gen-send").click()
        page.locator("#cmp-run").wait_for(timeout=10_000)  # the Compare tab is in view
        page.wait_for_timeout(700)
        sent_seed = page.locator("#cmp-seed input").input_value()
        sent_cfg = page.locator("#c-cfg textarea, #c-cfg input").first.input_value()
        sent_samplers = [t.replace("×", "").strip() for t in page.locator("#cmp-samplers .token").all_inner_texts()]
        browser.close()
    natural_w, natural_h, width, height, bottom, viewport_h, rendering = size
    assert width == height and width / natural_w == int(width / natural_w) >= 2  # a whole multiple of its pixels
    assert bottom <= viewport_h and rendering == "pixelated"
    assert reused == "0"
    assert any(t.startswith("Euler") for t in sent_samplers)
    assert sent_seed == "0" and float(sent_cfg) == float(made_cfg)  # the image's own seed, not the form's 77


def test_browser_phone_grid_title_is_clear_and_reproduce_shows_and_reruns(app_url, tmp_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=_chromium(), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 390, "height": 844})
        errors = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.goto(app_url)
        page.get_by_role("tab", name="Compare").click()
        page.locator("#cmp-steps textarea").fill("2,4")
        page.locator("#cmp-run").click()
        page.locator("#cmp-status").get_by_text("lock-step batched").wait_for(timeout=60_000)
        page.locator("#cmp-grid img").scroll_into_view_if_needed()
        page.wait_for_timeout(500)
        # the title is drawn centred in the grid's top rows: nothing of Gradio's may sit on it
        on_title = page.evaluate(
            "(() => { const r = document.querySelector('#cmp-grid img').getBoundingClientRect();"
            " const e = document.elementFromPoint(r.x + r.width / 2, r.y + 0.03 * r.height); return e.tagName; })()"
        )
        grid_src = page.locator("#cmp-grid img").get_attribute("src")
        with page.expect_download() as download:
            page.locator("#cmp-zip").click()
        zip_path = tmp_path / "all.zip"
        download.value.save_as(zip_path)
        page.get_by_role("tab", name="Reproduce").click()
        with zipfile.ZipFile(zip_path) as archive:
            cell_name = next(n for n in archive.namelist() if "_euler_2_" in n)
            (tmp_path / cell_name).write_bytes(archive.read(cell_name))
        page.locator("#r-file input[type=file]").set_input_files(str(tmp_path / cell_name))
        page.locator("#r-image img").wait_for(timeout=30_000)
        page.locator("#r-params").get_by_text("euler").first.wait_for(timeout=10_000)
        page.locator("#r-run").click()  # refills Generate with the cell's settings and runs it
        page.locator("#gen-status").get_by_text("NFE each").wait_for(timeout=60_000)
        status = page.locator("#gen-status").inner_text()
        browser.close()
    assert on_title == "IMG" and grid_src
    assert "1 image(s), 2 NFE each" in status
    assert not [e for e in errors if "favicon" not in e]
