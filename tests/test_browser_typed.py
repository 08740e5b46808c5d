"""Browser flows about typed values: what a person typed is never changed behind their back, and the
page says what it did with every value. Every page must also stay free of page errors and console errors
(the ``new_page`` fixture)."""

from __future__ import annotations

import re

from PIL import Image

from dit_demo.app.form_rules import recommended_steps
from dit_demo.lab.specs.defaults import Defaults

CHIPS = "() => [...document.querySelectorAll('#gen-classes .token')].map((t) => t.innerText.trim())"


def _pick_sampler(page, label: str) -> None:
    page.locator("#gen-sampler input").click()
    page.get_by_role("option", name=re.compile(rf"^{label} \(")).click()


def _type(page, selector: str, text: str) -> None:
    box = page.locator(selector)
    box.click()
    box.press("Control+a")
    box.press_sequentially(text)


def _generate(page) -> list[str]:
    """Run Generate and return its images' captions."""
    page.locator("#gen-run").click()
    page.locator("#gen-status").get_by_text("NFE each").wait_for(timeout=60_000)
    return page.locator("#gen-images .caption-label").all_inner_texts()


def test_typed_steps_stay_through_sampler_changes_and_runs(app_url, new_page, small_bundle):
    heun = recommended_steps(Defaults.for_bundle(small_bundle))["heun"]
    page = new_page(1400, 1000)
    page.goto(app_url)
    steps = page.locator("#gen-steps input[type=number]")
    note = page.locator("#gen-steps-note")
    _pick_sampler(page, "Heun")  # untouched: the sampler's recommended count applies, and the page says so
    page.wait_for_function(f"() => document.querySelector('#gen-steps input[type=number]').value === '{heun['steps']}'")
    assert "follow the sampler" in note.inner_text()
    _type(page, "#gen-steps input[type=number]", "3")
    _pick_sampler(page, "DDIM")  # a change of sampler after typing keeps the typed value
    note.get_by_text("your 3").wait_for(timeout=10_000)
    _type(page, "#gen-seed input", "5")
    first = _generate(page)
    second = _generate(page)  # a second run: still what was typed
    assert steps.input_value() == "3"
    assert all(" ddim 3 steps" in c for c in first + second), (first, second)


def test_enter_in_the_class_picker_adds_exact_names_only_and_never_removes(app_url, new_page):
    page = new_page(1400, 1000)
    page.goto(app_url)
    picker, note = page.locator("#gen-classes input"), page.locator("#gen-class-note")
    picker.click()
    picker.press_sequentially("trouser")
    picker.press("Enter")  # the first typed class is added to the default, not put in its place
    page.wait_for_function(f"() => ({CHIPS})().length === 2")
    for typed, said in (("1", "already picked"), ("sneak", "part of a name"), ("Snekaer", "did you mean 7: Sneaker")):
        picker.fill("")
        picker.press_sequentially(typed)
        picker.press("Enter")
        note.get_by_text(said).wait_for(timeout=10_000)
        assert page.evaluate(CHIPS) == ["0: T-shirt/top", "1: Trouser"], typed
    for name in ("pullover", "dress", "coat", "sandal", "shirt"):  # the chips fill the box's first lines
        picker.fill(name)
        picker.press("Enter")
    page.wait_for_function(f"() => ({CHIPS})().length === 7")
    picker.press_sequentially("ankle boot")
    # the typed text keeps room to be read beside the chips
    assert picker.evaluate("(e) => e.clientWidth") >= 100


def test_values_put_back_in_range_are_said(app_url, new_page):
    page = new_page(1400, 1000)
    page.goto(app_url)
    _type(page, "#gen-steps input[type=number]", "0")
    _type(page, "#gen-cfg input[type=number]", "-3")
    page.locator("#gen-seed input").click()  # leaving the boxes is when Gradio puts them in range
    steps_note, cfg_note = page.locator("#gen-steps .clamp-note"), page.locator("#gen-cfg .clamp-note")
    assert "0 is not allowed; set to 1" in steps_note.inner_text()
    assert "-3 is not allowed; set to 0" in cfg_note.inner_text()
    _type(page, "#gen-steps input[type=number]", "2")
    page.locator("#gen-seed input").click()
    steps_note.wait_for(state="detached", timeout=10_000)  # an allowed value takes the note away
    assert page.locator("#gen-steps input[type=number]").input_value() == "2"


def _start_long_run(page) -> None:
    page.locator("#gen-steps input[type=number]").fill("800")
    page.locator("#gen-run").click()
    page.locator("#gen-status").get_by_text("round").wait_for(timeout=60_000)


def test_after_stop_the_next_runs_status_is_their_own(app_url, new_page):
    page, other = new_page(1400, 1000), new_page(1400, 1000)
    page.goto(app_url)
    other.goto(app_url)
    status = page.locator("#gen-status")
    _start_long_run(page)
    page.locator("#gen-stop").click()
    status.get_by_text("Stopped at round").wait_for(timeout=30_000)
    page.locator("#gen-stop[disabled]").wait_for(timeout=30_000)
    _start_long_run(other)  # another visitor holds the model: the next run waits in the queue
    page.locator("#gen-steps input[type=number]").fill("2")
    page.locator("#gen-run").click()
    status.get_by_text("Starting").wait_for(timeout=10_000)  # said at the click, not after the wait
    waiting = status.inner_text()
    other.locator("#gen-stop").click()
    status.get_by_text("NFE each").wait_for(timeout=60_000)
    page.locator("#gen-classes .remove-all").click()  # no class: this run is refused
    page.locator("#gen-run").click()
    status.get_by_text("last request was refused").wait_for(timeout=30_000)
    assert "Stopped" not in waiting and "Stopped" not in status.inner_text(), waiting


def test_a_refused_png_says_why_beside_its_name(app_url, new_page, tmp_path):
    plain = tmp_path / "holiday.png"
    Image.new("RGB", (8, 8), "red").save(plain)
    page = new_page(1400, 1000)
    page.goto(app_url)
    page.get_by_role("tab", name="Reproduce").click()
    page.locator("#r-file input[type=file]").set_input_files(str(plain))
    page.locator("#r-text").get_by_text("Not restored: holiday.png").wait_for(timeout=30_000)
    assert "DiT Sampler Lab" in page.locator("#r-text").inner_text()  # the reason, not only the name


def test_gallery_labels_leave_the_first_images_uncovered(app_url, new_page):
    for width, height in ((1400, 1000), (390, 844)):
        page = new_page(width, height)
        page.goto(app_url)
        page.locator("#gen-steps input[type=number]").fill("200")  # long enough for live previews to be shown
        _generate(page)
        for gallery in ("#gen-images", "#gen-preview"):
            page.locator(f"{gallery} img").first.wait_for(timeout=30_000)
            label = page.locator(f"{gallery} [data-testid=block-label]").bounding_box()
            image = page.locator(f"{gallery} img").first.bounding_box()
            assert image["y"] >= label["y"] + label["height"], (gallery, width, label, image)
