"""The Quality tab in Chromium: the shipped sweep's plots and table, a row's samples, an uploaded sweep,
and a Compare cell's way to its row."""

from __future__ import annotations

import json

from conftest import compare_in

from dit_demo.lab.quality import answers

PLOT = "#{} canvas, #{} svg"
# the chart's pixels (not transparent) under the plot's floating label, where the label hides them
DRAWN_UNDER_LABEL = """(id) => {
  const block = document.getElementById(id), canvas = block.querySelector('canvas');
  const label = block.querySelector('[data-testid=block-label]').getBoundingClientRect();
  const box = canvas.getBoundingClientRect(), style = getComputedStyle(canvas);
  const left = box.left + parseFloat(style.paddingLeft), top = box.top + parseFloat(style.paddingTop);
  const scale = canvas.width / (box.width - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight));
  const x = Math.max(0, (label.left - left) * scale), y = Math.max(0, (label.top - top) * scale);
  const w = Math.min(canvas.width, (label.right - left) * scale) - x, h = Math.min(canvas.height, (label.bottom - top) * scale) - y;
  if (w < 1 || h < 1) return 0;
  const alpha = canvas.getContext('2d').getImageData(x, y, w, h).data.filter((_, i) => i % 4 === 3);
  return alpha.filter(a => a > 0).length;
}"""


def test_the_shipped_sweep_renders_and_a_row_shows_its_samples(app_url, new_page):
    shipped = answers.load([answers.SHIPPED])
    page = new_page(1400, 1000)
    page.goto(app_url)
    page.get_by_role("tab", name="Quality").click()
    for plot in ("q-curve", "q-accuracy", "q-pareto"):
        page.locator(PLOT.format(plot, plot)).first.wait_for(timeout=30_000)
    table = page.locator("#q-table")
    table.get_by_text(shipped.cells[0]["cell"], exact=True).first.wait_for(timeout=10_000)
    shown = [c["cell"] for c in shipped.cells if table.get_by_text(c["cell"], exact=True).count()]
    assert shown == [c["cell"] for c in shipped.cells]  # every cell, on the page
    assert "Best Frechet distance within 25 NFE" in page.locator("#q-best").inner_text()
    table.get_by_text("dpmpp_2m_25_cfg1.5", exact=True).filter(visible=True).first.click()
    page.locator("#q-strip img").wait_for(timeout=20_000)
    assert page.locator("#q-details").get_by_text("Frechet distance").count() == 1
    # sorted by a header, a row still shows its own cell (the first row moves down: lowest distance first)
    first = shipped.cells[0]["cell"]
    table.get_by_text("Frechet distance", exact=True).filter(visible=True).first.click()
    table.get_by_text(first, exact=True).filter(visible=True).first.click()
    page.locator("#q-details").get_by_text(first).wait_for(timeout=20_000)
    # each chart's own menu saves it as PNG (vega-embed's actions)
    assert page.locator("#q-pareto details summary, #q-pareto .vega-actions").count() >= 1


def test_an_uploaded_sweep_replaces_the_data_and_a_second_one_too(app_url, new_page, tmp_path):
    page = new_page(1400, 1000)
    page.goto(app_url)
    page.get_by_role("tab", name="Quality").click()
    page.locator(PLOT.format("q-curve", "q-curve")).first.wait_for(timeout=30_000)
    for name, fd in (("first", 30.0), ("second", 12.5)):
        cells = [
            {"cell": f"{name}_{n}", "sampler": "ddim", "steps": n, "nfe": n, "seconds": n / 10, "frechet": fd + 10 / n}
            for n in (5, 10, 20)
        ]
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps({"spec": {"model": f"model {name}"}, "cells": cells}))
        page.locator("#q-upload input[type=file]").set_input_files(str(path))
        page.locator("#q-source").get_by_text(f"model {name}").wait_for(timeout=20_000)
        page.locator("#q-table").get_by_text(f"{name}_20", exact=True).wait_for(timeout=10_000)
    assert page.locator("#q-table").get_by_text("first_20", exact=True).count() == 0  # replaced, not added
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"rows": []}))
    page.locator("#q-upload input[type=file]").set_input_files(str(bad))
    page.get_by_text("is not a DiT Sampler Lab sweep").first.wait_for(timeout=20_000)
    assert "model second" in page.locator("#q-source").inner_text()  # the last good data stays


def test_a_compare_cell_in_the_sweep_opens_its_row_in_quality(app_url, new_page):
    page = new_page(1400, 1000)
    page.goto(app_url)
    page.get_by_role("tab", name="Compare").click()
    page.locator("#cmp-cfg textarea").fill("1.5")  # the shipped sweep's guidance
    compare_in(page, "5")
    note = page.locator("#cmp-quality")
    note.get_by_text("Also in the Quality tab's sweeps").wait_for(timeout=20_000)
    assert "ddim @ 5 steps, cfg 1.5" in note.inner_text() and "Frechet distance" in note.inner_text()
    page.locator("#cmp-quality-open").click()
    page.locator("#q-details").get_by_text("ddim_5_cfg1.5").wait_for(timeout=20_000)
    in_view = "() => { const r = document.getElementById('q-details').getBoundingClientRect(); return r.top >= 0 && r.top < innerHeight; }"
    page.wait_for_function(in_view, timeout=20_000)  # brought into view, below the 49-row table
    page.locator("#q-strip img").wait_for(timeout=20_000)


def test_on_a_phone_the_charts_start_inside_the_page(app_url, new_page):
    page = new_page(390, 844)
    page.goto(app_url)
    page.get_by_role("tab", name="Quality").click()
    page.locator("#q-pareto canvas").first.wait_for(timeout=30_000)
    lefts = page.evaluate(
        "[...document.querySelectorAll('#q-curve canvas, #q-pareto canvas')].map(c => c.getBoundingClientRect().x)"
    )
    assert lefts and min(lefts) >= 0  # the axis is in view; a wider chart scrolls sideways
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # the page itself does not


def test_a_negative_or_empty_budget_says_what_is_allowed_in_place_of_the_best_line(app_url, new_page):
    page = new_page(1400, 1000)
    page.goto(app_url)
    page.get_by_role("tab", name="Quality").click()
    best, budget = page.locator("#q-best"), page.locator("#q-budget input")
    best.get_by_text("within 25 NFE").wait_for(timeout=30_000)
    budget.fill("7")
    best.get_by_text("within 7 NFE").wait_for(timeout=20_000)
    budget.fill("-5")  # a minimum on the box would refuse it before our function: an HTTP 500, a console error
    best.get_by_text("The budget of -5 NFE is below 0: give a number of 0 or more").wait_for(timeout=20_000)
    assert "Best" not in best.inner_text()  # the line for 7 NFE is gone
    budget.fill("")
    best.get_by_text("No budget is given: give a number of 0 or more").wait_for(timeout=20_000)
    budget.fill("10")
    best.get_by_text("within 10 NFE").wait_for(timeout=20_000)


def test_no_chart_draws_its_notes_under_the_plot_label(app_url, new_page):
    page = new_page(1400, 1000)
    page.goto(app_url)
    page.get_by_role("tab", name="Quality").click()
    page.locator("#q-pareto canvas").first.wait_for(timeout=30_000)
    for plot in ("q-curve", "q-accuracy", "q-pareto"):
        assert page.evaluate(DRAWN_UNDER_LABEL, plot) == 0, plot
    page.get_by_role("tab", name="Compare").click()
    # without Euler no two series coincide: the log axis's note (points at 0 are left out) is the title's only line
    page.locator("#cmp-samplers .token").filter(has_text="Euler").locator(".token-remove").click()
    compare_in(page, "2,4")
    page.evaluate("window.drawn = document.querySelector('#cmp-distance-plot canvas').toDataURL()")
    page.locator("#cmp-axis").get_by_text("log", exact=True).click()
    redrawn = "() => document.querySelector('#cmp-distance-plot canvas').toDataURL() !== window.drawn"
    page.wait_for_function(redrawn, timeout=30_000)
    for plot in ("cmp-distance-plot", "cmp-sigma-plot"):
        assert page.evaluate(DRAWN_UNDER_LABEL, plot) == 0, plot
