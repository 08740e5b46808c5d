"""The app in a real browser (Debian's Chromium, or Playwright's own): every test fails on any page
error or console error (the ``new_page`` fixture checks after the test)."""

from __future__ import annotations

import zipfile

from conftest import compare_in
from PIL import Image

from dit_demo.lab.outputs.grid import upscale


def test_browser_runs_a_comparison_by_clicking(app_url, new_page, tmp_path):
    page = new_page(1400, 1800)
    page.goto(app_url)
    page.get_by_role("tab", name="Compare").click()
    page.locator("#cmp-steps textarea").fill("4,8")
    page.locator("#cmp-run").click()
    page.locator("#cmp-grid img").wait_for(timeout=120_000)
    page.locator("#cmp-distance-plot canvas, #cmp-distance-plot svg").first.wait_for(timeout=60_000)
    page.locator("#cmp-status").get_by_text("lock-step batched").wait_for(timeout=60_000)
    shot = tmp_path / "compare.png"
    page.locator("#cmp-status").get_by_text("6 cells").wait_for(timeout=10_000)  # 3 samplers x 2 counts
    grid_size = page.evaluate(
        "(() => { const i = document.querySelector('#cmp-grid img'); return [i.naturalWidth, i.naturalHeight]; })()"
    )
    page.screenshot(path=str(shot), full_page=True)
    # the page shows the whole grid: 2 columns and 3 rows of (upscaled) cells, plus legends
    assert grid_size[0] > 2 * upscale(Image.new("RGB", (32, 32))).width and grid_size[1] > 3 * 160
    assert Image.open(shot).size[1] > 1000


def test_browser_previews_stay_visible_while_sampling_and_stop_says_where(app_url, new_page):
    page = new_page(1400, 1000)
    page.goto(app_url)
    compare_in(page, "600,1000", until="Sampling all lanes")  # 1000 rounds: several seconds on the tiny model
    page.locator("#cmp-preview img").first.wait_for(timeout=30_000)
    page.locator("#cmp-preview").scroll_into_view_if_needed()  # where the eye goes (the click may have scrolled)
    first = page.locator("#cmp-preview img").evaluate_all("imgs => imgs.map(i => i.src)")
    changed = (
        "(first) => { const now = [...document.querySelectorAll('#cmp-preview img')].map((i) => i.src);"
        " return now.length > 0 && now.join() !== first.join(); }"
    )
    page.wait_for_function(changed, arg=first, timeout=30_000)
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
    assert on_top == "IMG"
    assert first and later and first != later
    assert kept > 0


def test_browser_enter_takes_the_match_ctrl_enter_runs_and_errors_stay(app_url, new_page):
    page = new_page(1400, 1000)
    page.goto(app_url)
    picker = page.locator("#gen-classes input")
    picker.fill("sneaker")
    picker.press("Enter")
    picked = "() => [...document.querySelectorAll('#gen-classes .token')].some((t) => t.innerText.includes('Sneaker'))"
    page.wait_for_function(picked, timeout=10_000)
    chips = [t.replace("×", "").strip() for t in page.locator("#gen-classes .token").all_inner_texts()]
    page.get_by_role("tab", name="Compare").click()
    page.locator("#cmp-steps textarea").fill("2,3")
    page.locator("#cmp-steps textarea").press("Control+Enter")  # runs the tab in view
    page.locator("#cmp-status").get_by_text("lock-step batched").wait_for(timeout=60_000)
    page.locator("#cmp-steps textarea").fill("five")
    page.locator("#cmp-run").click()
    page.get_by_text("Cannot read step counts 'five'").first.wait_for(timeout=30_000)
    # the status line follows the toast (its own listener, after the refused event ends)
    page.locator("#cmp-status").get_by_text("last request was refused").wait_for(timeout=30_000)
    # a message that stays until closed: its toast runs no countdown (Gradio's default closes it in 10 s)
    toast = page.locator(".toast-body").filter(has_text="Cannot read step counts 'five'").first
    still_there = toast.is_visible() and toast.locator(".timer").count() == 0
    status = page.locator("#cmp-status").inner_text()
    grid_kept = page.locator("#cmp-grid img").is_visible()
    badges = page.locator("#cmp-grid .error, #cmp-table .error").evaluate_all(
        "els => els.filter(e => e.offsetParent !== null).length"
    )
    assert chips == ["0: T-shirt/top", "7: Sneaker"]  # the typed name did not stay, and the pick was added
    assert still_there
    assert "from the run before it" in status and grid_kept and badges == 0  # the last good results stay


def test_browser_single_image_whole_pixelated_reuse_seed_and_send_to_compare(app_url, new_page):
    page = new_page(1400, 1000)
    page.goto(app_url)
    page.locator("#gen-sampler input").fill("euler")
    page.keyboard.press("Enter")
    page.locator("#gen-steps input[type=number]").fill("3")
    page.locator("#gen-run").click()
    page.locator("#gen-status").get_by_text("NFE each").wait_for(timeout=60_000)
    page.locator("#gen-images img.px-whole").first.wait_for(timeout=30_000)  # sized by the page script
    page.evaluate("window.scrollTo(0, 0)")  # the page as it opens: the image is whole above the fold
    size = page.evaluate(
        "(() => { const i = document.querySelector('#gen-images img'); const r = i.getBoundingClientRect();"
        " return [i.naturalWidth, i.naturalHeight, r.width, r.height, r.bottom, innerHeight,"
        " getComputedStyle(i).imageRendering]; })()"
    )
    page.locator("#gen-seed input").fill("123")
    page.locator("#gen-reuse").click()  # back to the seed the image was made with
    page.wait_for_function("() => document.querySelector('#gen-seed input').value === '0'", timeout=10_000)
    reused = page.locator("#gen-seed input").input_value()
    page.locator("#gen-seed input").fill("77")
    made_cfg = page.locator("#gen-cfg input[type=number]").input_value()
    page.locator("#gen-send").click()
    page.locator("#cmp-run").wait_for(timeout=10_000)  # the Compare tab is in view
    page.wait_for_function("() => document.querySelector('#cmp-seed input').value === '0'", timeout=10_000)
    sent_seed = page.locator("#cmp-seed input").input_value()
    sent_cfg = page.locator("#cmp-cfg textarea, #cmp-cfg input").first.input_value()
    sent_samplers = [t.replace("×", "").strip() for t in page.locator("#cmp-samplers .token").all_inner_texts()]
    natural_w, natural_h, width, height, bottom, viewport_h, rendering = size
    assert width == height and width / natural_w == int(width / natural_w) >= 2  # a whole multiple of its pixels
    assert bottom <= viewport_h and rendering == "pixelated"
    assert reused == "0"
    assert any(t.startswith("Euler") for t in sent_samplers)
    assert sent_seed == "0" and float(sent_cfg) == float(made_cfg)  # the image's own seed, not the form's 77


def test_browser_phone_grid_title_is_clear_and_reproduce_shows_and_reruns(app_url, new_page, tmp_path):
    page = new_page(390, 844)
    page.goto(app_url)
    compare_in(page, "2,4")
    page.locator("#cmp-grid img").scroll_into_view_if_needed()
    page.wait_for_function("() => document.querySelector('#cmp-grid img').complete", timeout=10_000)
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
    assert on_title == "IMG" and grid_src
    assert "1 image(s), 2 NFE each" in status
