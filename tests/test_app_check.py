"""The end-to-end app check (the GPU check's second half): app.py in its own process, driven through its API."""

from __future__ import annotations

import pytest

from tests.app_check import run_check


def test_the_app_check_serves_generate_and_compare_with_both_presets(small_bundle_dir):
    report = run_check(str(small_bundle_dir), "cpu", timeout=120)
    assert report["ready_seconds"] > 0
    for name in ("generate_exact", "generate_fast_first", "generate_fast"):
        assert report[name]["images"] == 2 and "2 image(s), 25 NFE each" in report[name]["summary"]
    assert "fast preset" in report["generate_fast"]["summary"]
    for name in ("compare_first", "compare"):
        assert report[name]["cells"] == 4 and report[name]["grid_bytes"] > 1000  # 2 samplers x 2 presets
        assert "lock-step batched" in report[name]["summary"]


def test_an_app_that_cannot_start_is_a_clear_error():
    with pytest.raises(RuntimeError, match="app.py exited with code"):
        run_check("embedded", "tpu", timeout=120)
