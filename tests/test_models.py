"""Loading bundles in the hub layout, labels and clear errors."""

from __future__ import annotations

import json

import pytest

from dit_demo.labels import Labels
from dit_demo.models import load_bundle


def test_legacy_transformer_config_loads_as_dit(imagenet_bundle_dir, imagenet_bundle):
    assert json.loads((imagenet_bundle_dir / "transformer" / "config.json").read_text())["_class_name"] == "Transformer2DModel"
    assert type(imagenet_bundle.transformer).__name__ == "DiTTransformer2DModel"
    assert imagenet_bundle.null_class == 1000 and imagenet_bundle.learned_sigma
    assert (imagenet_bundle.latent_channels, imagenet_bundle.latent_size) == (4, 8)


def test_facts_come_from_the_configs(small_bundle):
    assert small_bundle.null_class == 10 and small_bundle.num_classes == 10
    assert small_bundle.vae.config.scaling_factor == pytest.approx(0.18215)


def test_no_pickle_weights_are_read(imagenet_bundle_dir):
    assert not list(imagenet_bundle_dir.rglob("*.bin")) and list(imagenet_bundle_dir.rglob("*.safetensors"))


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
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="(?s)Could not get 'facebook/DiT-XL-2-256'.*local folder"):
        load_bundle("facebook/DiT-XL-2-256")


def test_bad_device_and_dtype(small_bundle_dir):
    with pytest.raises(ValueError, match="Unknown dtype 'fp8'"):
        load_bundle(small_bundle_dir, device="cpu", dtype="fp8")
    with pytest.raises(ValueError, match="Unknown device"):
        load_bundle(small_bundle_dir, device="toaster")
