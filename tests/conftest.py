"""Tiny random DiT bundles in the hub layout, built once per test session."""

from __future__ import annotations

import json
import os
import socket
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
from diffusers import AutoencoderKL, DDPMScheduler
from helpers import perturb
from PIL import Image
from png_helpers import PARAMS
from prerequisites import chromium_path, missing, missing_message

import samplers
from app import LAUNCH_SETTINGS, create_app
from dit_demo.app.screenshot import CHROMIUM_ARGS
from dit_demo.lab.outputs.pngmeta import save_png
from dit_demo.runtime.dit import build_dit
from dit_demo.runtime.loader import load_bundle, save_bundle

SHARED_LABELS = Path(__file__).resolve().parents[1] / "dit_demo" / "imagenet_id2label.json"


def make_bundle(
    folder: Path, num_classes: int, id2label: dict, seed: int = 0, heads: int = 2, layers: int = 2, latent: int = 8
) -> Path:
    torch.manual_seed(seed)
    transformer = perturb(build_dit(layers, 16 * heads, heads, num_classes, latent))
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        block_out_channels=(8, 8),
        norm_num_groups=4,
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        sample_size=16,
    )
    # the hub's DiT scheduler config keeps diffusers' DDPM defaults (clip_sample=True among them)
    scheduler = DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear", beta_start=1e-4, beta_end=0.02)
    return save_bundle(folder, transformer, vae, scheduler, id2label, legacy_class_name=True)


@pytest.fixture(scope="session")
def imagenet_bundle_dir(tmp_path_factory) -> Path:
    id2label = json.loads(SHARED_LABELS.read_text())
    return make_bundle(tmp_path_factory.mktemp("dit1000"), 1000, id2label)


@pytest.fixture(scope="session")
def small_bundle_dir(tmp_path_factory) -> Path:
    names = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
    return make_bundle(tmp_path_factory.mktemp("dit10"), 10, {str(i): n for i, n in enumerate(names)}, seed=1)


@pytest.fixture(scope="session")
def imagenet_bundle(imagenet_bundle_dir):
    return load_bundle(imagenet_bundle_dir, device="cpu", dtype="fp32")


@pytest.fixture(scope="session")
def small_bundle(small_bundle_dir):
    return load_bundle(small_bundle_dir, device="cpu", dtype="fp32")


def pytest_sessionstart(session):
    """Stop before the first test when Fashion-MNIST or a Chromium is missing: one line, not a failure per test."""
    if names := missing():
        pytest.exit(missing_message(names), returncode=4)


def pytest_sessionfinish(session, exitstatus):
    """In CI (``CI`` set) a skipped test is a failure: every test here is required."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    if os.environ.get("CI") and skipped and exitstatus == 0:
        reporter.write_line(f"CI: {len(skipped)} test(s) skipped; every test is required in CI.", red=True)
        session.exitstatus = 1


@pytest.fixture(scope="session")
def embedded_bundle():
    """The model this project ships (Fashion-MNIST), as the app loads it by default."""
    return load_bundle(None, device="cpu", dtype="fp32")


@pytest.fixture
def saved(tmp_path) -> Path:
    """A PNG saved by the app, carrying ``png_helpers.PARAMS``."""
    return save_png(Image.new("RGB", (40, 30), "navy"), tmp_path / "out" / "saved.png", PARAMS)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serve(demo):
    """``demo`` served on a free local port, with the app's launch settings: yields its URL, then closes it."""
    port = free_port()
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True, **LAUNCH_SETTINGS)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        demo.close()


@pytest.fixture(scope="session")
def app_url(small_bundle_dir):
    """The app on the small test model, served for the whole session (API and browser tests share it)."""
    with serve(create_app(str(small_bundle_dir), "cpu", "fp32")) as url:
        yield url


@pytest.fixture(scope="session")
def client(app_url):
    from gradio_client import Client

    return Client(app_url, verbose=False)


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def compare_in(page, steps: str, until: str = "lock-step batched", timeout: int = 60_000) -> None:
    """In the Compare tab, run the default samplers over ``steps`` and wait for ``until`` on the status line
    ("lock-step batched": the comparison is done; "round": it is under way)."""
    page.get_by_role("tab", name="Compare").click()
    page.locator("#cmp-steps textarea").fill(steps)
    page.locator("#cmp-run").click()
    page.locator("#cmp-status").get_by_text(until).first.wait_for(timeout=timeout)


@pytest.fixture
def new_page(browser):
    """``new_page(width, height)``: a page in a fresh context; the test fails on any page error or
    console error seen on any of its pages (a missing favicon aside)."""
    contexts, errors = [], []

    def make(width: int, height: int, context=None):
        """A page in a fresh context, or in ``context`` (sharing its storage: a later visit of the same person)."""
        if context is None:
            context = browser.new_context(viewport={"width": width, "height": height})
            contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
        page.on("console", lambda m: errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
        return page

    yield make
    for context in contexts:
        context.close()
    assert not [e for e in errors if "favicon" not in e], errors


@pytest.fixture
def every_layer_int8(monkeypatch):
    """The test model's layers are all small: make int8 take every one of them, as it does on DiT-XL/2."""
    from dit_demo.runtime import int8

    monkeypatch.setattr(int8, "INT8_MIN_WEIGHTS", 0)


@pytest.fixture
def registered():
    """``registered(sampler)`` adds a sampler to the registry for one test, and takes it out after."""
    added = []

    def register(sampler):
        added.append(samplers.register(sampler).name)
        return sampler.name

    yield register
    for name in added:
        samplers.unregister(name)
