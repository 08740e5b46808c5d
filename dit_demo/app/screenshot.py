"""Screenshot the Compare tab after a real run (for the README): ``python -m dit_demo.app.screenshot``.

Needs Debian's Chromium (``apt-get install chromium``) and the ``playwright`` package.
"""

from __future__ import annotations

import argparse
import time

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default=None)
    parser.add_argument("--out", default="dit_demo/assets/compare-tab.png")
    parser.add_argument("--class-name", default="7: Sneaker")
    parser.add_argument("--steps", default="5,10,25")
    parser.add_argument("--port", type=int, default=7891)
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args(argv)

    from playwright.sync_api import sync_playwright

    from app import LAUNCH_SETTINGS, create_app

    demo = create_app(args.model)
    demo.launch(prevent_thread_lock=True, server_port=args.port, quiet=True, **LAUNCH_SETTINGS)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1500, "height": 1000})
            page.goto(f"http://127.0.0.1:{args.port}/")
            page.get_by_role("tab", name="Compare").click()
            page.locator("#cmp-steps textarea").fill(args.steps)
            page.locator("#c-class input").fill(args.class_name)
            page.keyboard.press("Enter")
            start = time.perf_counter()
            page.locator("#cmp-run").click()
            page.locator("#cmp-status").get_by_text("lock-step batched").wait_for(timeout=600_000)
            print(f"comparison finished in the browser after {time.perf_counter() - start:.1f}s")
            page.locator("#distance-plot canvas, #distance-plot svg").first.wait_for(timeout=60_000)
            time.sleep(1.0)  # let the plots finish their transition
            page.screenshot(path=args.out, full_page=True)
            browser.close()
    finally:
        demo.close()
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
