"""The shipped Fashion-MNIST model, its training scripts and the evaluator."""

from __future__ import annotations

import json

import pytest
import torch

import samplers
from dit_demo.cli.evaluate import main as evaluate_command
from dit_demo.lab.quality import evaluate
from dit_demo.runtime.engine import sample
from dit_demo.runtime.loader import EMBEDDED_MODEL, load_bundle
from dit_demo.runtime.request import Lane
from dit_demo.training import train
from dit_demo.training.classifier import FashionClassifier
from dit_demo.training.data import load_fashion_mnist


@pytest.fixture(scope="module")
def embedded():
    return load_bundle(None, device="cpu", dtype="fp32")


def test_missing_dataset_says_how_to_get_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        load_fashion_mnist("train", tmp_path)


def test_training_scripts_smoke_run_and_load(tmp_path):
    out, work = tmp_path / "model", tmp_path / "work"
    common = ["--out", str(out), "--work", str(work), "--limit", "256", "--threads", "2"]
    train.main(
        [
            "all",
            *common,
            "--vae-steps",
            "3",
            "--vae-batch",
            "16",
            "--classifier-steps",
            "3",
            "--dit-steps",
            "4",
            "--dit-batch",
            "16",
            "--dit-hidden",
            "32",
            "--dit-layers",
            "1",
            "--dit-heads",
            "2",
        ]
    )
    bundle = load_bundle(out, device="cpu", dtype="fp32")
    assert bundle.learned_sigma and bundle.null_class == 10 and bundle.labels.resolve("ankle boot") == 9
    assert bundle.vae.config.scaling_factor != 0.18215  # measured from the data, not the SD default
    assert FashionClassifier.load(out / "classifier").num_classes == 10
    # resuming a finished stage is a no-op that still exports the same weights
    before = (out / "transformer" / "diffusion_pytorch_model.safetensors").read_bytes()
    train.main(
        [
            "dit",
            *common,
            "--dit-steps",
            "4",
            "--dit-batch",
            "16",
            "--dit-hidden",
            "32",
            "--dit-layers",
            "1",
            "--dit-heads",
            "2",
        ]
    )
    assert (out / "transformer" / "diffusion_pytorch_model.safetensors").read_bytes() == before


def test_the_sit_stage_trains_a_velocity_model_on_the_same_vae_and_exports_a_sit_folder(tmp_path):
    out, work, sit_out = tmp_path / "model", tmp_path / "work", tmp_path / "sit"
    tiny = ["--dit-steps", "3", "--dit-batch", "16", "--dit-hidden", "32", "--dit-layers", "1", "--dit-heads", "2"]
    common = ["--out", str(out), "--work", str(work), "--limit", "128", "--threads", "2", *tiny]
    train.main(["vae", *common, "--vae-steps", "2", "--vae-batch", "16"])
    train.main(["sit", *common, "--sit-out", str(sit_out)])
    bundle = load_bundle(sit_out, device="cpu", dtype="fp32")
    assert bundle.parameterization.family == "sit" and not bundle.learned_sigma
    assert bundle.transformer.config.out_channels == bundle.latent_channels == 4  # a velocity, no variance
    assert (sit_out / "vae" / "diffusion_pytorch_model.safetensors").read_bytes() == (
        out / "vae" / "diffusion_pytorch_model.safetensors"
    ).read_bytes()
    assert torch.load(work / "sit.pt", weights_only=False)["step"] == 3  # resumable like every stage


def test_velocity_loss_is_zero_for_the_true_velocity_and_positive_otherwise():
    from types import SimpleNamespace

    from dit_demo.training.sit import velocity_loss

    x1, labels = torch.randn(4, 4, 8, 8), torch.zeros(4, dtype=torch.long)
    gen = torch.Generator().manual_seed(0)  # the draws velocity_loss makes from the same seed: t, then the noise
    torch.rand(4, generator=gen)
    noise = torch.randn(x1.shape, generator=gen)

    def oracle(xt, timestep, class_labels):  # recovers x1 from x_t = t x1 + (1 - t) noise, returns x1 - noise
        t = timestep.view(-1, 1, 1, 1)
        return SimpleNamespace(sample=(xt - (1 - t) * noise) / t - noise)

    def blind(xt, timestep, class_labels):
        return SimpleNamespace(sample=torch.zeros_like(xt))

    assert velocity_loss(oracle, x1, labels, torch.Generator().manual_seed(0)).item() < 1e-8
    assert velocity_loss(blind, x1, labels, torch.Generator().manual_seed(0)).item() > 1


def test_shipped_model_makes_recognisable_classes(embedded):
    classifier = FashionClassifier.load(EMBEDDED_MODEL / "classifier")
    assert embedded.default_cfg == 1.5
    lanes = [Lane("dpmpp_2m", 25, c, seed, embedded.default_cfg) for c in range(10) for seed in (100, 101)]
    latents = torch.stack([r.latents for r in sample(embedded, lanes)])
    preds, _ = evaluate.classify(classifier, evaluate.to_classifier_input(embedded, latents))
    hits = (preds == torch.tensor([lane.class_id for lane in lanes])).sum().item()
    assert hits >= 16, f"only {hits}/20 samples land in their class"


def test_evaluator_end_to_end_small(tmp_path, capsys):
    evaluate_command(
        ["--per-class", "1", "--steps", "2", "--ddpm-steps", "3", "--out-dir", str(tmp_path), "--device", "cpu"]
    )
    data = json.loads((tmp_path / "evaluation.json").read_text())
    sampler_rows = [row for row in data["rows"] if row["steps"]]
    assert {row["sampler"] for row in sampler_rows} == {s.name for s in samplers.for_family("dit")}
    assert ("ddpm", 3) in {(row["sampler"], row["steps"]) for row in data["rows"]}
    table = (tmp_path / "evaluation.md").read_text()
    for sampler in samplers.for_family("dit"):
        assert f"| {sampler.label} |" in table
    assert all(0.0 <= row["accuracy"] <= 1.0 and row["nfe"] >= 2 for row in sampler_rows)
    # reference rows: one real training image per class, then its VAE round trip
    real, vae = data["rows"][:2]
    assert (real["sampler"], vae["sampler"]) == ("real", "vae") and real["samples"] == vae["samples"] == 10
    assert "| Real training images (reference) | – |" in table


def test_vae_round_trip_keeps_real_images_recognisable(embedded):
    images, labels = load_fashion_mnist("test")
    idx = evaluate.balanced_subset(labels, list(range(10)), 10)
    assert labels[idx].tolist() == [c for c in range(10) for _ in range(10)]
    classifier = FashionClassifier.load(EMBEDDED_MODEL / "classifier")
    round_trip = evaluate.vae_round_trip(embedded, images[idx])
    assert round_trip.shape == images[idx].shape
    # the round trip is close to the input, not a copy of it
    assert 0.0 < (round_trip - images[idx]).abs().mean() < 0.1
    preds, _ = evaluate.classify(classifier, round_trip)
    assert (preds == labels[idx]).float().mean() >= 0.8


def test_dit_learning_rate_warms_up_holds_then_cools_to_zero():
    lr = [train.dit_learning_rate(s, 1000, 1.0, warmup=100, cooldown=200) for s in range(1000)]
    assert lr[0] == 0.01 and lr[99] == 1.0
    assert all(v == 1.0 for v in lr[100:800])  # constant middle: extending a run by resuming is seamless
    assert lr[800] == 1.0 and lr[-1] == 1.0 / 200 and all(a > b for a, b in zip(lr[800:], lr[801:]))
    # a cool-down longer than the run decays over the whole run instead of going negative
    assert all(0 < v <= 1.0 for v in (train.dit_learning_rate(s, 4, 1.0, warmup=1, cooldown=4000) for s in range(4)))
