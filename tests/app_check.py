"""The app as a user meets it, end to end: ``app.py`` started in its own process on a model, one
``/generate`` and one ``/compare`` (presets exact and fast, so the fast path runs inside the server)
through ``gradio_client``, each twice (the first pays for first calls and compiling), timed.

    python -m tests.app_check --model embedded --json out/app_check.json
    python -m tests.app_check --xl-random /tmp/xl --json out/app_check.json   # DiT-XL/2 shapes

``--xl-random FOLDER`` first writes DiT-XL/2-256's architecture with random weights there (the
suite's timing stand-in) and serves that: the GPU check of a hub-sized model without the hub.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from dit_demo.lab.bench.xl_random import write_xl_random

ROOT = Path(__file__).resolve().parents[1]
READY_SECONDS = 600.0  # model load and the start-up cost measurement (a hub-sized model on a CPU is slow)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _connect(url: str, server: subprocess.Popen, timeout: float):
    from gradio_client import Client

    deadline = time.monotonic() + timeout
    while True:
        if server.poll() is not None:
            raise RuntimeError(f"app.py exited with code {server.returncode} before it served {url}")
        try:
            return Client(url, verbose=False)
        except Exception:  # not listening yet: the model is still loading
            if time.monotonic() > deadline:
                raise TimeoutError(f"app.py did not serve {url} within {timeout:.0f} s") from None
            time.sleep(1.0)


def _timed(call) -> tuple[float, object]:
    start = time.perf_counter()
    out = call()
    return time.perf_counter() - start, out


def check(client, class_name: str = "0") -> dict:
    """Generate (exact, then fast twice) and Compare (exact and fast as an axis, twice): the seconds each
    call took, with what it returned. The first fast call pays for first calls (and compiling)."""
    report: dict = {}
    for name, speed in (("generate_exact", "exact"), ("generate_fast_first", "fast"), ("generate_fast", "fast")):
        request = [class_name], "dpmpp_2m", 25, 4.0, 3, 0, 2, speed, ""
        seconds, (_, gallery, summary) = _timed(lambda r=request: client.predict(*r, api_name="/generate"))
        report[name] = {"seconds": seconds, "images": len(gallery), "summary": summary}
    # two fast lanes of the same length: 4 rows throughout, the bucket Generate compiled
    compare = ["ddim", "dpmpp_2m"], "25", "4", class_name, 0, 3, "", "", 1, ["exact", "fast"]
    for name in ("compare_first", "compare"):
        seconds, out = _timed(lambda: client.predict(*compare, api_name="/compare"))
        report[name] = {
            "seconds": seconds,
            "cells": len(out[3]["data"]),
            "grid_bytes": os.path.getsize(out[1]),
            "summary": out[-1],
        }
    return report


def run_check(model: str, device: str = "auto", timeout: float = READY_SECONDS) -> dict:
    """``app.py`` on ``model`` in a child process, checked through its API, then stopped."""
    port = _free_port()
    command = [sys.executable, str(ROOT / "app.py"), "--model", model, "--device", device, "--port", str(port)]
    command += ["--max-request-seconds", "0"]  # timing a first compiled call is the point: refuse nothing
    start = time.perf_counter()
    server = subprocess.Popen(command, cwd=ROOT)
    try:
        client = _connect(f"http://127.0.0.1:{port}/", server, timeout)
        ready = time.perf_counter() - start
        return {"model": model, "device": device, "ready_seconds": ready, **check(client)}
    finally:
        server.terminate()
        server.wait(timeout=30)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.app_check", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="embedded", help="embedded, a bundle folder or a hub id")
    parser.add_argument(
        "--xl-random", default=None, help="write DiT-XL/2-256 shapes, random weights, here and serve it"
    )
    parser.add_argument("--device", default="auto")
    parser.add_argument("--json", default=None, help="write the report here")
    args = parser.parse_args(argv)
    model = str(write_xl_random(args.xl_random)) if args.xl_random else args.model
    report = run_check(model, args.device)
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(text + "\n")


if __name__ == "__main__":
    main()
