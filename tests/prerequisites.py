"""What the tests need beyond Python packages: Fashion-MNIST's IDX files and a Chromium for Playwright.

``python tests/prerequisites.py --install`` (``make prerequisites``, which ``make test`` and
``.ci/run`` call) installs what is missing: Debian's packages where apt may be used (root or
passwordless sudo), else Playwright's own Chromium where it can be fetched; when something is still
missing it stops with one line naming the command to run. ``conftest.py`` asks :func:`missing`
before any test runs, so a missing prerequisite is reported once, not by every test that needs it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dit_demo.training.data import FILES, data_dir  # noqa: E402

DEBIAN_CHROMIUM = "/usr/bin/chromium"
APT_PACKAGES = {"fashion-mnist": "dataset-fashion-mnist", "chromium": "chromium"}
APT_COMMAND = "sudo apt-get install -y dataset-fashion-mnist chromium"


def has_fashion_mnist() -> bool:
    folder = data_dir()
    return all((folder / name).is_file() for pair in FILES.values() for name in pair)


def playwright_chromium() -> str | None:
    """The Chromium that Playwright downloaded itself (``playwright install chromium``), if any."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    with sync_playwright() as p:
        path = p.chromium.executable_path
    return path if path and os.path.exists(path) else None


def chromium_path() -> str | None:
    """Debian's Chromium first (the one CI uses), else Playwright's own."""
    return (
        shutil.which("chromium")
        or (DEBIAN_CHROMIUM if os.path.exists(DEBIAN_CHROMIUM) else None)
        or (playwright_chromium())
    )


def missing() -> list[str]:
    """The prerequisites not found, by name: "fashion-mnist", "chromium"."""
    return [name for name, found in (("fashion-mnist", has_fashion_mnist), ("chromium", chromium_path)) if not found()]


def missing_message(names: list[str]) -> str:
    return (
        f"The tests need {' and '.join(names)}, not found on this machine; run `make test` as root or with "
        f"passwordless sudo (it installs them), or run: {APT_COMMAND}"
    )


def _apt_prefix() -> list[str] | None:
    """How this process may run apt-get: directly as root, through passwordless sudo, or not at all."""
    if not shutil.which("apt-get"):
        return None
    if os.geteuid() == 0:
        return []
    if shutil.which("sudo") and subprocess.run(["sudo", "-n", "true"], capture_output=True).returncode == 0:
        return ["sudo", "-n"]
    return None


def _run(command: list[str]) -> bool:
    print("+", " ".join(command), flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    return subprocess.run(command, env=env, stdout=subprocess.DEVNULL).returncode == 0


def install(names: list[str]) -> None:
    apt = _apt_prefix()
    if apt is not None:
        packages = [APT_PACKAGES[name] for name in names]
        _run([*apt, "apt-get", "update", "-qq"]) and _run([*apt, "apt-get", "install", "-y", "-qq", *packages])
    if "chromium" in missing():  # no apt: Playwright's own build, where its download is reachable
        _run([sys.executable, "-m", "playwright", "install", "chromium"])


def main(argv: list[str]) -> int:
    names = missing()
    if names and "--install" in argv:
        install(names)
        names = missing()
    if names:
        print(f"error: {missing_message(names)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
