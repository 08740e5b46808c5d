"""A model axis from the browser: two models picked in Compare's Models box run, and both models' rows show in
the table; a second run is stopped. No page or console error on the way (the ``new_page`` fixture)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import serve
from sit_helpers import make_sit
from test_browser_flows import RECORD_STATUS

from app import create_app


@pytest.fixture(scope="module")
def two_models(tmp_path_factory, small_bundle_dir):
    """The app on the small DiT with a SiT offered beside it: (its URL, the DiT's folder, the SiT's)."""
    sit = make_sit(tmp_path_factory.mktemp("sit-browser"), small_bundle_dir)
    with serve(create_app(str(small_bundle_dir), "cpu", "fp32", offered=(str(sit),))) as url:
        yield url, str(small_bundle_dir), str(sit)


def pick(page, box: str, text: str, option: str | None = None) -> None:
    """Type ``text`` in a multiselect and take the option that shows up (waited for: choices may be on their way)."""
    page.locator(f"#{box} input").fill(text)
    page.get_by_role("option", name=option or text).first.wait_for(timeout=30_000)
    page.locator(f"#{box} input").press("Enter")


def test_two_models_picked_in_the_models_box_both_show_in_the_table_and_a_second_run_stops(two_models, new_page):
    url, dit, sit = two_models
    page = new_page(1400, 1000)
    page.goto(url)
    page.get_by_role("tab", name="Compare").click()
    pick(page, "cmp-models", dit)
    pick(page, "cmp-models", sit)
    # the Samplers box now offers every family's samplers: the SiT's runs on the SiT's rows only
    pick(page, "cmp-samplers", "SiT ODE Euler", "SiT ODE Euler (1 NFE/step; sit models)")
    page.locator("#cmp-steps textarea").fill("2,3")
    page.locator("#cmp-run").click()
    status = page.locator("#cmp-status")
    status.get_by_text("lock-step batched").wait_for(timeout=60_000)
    assert "sit_ode_euler runs only on sit models" in status.inner_text()
    table = page.locator("#cmp-table [role=row]")  # the header, then the DiT's 3 samplers x 2 and the SiT's 1 x 2
    table.nth(8).wait_for(timeout=30_000)
    models = [row.split()[0] for row in table.all_inner_texts()[1:]]
    assert models == [Path(dit).name] * 6 + [Path(sit).name] * 2

    # long enough that it cannot end before the Stop lands, however busy the machine: 4 seeds x 1000 steps
    page.evaluate(RECORD_STATUS, "cmp-status")
    page.locator("#cmp-steps textarea").fill("1000")
    page.locator("#cmp-seeds input").fill("4")
    page.locator("#cmp-run").click()
    status.get_by_text("round").wait_for(timeout=60_000)
    page.locator("#cmp-stop").click()
    page.locator("#cmp-stop[disabled]").wait_for(timeout=30_000)  # the run has ended
    seen = page.evaluate("window.seen")
    assert status.inner_text().startswith("Stopped at round"), seen
    assert not [text for text in seen if "refused" in text], seen
