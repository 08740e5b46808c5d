"""Pickers and dark mode in the browser."""

from __future__ import annotations

from conftest import compare_in


def test_enter_takes_the_exact_match_not_the_first_that_contains_it(app_url, new_page):
    page = new_page(1400, 1000)
    page.goto(app_url)
    page.locator("#gen-sampler input").fill("DDIM")  # "DDPM (fixed variance) / DDIM eta=1" comes first
    page.locator("#gen-sampler input").press("Enter")
    page.wait_for_function(
        "() => document.querySelector('#gen-sampler input').value.startsWith('DDIM')", timeout=10_000
    )
    page.get_by_role("tab", name="Compare").click()
    chip = page.locator("#cmp-samplers .token").filter(has_text="DDIM")
    chip.locator(".token-remove").click()  # the default rows include DDIM: take it out, then add it back
    chip.wait_for(state="detached", timeout=10_000)
    page.locator("#cmp-samplers input").fill("ddim")
    page.locator("#cmp-samplers input").press("Enter")
    chip.wait_for(timeout=10_000)
    chips = [t.replace("×", "").strip() for t in page.locator("#cmp-samplers .token").all_inner_texts()]
    assert "DDIM (1 NFE/step)" in chips and not any("eta=1" in c for c in chips)


def test_ctrl_enter_with_a_class_half_typed_runs_the_class_the_picker_shows(app_url, new_page):
    page = new_page(1400, 1000)
    page.goto(app_url)
    page.locator("#gen-steps input[type=number]").fill("3")
    picker = page.locator("#gen-classes input")
    picker.click()
    picker.press_sequentially("trous")
    picker.press("Control+Enter")
    page.locator("#gen-status").get_by_text("NFE each").wait_for(timeout=60_000)
    captions = page.locator("#gen-images .caption-label").all_inner_texts()
    chips = [t.replace("×", "").strip() for t in page.locator("#gen-classes .token").all_inner_texts()]
    assert chips == ["0: T-shirt/top", "1: Trouser"] and [c.split(" |")[0] for c in captions] == [
        "T-shirt/top",
        "Trouser",
    ]
    assert picker.get_attribute("aria-expanded") == "false"  # the list closed: it does not cover the results


def test_in_dark_mode_the_grid_is_dark_and_its_download_stays_white(app_url, new_page, tmp_path):
    from PIL import Image

    from dit_demo.lab.outputs.pngmeta import read_parameters

    page = new_page(1400, 1000)
    page.goto(app_url)
    page.locator("#page-dark").click()
    compare_in(page, "2,3")
    page.wait_for_function(
        "() => (document.querySelector('#cmp-grid img')?.style.content || '').includes('_dark')", timeout=30_000
    )
    grid = page.locator("#cmp-grid img")
    grid.screenshot(path=str(tmp_path / "dark.png"))
    with page.expect_download() as download:
        page.locator("#cmp-grid button[aria-label='Download'], #cmp-grid a[download]").first.click()
    download.value.save_as(tmp_path / "downloaded.png")
    page.locator("#page-dark").click()
    page.wait_for_function("() => !document.querySelector('#cmp-grid img').style.content", timeout=10_000)
    grid.screenshot(path=str(tmp_path / "light.png"))
    corner = lambda name: Image.open(tmp_path / name).convert("L").getpixel((2, 2))  # noqa: E731
    assert corner("dark.png") < 60 and corner("light.png") > 200
    assert corner("downloaded.png") > 200 and read_parameters(tmp_path / "downloaded.png")["mode"] == "compare"
