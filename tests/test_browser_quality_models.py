"""The Quality tab on two models' sweeps in Chromium: both models in the curve's legend, the table's Model
column, and a budget answer naming its model (the ``new_page`` fixture fails the test on any page error
or console error)."""

from __future__ import annotations

import pytest
from conftest import serve
from quality_pairs import DIT, SIT, write_sit_sweep

from app import create_app
from dit_demo.lab.quality import answers


@pytest.fixture(scope="module")
def two_models_url(small_bundle_dir, tmp_path_factory):
    sit = write_sit_sweep(tmp_path_factory.mktemp("quality") / "sit", seed=0)
    with serve(create_app(str(small_bundle_dir), "cpu", "fp32", quality=[str(answers.SHIPPED), str(sit)])) as url:
        yield url


def test_the_quality_tab_shows_both_models_in_the_legend_table_and_budget_answer(two_models_url, new_page):
    page = new_page(1400, 1000)
    page.goto(two_models_url)
    page.get_by_role("tab", name="Quality").click()
    page.locator("#q-curve canvas").first.wait_for(timeout=30_000)
    for model in (DIT, SIT):
        page.locator("#q-source").get_by_text(model).first.wait_for(timeout=10_000)
    # the legend as drawn: the chart's own menu saves it as SVG, whose text is what the canvas shows
    page.locator("#q-curve details summary").first.click()
    with page.expect_download(timeout=30_000) as saved:
        page.locator("#q-curve .vega-actions a").filter(has_text="SVG").first.click()
    drawn = open(saved.value.path()).read()
    assert f">{DIT}<" in drawn and f">{SIT}<" in drawn and ">Model<" in drawn and ">Sampler<" in drawn
    table = page.locator("#q-table")
    table.get_by_text("Model", exact=True).first.wait_for(timeout=10_000)
    table.get_by_text("sit_ode_heun_5_cfg1.5", exact=True).first.wait_for(timeout=10_000)
    assert table.get_by_text(SIT, exact=True).count() >= 1 and table.get_by_text(DIT, exact=True).count() >= 1
    best = page.locator("#q-best")
    page.locator("#q-budget input").fill("10")
    best.get_by_text(f"sit_ode_heun @ 5 steps (9 NFE) on {SIT}").wait_for(timeout=20_000)
    # a row of the second model shows its cell, found by its model and name
    table.get_by_text("sit_ode_euler_5_cfg1.5", exact=True).filter(visible=True).first.click()
    page.locator("#q-details").get_by_text(f"{SIT}: sit_ode_euler_5_cfg1.5").wait_for(timeout=20_000)


@pytest.fixture(scope="module")
def shipped_url(small_bundle_dir):
    """The app with its default Quality data: the shipped sweeps of both embedded models."""
    assert (answers.SHIPPED_SIT / "sweep.json").is_file(), "the embedded SiT's sweep is not shipped"
    with serve(create_app(str(small_bundle_dir), "cpu", "fp32")) as url:
        yield url


def test_the_default_tab_opens_on_both_shipped_sweeps_and_compares_every_cell(shipped_url, new_page):
    data = answers.load([answers.SHIPPED, answers.SHIPPED_SIT])
    assert len(data.models()) == 2
    page = new_page(1400, 1000)
    page.goto(shipped_url)
    page.get_by_role("tab", name="Quality").click()
    page.locator("#q-curve canvas").first.wait_for(timeout=30_000)
    for model in data.models():
        page.locator("#q-source").get_by_text(model).first.wait_for(timeout=10_000)
    best_box = page.locator("#q-best")
    for budget in (10, 25):  # a second answer replaces the first
        best, ties, tested = answers.best_at_budget(data.cells, budget, "frechet", "nfe")
        assert tested  # the two sweeps drew the same samples: every cell within the budget is compared
        page.locator("#q-budget input").fill(str(budget))
        page.locator("#q-budget input").press("Enter")
        named = f"{best['sampler']} @ {best['steps']} steps ({best['nfe']} NFE) on {best['model']}"
        # the answer's own first line: a cell can also be listed under the previous budget's answer
        best_box.get_by_text(f"within {budget} NFE: {named}").first.wait_for(timeout=20_000)
        text = best_box.inner_text()
        assert f"within {budget} NFE" in text and "not paired" not in text
        assert f"({len(ties)} cells, closest first)" in text if ties else "is distinguishable from it" in text
    # the adaptive solver's row, from the second sweep folder shipped with it, shows its samples
    dopri5 = next(c for c in data.cells if c["sampler"] == "sit_ode_dopri5")
    page.locator("#q-table").get_by_text(dopri5["cell"], exact=True).filter(visible=True).first.click()
    page.locator("#q-details").get_by_text(f"{dopri5['model']}: {dopri5['cell']}").wait_for(timeout=20_000)
    page.locator("#q-strip img").first.wait_for(timeout=20_000)
