"""Screenshots of the Compare tab from real runs (for the README), with click-to-result times:

    python -m dit_demo.app.screenshot

1. the default 3 x 3 comparison (its click-to-result time);
2. mid-run: a long comparison while it samples, every lane's live preview in view;
3. a finished seed x sampler-variant comparison (4 variants x 3 seeds; its click-to-result time);
4. the Quality tab on the shipped sweeps (both embedded models where the SiT's is shipped), one row's samples shown;
5. a model axis: the embedded DiT and SiT side by side, each with its family's samplers.

``--only quality`` (or ``models``, ``compare``) takes that one alone.

Needs Debian's Chromium (``apt-get install chromium``) and the ``playwright`` package.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
SHOTS = ("quality", "compare", "models")
VARIANTS = "dpmpp_2m[karras=true], ddpm[spacing=linspace]"  # with DDIM and DPM-Solver++ 2M: 4 rows


def _compare(page, steps: str, variants: str = "", seeds: int = 1) -> float:
    """Fill the Compare form, click, and wait for the finished page; seconds from the click."""
    page.locator("#cmp-steps textarea").fill(steps)
    page.locator("#cmp-variants textarea, #cmp-variants input").first.fill(variants)
    page.locator("#cmp-seeds input").fill(str(seeds))
    # finished = the grid shows a new file (every run saves its own)
    page.evaluate("window.oldGrid = (document.querySelector('#cmp-grid img') || {}).src")
    start = time.perf_counter()
    page.locator("#cmp-run").click()
    page.wait_for_function(
        "() => { const i = document.querySelector('#cmp-grid img'); return i && i.src !== window.oldGrid; }",
        timeout=600_000,
    )
    page.locator("#cmp-grid img").wait_for(timeout=60_000)
    return time.perf_counter() - start


def _quality(page, out: Path, row: str = "dpmpp_2m_sde_karras_25_cfg1.5") -> None:
    """The Quality tab with its plots drawn (``row``'s samples shown further down)."""
    page.get_by_role("tab", name="Quality").click()
    for plot in ("q-curve", "q-accuracy", "q-pareto"):
        page.locator(f"#{plot} canvas").first.wait_for(timeout=30_000)
    page.locator("#q-table").get_by_text(row, exact=True).filter(visible=True).first.click()
    page.locator("#q-strip img").wait_for(timeout=30_000)
    page.wait_for_timeout(1000)  # the plots' transitions
    page.evaluate("window.scrollTo(0, 0)")
    # down to the Pareto plot: the 49-row table below it is the same numbers as the README's table
    bottom = page.locator("#q-pareto").bounding_box()
    width = page.viewport_size["width"]
    clip = {"x": 0, "y": 0, "width": width, "height": bottom["y"] + bottom["height"] + 16}
    page.screenshot(path=str(out / "quality-tab.png"), full_page=True, clip=clip)
    print(f"saved {out / 'quality-tab.png'}")


def _models(page, out: Path, models: list[str], samplers: tuple[str, ...] = ("SiT ODE Euler", "SiT ODE Heun")) -> None:
    """Compare on ``models`` (Models box choices), the SiT's samplers added to the DiT's."""
    page.get_by_role("tab", name="Compare").click()
    for model in models:
        _pick(page, "cmp-models", model)
    for label in samplers:
        _pick(page, "cmp-samplers", label)
    _compare(page, "10,25")
    page.wait_for_timeout(1000)  # the plots' transitions
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(out / "compare-models.png"), full_page=True)
    print(f"saved {out / 'compare-models.png'}")


def _pick(page, box: str, text: str) -> None:
    """Type ``text`` in a multiselect and take the first option that shows up."""
    page.locator(f"#{box} input").fill(text)
    page.get_by_role("option").filter(has_text=text).first.wait_for(timeout=30_000)
    page.locator(f"#{box} input").press("Enter")


def _compare_shots(page, out: Path) -> None:
    """Shots 1 to 3: a timed 3 x 3 comparison, one mid-run (then stopped), a seed x variant one."""
    page.get_by_role("tab", name="Compare").click()
    _compare(page, "10,25,50")  # the first run pays for warm-up; the timed ones come after
    seconds = _compare(page, "10,25,50")
    print(flush=True)
    print(f"3 x 3 comparison (DDIM, DPM-Solver++ 2M, Euler x 10, 25, 50 steps): {seconds:.2f}s click to result")

    page.locator("#cmp-steps textarea").fill("400,800")
    page.locator("#cmp-seeds input").fill("2")
    page.locator("#cmp-run").click()
    page.locator("#cmp-status").get_by_text("Sampling all lanes").wait_for(timeout=60_000)
    page.wait_for_timeout(2500)
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(out / "compare-midrun.png"))
    page.locator("#cmp-stop").click()
    page.locator("#cmp-status").get_by_text("Stopped at round").wait_for(timeout=60_000)
    page.locator("#cmp-stop[disabled]").wait_for(timeout=60_000)  # the stopped run has ended

    seconds = _compare(page, "25", VARIANTS, seeds=3)
    print(f"4 variants x 3 seeds at 25 steps: {seconds:.2f}s click to result")
    page.wait_for_timeout(1000)  # let the plots finish their transition
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(out / "compare-tab.png"), full_page=True)
    print(f"saved {out / 'compare-midrun.png'} and {out / 'compare-tab.png'}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None)
    parser.add_argument("--out-dir", default="dit_demo/assets")
    parser.add_argument("--port", type=int, default=7891)
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--only", choices=SHOTS, help="take this screenshot alone")
    parser.add_argument(
        "--models",
        default="embedded (Fashion-MNIST),embedded SiT (Fashion-MNIST)",
        help="the model axis' shot: Models box choices, comma separated",
    )
    args = parser.parse_args(argv)

    from playwright.sync_api import sync_playwright

    from app import LAUNCH_SETTINGS, create_app

    out = Path(args.out_dir)
    demo = create_app(args.model)
    demo.launch(prevent_thread_lock=True, server_port=args.port, quiet=True, **LAUNCH_SETTINGS)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1500, "height": 1000})
            page.goto(f"http://127.0.0.1:{args.port}/")
            shots = {
                "quality": lambda: _quality(page, out),
                "compare": lambda: _compare_shots(page, out),
                "models": lambda: _models(page, out, args.models.split(",")),
            }
            for name in [args.only] if args.only else SHOTS:
                page.goto(f"http://127.0.0.1:{args.port}/")  # each shot on a fresh page
                shots[name]()
            browser.close()
    finally:
        demo.close()


if __name__ == "__main__":
    main()
