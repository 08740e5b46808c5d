"""A bundle that cannot be read ends the CLI with one line naming the file and the fix, not a traceback."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dit_demo.runtime.loader import ModelLoadError, load_bundle

REPO_ROOT = Path(__file__).resolve().parents[1]


def _truncate_transformer_weights(folder: Path) -> Path:
    weights = folder / "transformer" / "diffusion_pytorch_model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    return weights


def _delete_transformer_config(folder: Path) -> Path:
    config = folder / "transformer" / "config.json"
    config.unlink()
    return config


@pytest.mark.parametrize(
    "damage", [_truncate_transformer_weights, _delete_transformer_config], ids=["truncated-weights", "no-config"]
)
def test_cli_prints_one_line_naming_the_file_and_the_fix(damage, small_bundle_dir, tmp_path):
    folder = shutil.copytree(small_bundle_dir, tmp_path / "bundle")
    bad_file = damage(folder)
    cmd = [sys.executable, "-m", "dit_demo", "generate", "Bag", "--model", str(folder), "--steps", "2",
           "--out", str(tmp_path / "x.png")]  # fmt: skip
    result = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and str(bad_file) in lines[0]
    assert "layout" in lines[0] and "transformer/{config.json, diffusion_pytorch_model.safetensors}" in lines[0]
    assert not (tmp_path / "x.png").exists()


def test_load_bundle_names_the_corrupt_weights_file(small_bundle_dir, tmp_path):
    folder = shutil.copytree(small_bundle_dir, tmp_path / "bundle")
    weights = _truncate_transformer_weights(folder)
    with pytest.raises(ModelLoadError, match="truncated or corrupt") as info:
        load_bundle(folder, device="cpu", dtype="fp32")
    assert str(weights) in str(info.value) and "\n" not in str(info.value)
    assert info.value.__suppress_context__  # raised "from None": printing it shows no chained traceback


def test_cli_validates_before_drawing_a_progress_bar():
    """A bad request is one line on stderr: no empty progress bar, no traceback."""
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, "-m", "dit_demo", "generate", "Bag", "--steps", "0"],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2
    assert lines == ["error: Steps for dpmpp_2m must be between 1 and 1000, got 0."]


def test_import_of_a_file_that_is_no_checkpoint_says_what_it_should_be(tmp_path):
    garbage = tmp_path / "notes.pt"
    garbage.write_bytes(b"\x80\x0bhello")  # torch warns about the pickle protocol, then fails with a KeyError
    cmd = [sys.executable, "-m", "dit_demo", "import", str(garbage), "--out", str(tmp_path / "m")]
    result = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert lines[0].startswith("error: notes.pt is not a PyTorch checkpoint") and "torch.save" in lines[0]
    assert "weights_only" not in result.stderr  # PyTorch's advice to unpickle untrusted code is never passed on
    assert not (tmp_path / "m").exists()
