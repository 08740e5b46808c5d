"""Loading bundles in the hub layout, labels and clear errors."""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import huggingface_hub.constants
import pytest
import torch
from conftest import make_bundle
from safetensors.torch import load_file

from dit_demo.app.model_slot import EMBEDDED_NAME, ModelSlot
from dit_demo.runtime.labels import Labels
from dit_demo.runtime.loader import ModelLoadError, load_bundle

HUB_ID = "facebook/DiT-XL-2-256"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def _offline_hub_cache(monkeypatch, cache: Path) -> Path:
    """Point huggingface_hub at ``cache`` with the network off; it reads both settings at import, so set both ways."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    return cache


def _cached_hub_bundle(monkeypatch, tmp_path) -> Path:
    """A tiny bundle as a cached snapshot of HUB_ID whose transformer ships only a .bin; its snapshot folder."""
    cache = _offline_hub_cache(monkeypatch, tmp_path / "hub")
    repo = cache / f"models--{HUB_ID.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(COMMIT)
    snapshot = make_bundle(repo / "snapshots" / COMMIT, 10, {str(i): f"class {i}" for i in range(10)}, seed=2)
    weights = snapshot / "transformer" / "diffusion_pytorch_model.safetensors"
    torch.save(load_file(weights), snapshot / "transformer" / "diffusion_pytorch_model.bin")
    weights.unlink()
    return snapshot


def test_legacy_transformer_config_loads_as_dit(imagenet_bundle_dir, imagenet_bundle):
    assert (
        json.loads((imagenet_bundle_dir / "transformer" / "config.json").read_text())["_class_name"]
        == "Transformer2DModel"
    )
    assert type(imagenet_bundle.transformer).__name__ == "DiTTransformer2DModel"
    assert imagenet_bundle.null_class == 1000 and imagenet_bundle.learned_sigma
    assert (imagenet_bundle.latent_channels, imagenet_bundle.latent_size) == (4, 8)


def test_facts_come_from_the_configs(small_bundle):
    assert small_bundle.null_class == 10 and small_bundle.num_classes == 10
    assert small_bundle.vae.config.scaling_factor == pytest.approx(0.18215)


def test_vae_scaling_factor_is_read_from_its_config(small_bundle_dir, tmp_path):
    # 0.18215 is also diffusers' default: only a value that differs shows the config is read
    folder = shutil.copytree(small_bundle_dir, tmp_path / "bundle")
    config_path = folder / "vae" / "config.json"
    config = json.loads(config_path.read_text())
    config_path.write_text(json.dumps({**config, "scaling_factor": 0.5}))
    assert load_bundle(folder, device="cpu", dtype="fp32").vae.config.scaling_factor == 0.5


def test_synonyms_case_and_suggestions():
    labels = Labels.from_id2label(json.loads(open("dit_demo/imagenet_id2label.json").read()))
    assert labels.resolve("white shark") == labels.resolve("great white shark") == labels.resolve("WHITE SHARK") == 2
    assert labels.resolve("879") == labels.resolve(879) == labels.resolve("879: umbrella") == 879
    with pytest.raises(ValueError, match="Did you mean: 'umbrella'"):
        labels.resolve("umbrela")
    # a picker string from another model must not silently become this model's class 0
    with pytest.raises(ValueError, match="does not match this model's class 0"):
        labels.resolve("0: T-shirt/top")


def test_missing_folder_says_what_was_looked_for(tmp_path):
    with pytest.raises(FileNotFoundError, match="no model_index.json"):
        load_bundle(tmp_path)
    with pytest.raises(FileNotFoundError, match="not a hub id"):
        load_bundle(tmp_path / "nope")


def test_unreachable_hub_model_explains_the_fix(monkeypatch, tmp_path):
    _offline_hub_cache(monkeypatch, tmp_path)  # an empty cache, and no network even where there is some
    with pytest.raises(FileNotFoundError, match="(?s)Could not get 'facebook/DiT-XL-2-256'.*local folder"):
        load_bundle("facebook/DiT-XL-2-256")
    with pytest.raises(FileNotFoundError) as refused:
        load_bundle("facebook/DiT-XL-2-512")
    assert "/path/to/DiT-XL-2-512" in str(refused.value) and "DiT-XL-2-256" not in str(refused.value)


def test_bad_device_and_dtype(small_bundle_dir):
    with pytest.raises(ValueError, match="Unknown dtype 'fp8'"):
        load_bundle(small_bundle_dir, device="cpu", dtype="fp8")
    with pytest.raises(ValueError, match="Unknown device"):
        load_bundle(small_bundle_dir, device="toaster")


def test_hub_model_without_safetensors_loads_its_bin_weights_only(monkeypatch, tmp_path, caplog):
    snapshot = _cached_hub_bundle(monkeypatch, tmp_path)
    saved = torch.load(snapshot / "transformer" / "diffusion_pytorch_model.bin", weights_only=True)
    with caplog.at_level(logging.WARNING, logger="dit_demo.runtime.checkpoints"):
        bundle = load_bundle(HUB_ID, device="cpu", dtype="fp32")
    loaded = bundle.transformer.state_dict()
    assert loaded.keys() == saved.keys() and all(torch.equal(loaded[k], saved[k]) for k in saved)
    notes = [r.getMessage() for r in caplog.records if r.name == "dit_demo.runtime.checkpoints"]
    assert len(notes) == 1 and "transformer/" in notes[0] and "weights-only unpickling" in notes[0]


def test_local_folder_with_only_bin_weights_is_refused(monkeypatch, tmp_path):
    snapshot = _cached_hub_bundle(monkeypatch, tmp_path)
    # the very same files, named by path rather than by the allowlisted hub id
    with pytest.raises(ModelLoadError, match="only safetensors are read from local folders.*safe_serialization=True"):
        load_bundle(snapshot, device="cpu", dtype="fp32")


class _RunsCode:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.mkdir, (str(self.marker),)


def test_hub_bin_that_is_not_plain_weights_is_refused_not_run(monkeypatch, tmp_path):
    snapshot = _cached_hub_bundle(monkeypatch, tmp_path)
    marker = tmp_path / "pickle-ran"
    pickled = snapshot / "transformer" / "diffusion_pytorch_model.bin"
    torch.save({"pos_embed.proj.weight": _RunsCode(marker)}, pickled)
    with pytest.raises(ModelLoadError, match="refused by weights-only unpickling and not loaded") as info:
        load_bundle(HUB_ID, device="cpu", dtype="fp32")
    assert str(pickled) in str(info.value) and "hf download facebook/DiT-XL-2-256" in str(info.value)
    assert not marker.exists()


def _garble(path: Path) -> None:
    path.write_text("{not json")


def _more_layers_than_weights(folder: Path) -> None:
    # diffusers would leave the third block's weights unloaded (meta tensors) and only warn
    config_path = folder / "transformer" / "config.json"
    config_path.write_text(json.dumps({**json.loads(config_path.read_text()), "num_layers": 3}))


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda f: _garble(f / "model_index.json"), "model_index.json is not readable JSON"),
        (lambda f: shutil.rmtree(f / "vae"), "vae is missing"),
        (
            lambda f: (f / "vae" / "diffusion_pytorch_model.safetensors").unlink(),
            "vae/diffusion_pytorch_model.safetensors is missing",
        ),
        (lambda f: _garble(f / "transformer" / "config.json"), "transformer/config.json is not readable JSON"),
        (lambda f: (f / "scheduler" / "scheduler_config.json").unlink(), "scheduler_config.json is missing"),
        (_more_layers_than_weights, "diffusion_pytorch_model.safetensors lacks 19 weight"),
    ],
    ids=[
        "garbled-index",
        "no-vae-folder",
        "no-vae-weights",
        "garbled-config",
        "no-scheduler-config",
        "config-mismatch",
    ],
)
def test_unreadable_bundle_is_one_line_naming_the_file(damage, message, small_bundle_dir, tmp_path):
    folder = shutil.copytree(small_bundle_dir, tmp_path / "bundle")
    damage(folder)
    with pytest.raises(ModelLoadError, match=message) as info:
        load_bundle(folder, device="cpu", dtype="fp32")
    assert str(folder) in str(info.value) and "layout" in str(info.value) and "\n" not in str(info.value)


def test_model_slot_turns_os_errors_into_messages_and_keeps_its_model(small_bundle, monkeypatch):
    slot = ModelSlot(device="cpu", dtype="fp32", allowed=[EMBEDDED_NAME, HUB_ID])
    slot.bundle, slot.name = small_bundle, EMBEDDED_NAME

    def fail(*args):
        raise PermissionError(13, "Permission denied", "/root/.cache/huggingface")

    monkeypatch.setattr("dit_demo.app.model_slot.load_bundle", fail)
    with pytest.raises(ModelLoadError, match="Could not load facebook/DiT-XL-2-256: .*Permission denied"):
        slot.load(HUB_ID)
    assert slot.bundle is small_bundle and slot.name == EMBEDDED_NAME
