"""`make prerequisites`: what it installs, and the one line it ends with when it cannot."""

from __future__ import annotations

import prerequisites


def test_without_apt_it_tries_playwrights_chromium_then_names_the_command(monkeypatch, capsys):
    ran = []
    monkeypatch.setattr(prerequisites, "_apt_prefix", lambda: None)  # not root, no passwordless sudo
    monkeypatch.setattr(prerequisites, "missing", lambda: ["fashion-mnist", "chromium"])
    monkeypatch.setattr(prerequisites, "_run", lambda command: ran.append(command) or False)
    assert prerequisites.main(["--install"]) == 1
    assert ran == [[prerequisites.sys.executable, "-m", "playwright", "install", "chromium"]]
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "fashion-mnist and chromium" in err[0] and prerequisites.APT_COMMAND in err[0]


def test_with_apt_it_installs_the_debian_packages_of_what_is_missing(monkeypatch):
    ran, state = [], {"missing": ["fashion-mnist"]}
    monkeypatch.setattr(prerequisites, "_apt_prefix", lambda: ["sudo", "-n"])
    monkeypatch.setattr(prerequisites, "missing", lambda: list(state["missing"]))

    def run(command):
        ran.append(command)
        if "install" in command:
            state["missing"] = []
        return True

    monkeypatch.setattr(prerequisites, "_run", run)
    assert prerequisites.main(["--install"]) == 0
    assert ran[-1] == ["sudo", "-n", "apt-get", "install", "-y", "-qq", "dataset-fashion-mnist"]
