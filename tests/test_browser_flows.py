"""Browser flows a person meets after the first run: each test failed before its fix. Every page must also stay
free of page errors and console errors (the ``new_page`` fixture)."""

from __future__ import annotations

import zipfile

import numpy as np
from conftest import compare_in
from PIL import Image

from dit_demo.lab.outputs.generate import generate, generation_lanes
from dit_demo.lab.outputs.pngmeta import save_png

# every text the status line shows, in order, recorded by the page itself (no polling gaps)
RECORD_STATUS = """(id) => {
  window.seen = [];
  const box = document.getElementById(id);
  new MutationObserver(() => window.seen.push(box.innerText)).observe(box, {subtree: true, childList: true, characterData: true});
}"""


def test_stop_says_where_it_stopped_and_no_refusal_follows_then_a_second_run(app_url, new_page):
    page = new_page(1400, 1000)
    page.goto(app_url)
    page.get_by_role("tab", name="Compare").click()
    page.evaluate(RECORD_STATUS, "cmp-status")
    page.locator("#cmp-steps textarea").fill("600,1000")
    page.locator("#cmp-run").click()
    page.locator("#cmp-status").get_by_text("round").wait_for(timeout=60_000)
    page.locator("#cmp-stop").click()
    page.locator("#cmp-status").get_by_text("Stopped at round").wait_for(timeout=30_000)
    page.locator("#cmp-stop[disabled]").wait_for(timeout=30_000)  # the run has ended: Stop is offered no more
    page.locator("#cmp-steps textarea").fill("2,3")  # the second run: it must start and finish normally
    page.locator("#cmp-run").click()
    page.locator("#cmp-status").get_by_text("lock-step batched").wait_for(timeout=60_000)
    seen = page.evaluate("window.seen")
    assert not [text for text in seen if "refused" in text], seen
    assert any(text.startswith("Stopped at round") for text in seen)


def _generated_png(bundle, folder, sampler: str, steps: int):
    (made,) = generate(bundle, generation_lanes(["Bag"], sampler, steps, 2.0, 3))
    return save_png(made.image, folder / f"bag_{sampler}_{steps}.png", made.parameters)


def test_reproduce_runs_again_with_the_steps_of_the_png(app_url, new_page, small_bundle, tmp_path):
    png = _generated_png(small_bundle, tmp_path, "euler", 7)  # euler's own default is another count
    page = new_page(1400, 1000)
    page.goto(app_url)
    page.get_by_role("tab", name="Reproduce").click()
    page.locator("#r-file input[type=file]").set_input_files(str(png))
    page.locator("#r-text").get_by_text("Restored").wait_for(timeout=30_000)
    page.locator("#r-run").click()
    page.locator("#gen-status").get_by_text("NFE each").wait_for(timeout=60_000)
    assert "1 image(s), 7 NFE each" in page.locator("#gen-status").inner_text()
    assert page.locator("#gen-steps input[type=number]").input_value() == "7"


def test_run_it_again_on_a_comparison_png_before_the_compare_tab_was_opened(app_url, client, new_page, tmp_path):
    grid = client.predict(["ddim"], "2,3", "2", "Coat", 4, 0, "", api_name="/compare")[1]
    page = new_page(1400, 1000)
    page.goto(app_url)  # a fresh page: the Compare tab has never been shown
    page.get_by_role("tab", name="Reproduce").click()
    page.locator("#r-file input[type=file]").set_input_files(grid)
    page.locator("#r-text").get_by_text("Restored a comparison").wait_for(timeout=30_000)
    page.locator("#r-run").click()
    page.locator("#cmp-status").get_by_text("lock-step batched").wait_for(timeout=60_000)
    assert "2 cells" in page.locator("#cmp-status").inner_text()


def test_a_foreign_png_clears_the_previous_image_and_its_restored_line(app_url, new_page, small_bundle, tmp_path):
    png = _generated_png(small_bundle, tmp_path, "ddim", 3)
    Image.new("RGB", (8, 8), "red").save(tmp_path / "foreign.png")
    page = new_page(1400, 1000)
    page.goto(app_url)
    page.get_by_role("tab", name="Reproduce").click()
    page.locator("#r-file input[type=file]").set_input_files(str(png))
    page.locator("#r-image img").wait_for(timeout=30_000)
    page.locator("#r-file button[aria-label='Clear']").first.click()
    page.locator("#r-file input[type=file]").set_input_files(str(tmp_path / "foreign.png"))
    page.get_by_text("carries no DiT Sampler Lab parameters").first.wait_for(timeout=30_000)
    page.locator("#r-image img").wait_for(state="detached", timeout=30_000)
    assert "Restored" not in page.locator("#r-text").inner_text()
    assert _visible_error_pills(page) == 0


def test_a_failed_model_load_shows_the_loaded_model_and_a_whole_message(app_url, new_page, monkeypatch, tmp_path):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # the server runs in this process
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    page = new_page(1400, 1000)
    page.goto(app_url)
    loaded = page.locator("#model-name input").input_value()
    page.locator("#model-name input").fill("DiT-XL-2-512")
    page.locator("#model-name input").press("Enter")
    page.locator("#model-load").click()
    message = page.get_by_text("Could not get 'facebook/DiT-XL-2-512'").first
    message.wait_for(timeout=60_000)
    text = message.inner_text()
    page.wait_for_function(f"() => document.querySelector('#model-name input').value === {loaded!r}", timeout=30_000)
    assert "/path/to/DiT-XL-2-512" in text and "DiT-XL-2-256" not in text and text.rstrip().endswith(".")
    assert _visible_error_pills(page) == 0


def test_nothing_to_act_on_is_offered_before_there_is_something(app_url, new_page):
    page = new_page(1400, 1000)
    page.goto(app_url)
    for button in ("#gen-stop", "#gen-reuse", "#gen-send"):
        assert page.locator(button).is_disabled(), button
    page.locator("#gen-steps input[type=number]").fill("600")
    page.locator("#gen-run").click()
    page.locator("#gen-stop:not([disabled])").wait_for(timeout=30_000)  # offered while it runs
    page.locator("#gen-stop").click()
    page.locator("#gen-stop[disabled]").wait_for(timeout=30_000)
    page.locator("#gen-steps input[type=number]").fill("2")
    page.locator("#gen-run").click()
    page.locator("#gen-status").get_by_text("NFE each").wait_for(timeout=60_000)
    page.locator("#gen-send:not([disabled])").wait_for(timeout=30_000)
    assert page.locator("#gen-reuse").is_enabled() and page.locator("#gen-stop").is_disabled()
    page.get_by_role("tab", name="Compare").click()
    assert page.locator("#cmp-zip").is_disabled() and not page.locator("#cmp-table").is_visible()
    page.get_by_role("tab", name="Reproduce").click()
    assert page.locator("#r-run").is_disabled()


def _visible_error_pills(page) -> int:
    """Gradio's red "Error" labels over components (the message itself is in the toast)."""
    return page.evaluate(
        "() => [...document.querySelectorAll('.block .error')].filter((e) => e.offsetParent !== null"
        " && e.innerText.trim() === 'Error').length"
    )


def test_the_live_strip_ends_on_every_cells_final_image(client):
    strip, _, zip_path, *_ = client.predict(["ddim", "heun"], "2,40", "2", "Bag", 9, 0, "", api_name="/compare")
    with zipfile.ZipFile(zip_path) as archive:
        cells = {n: Image.open(archive.open(n)).convert("RGB") for n in archive.namelist() if "_compare_" not in n}
    assert [item["caption"] for item in strip] == ["ddim 2", "ddim 40", "heun 2", "heun 40"]
    for item in strip:
        sampler, steps = item["caption"].split()
        shown = Image.open(item["image"]).convert("RGB")
        # the strip is lossy (webp): its nearest cell must be its own, not a noisier earlier frame's
        nearest = min(cells, key=lambda name: _distance(shown, cells[name]))
        assert nearest == f"bag_{sampler}_{steps}_cfg2_seed9.png"
        assert _distance(shown, cells[nearest]) < 8


def _distance(preview: Image.Image, cell: Image.Image) -> float:
    """Mean absolute difference at the cell's own size (the preview is a whole-multiple enlargement)."""
    a = np.asarray(preview.resize(cell.size, Image.NEAREST), dtype=float)
    return float(np.abs(a - np.asarray(cell, dtype=float)).mean())


def test_generates_live_preview_is_in_view_and_whole_at_one_image(app_url, new_page):
    page = new_page(1400, 1000)
    page.goto(app_url)
    page.locator("#gen-steps input[type=number]").fill("800")  # long enough to watch on the tiny model
    page.locator("#gen-run").click()
    page.locator("#gen-preview img").first.wait_for(timeout=60_000)
    seen = page.evaluate(
        "(() => { const i = document.querySelector('#gen-preview img'); const r = i.getBoundingClientRect();"
        " const hit = document.elementFromPoint(r.x + r.width / 2, r.y + r.height / 2);"
        " return [r.top, r.bottom, r.height, innerHeight, hit === i]; })()"
    )
    page.locator("#gen-stop").click()
    page.locator("#gen-stop[disabled]").wait_for(timeout=30_000)  # the run has ended, stopped or done
    top, bottom, height, viewport, on_top = seen
    assert 0 <= top and bottom <= viewport and height >= 64 and on_top, seen


def test_on_a_phone_a_run_brings_its_results_into_view_and_dark_mode_outlives_a_reload(app_url, new_page):
    page = new_page(390, 844)
    page.goto(app_url)
    compare_in(page, "300,600", until="round")
    page.locator("#cmp-preview img").first.wait_for(timeout=60_000)
    top = page.evaluate("document.getElementById('cmp-preview').getBoundingClientRect().top")
    page.locator("#cmp-status").get_by_text("lock-step batched").wait_for(timeout=120_000)
    assert -1 < top < 844 / 2  # at the top of the screen, but for the sub-pixel the page scrolls by whole pixels
    page.locator("#page-dark").click()
    assert _next_visit_is_dark(page, app_url, new_page)
    page = new_page(390, 844, page.context)
    page.goto(app_url)
    page.locator("#page-dark").click()  # and back: the next visit opens light again
    assert not _next_visit_is_dark(page, app_url, new_page)


def _next_visit_is_dark(page, app_url, new_page) -> bool:
    """Close the page (a reload would abort its open requests, which the page logs as errors) and open
    the app again in the same browser profile."""
    again = new_page(390, 844, page.context)
    page.close()
    again.goto(app_url)
    again.locator("#gen-run").wait_for(timeout=30_000)
    dark = again.evaluate("document.body.classList.contains('dark')")
    again.close()
    return dark


def _pixels_near(shot, colour: str, tolerance: int = 40) -> int:
    target = np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)])
    pixels = np.asarray(Image.open(shot).convert("RGB"), dtype=int)
    return int((np.abs(pixels - target).max(axis=2) <= tolerance).sum())


def test_plots_draw_a_second_comparison_with_other_series_and_on_a_log_axis(app_url, new_page, tmp_path):
    from dit_demo.app.plots import PALETTE

    page = new_page(1400, 1000)
    page.goto(app_url)
    compare_in(page, "2,4", until="6 cells")
    page.locator("#cmp-samplers input").fill("heun")
    page.locator("#cmp-samplers input").press("Enter")  # a new series name: Heun
    page.locator("#cmp-steps textarea").fill("3,6")
    page.locator("#cmp-run").click()
    page.locator("#cmp-status").get_by_text("8 cells").wait_for(timeout=60_000)
    plot = page.locator("#cmp-distance-plot canvas")
    plot.wait_for(timeout=30_000)
    third = PALETTE[2]  # the series are DDIM = Euler, DPM-Solver++ 2M, Heun: Heun's line and its legend mark
    page.wait_for_function("() => document.querySelector('#cmp-distance-plot canvas').width > 0", timeout=30_000)
    plot.screenshot(path=str(tmp_path / "linear.png"))
    page.evaluate("window.drawn = document.querySelector('#cmp-distance-plot canvas').toDataURL()")
    page.locator("#cmp-axis").get_by_text("log", exact=True).click()
    redrawn = "() => { const c = document.querySelector('#cmp-distance-plot canvas'); return c && c.toDataURL() !== window.drawn; }"
    page.wait_for_function(redrawn, timeout=30_000)
    plot.screenshot(path=str(tmp_path / "log.png"))
    assert _pixels_near(tmp_path / "linear.png", third) > 150
    assert _pixels_near(tmp_path / "log.png", third) > 150


def test_the_form_starts_with_its_run_button_and_speaks_plainly(app_url, new_page):
    page = new_page(1400, 1000)
    page.goto(app_url)
    run = page.locator("#gen-run").bounding_box()
    assert run["y"] + run["height"] < 1000 / 2  # not at the bottom edge of the screen
    text = page.locator("body").inner_text()
    assert "x0" not in text and "README" not in text  # a Space's visitor sees no README
    page.locator("#gen-steps input[type=number]").fill("2")
    page.locator("#gen-run").click()
    page.locator("#gen-status").get_by_text("NFE each").wait_for(timeout=60_000)
    image, caption = (page.locator(f"#gen-images {s}").first.bounding_box() for s in ("img", ".caption-label"))
    assert caption["y"] >= image["y"] + image["height"] - 1  # the caption sits under the image, not over it


def test_a_large_comparisons_table_shows_every_row_on_the_page(app_url, new_page):
    page = new_page(1400, 1000)
    page.goto(app_url)
    page.get_by_role("tab", name="Compare").click()
    page.locator("#cmp-variants textarea").fill("dpmpp_2m[karras=true], ddpm, heun, unipc, euler_a")
    page.locator("#cmp-steps textarea").fill("2-6 (+1)")  # 8 rows x 5 step counts: 40 table rows
    page.locator("#cmp-run").click()
    page.locator("#cmp-status").get_by_text("40 cells").wait_for(timeout=120_000)
    rows = page.locator("#cmp-table [role=row]")  # the header and one per cell
    rows.nth(40).wait_for(timeout=30_000)
    inner_scroll = page.evaluate(
        "() => [...document.querySelectorAll('#cmp-table *')].filter((e) => e.scrollHeight > e.clientHeight + 2"
        " && ['auto', 'scroll'].includes(getComputedStyle(e).overflowY)).length"
    )
    last = rows.nth(40).bounding_box()
    table = page.locator("#cmp-table").bounding_box()
    assert rows.count() == 41 and inner_scroll == 0
    assert last["y"] + last["height"] <= table["y"] + table["height"]  # the last row is inside the table's box
