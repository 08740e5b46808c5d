"""Bring your own DiT: checkpoints in the original code's layout (built here, random weights) imported,
checked against that code's forward pass (tests/original_reference.py), served, refused when bad."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from original_reference import forward, random_state, train_checkpoint
from test_final_step import dit_space_timesteps, improved_ddpm_loop

from dit_demo.lab.interchange.dit_import import import_checkpoint
from dit_demo.lab.interchange.original_dit import infer_arch, read_checkpoint
from dit_demo.runtime.checkpoints import EMBEDDED_MODEL
from dit_demo.runtime.engine import sample
from dit_demo.runtime.loader import load_bundle, save_bundle
from dit_demo.runtime.request import Lane, check_lanes

# (depth, hidden, heads, patch, learned sigma, table rows, classes, latent)
SIZES = {
    "learned-sigma-null": (2, 64, 4, 2, True, 11, 10, 8),
    "fixed-sigma-no-null": (3, 96, 6, 4, False, 7, 7, 16),
    "patch-4-null": (2, 48, 3, 4, True, 4, 3, 8),
}


@pytest.fixture(scope="module")
def vae_dir(tmp_path_factory, small_bundle_dir):
    return small_bundle_dir / "vae"  # 4 latent channels, like DiT's


def _save(tmp_path, state, name="ckpt.pt", **args):
    path = tmp_path / name
    torch.save(train_checkpoint(state, **args) if args else state, path)
    return path


@pytest.mark.parametrize("size", sorted(SIZES))
def test_the_imported_model_is_the_original_code_to_1e_5(tmp_path, vae_dir, size):
    depth, hidden, heads, patch, learned, rows, classes, latent = SIZES[size]
    state = random_state(depth, hidden, heads, patch, 4, learned, rows, latent)
    ckpt = _save(tmp_path, state, num_classes=classes, image_size=latent * 2)  # what the test VAE (2x) makes
    folder = import_checkpoint(ckpt, tmp_path / "model", heads=heads, vae=str(vae_dir))
    bundle = load_bundle(str(folder), "cpu", "fp32")
    x, t = torch.randn(3, 4, latent, latent), torch.tensor([999.0, 500.0, 3.0])
    y = torch.tensor([0, classes - 1, rows - 1])  # the last row: the null class where there is one
    with torch.no_grad():
        ours = bundle.transformer(x, timestep=t, class_labels=y).sample
        theirs = forward(state, heads, x, t, y)
        for block in bundle.transformer.transformer_blocks:  # diffusers' own timestep features instead
            block.norm1.emb.time_proj.downscale_freq_shift = 1
        diffusers_features = bundle.transformer(x, timestep=t, class_labels=y).sample
    scale = theirs.abs().max()
    assert (ours - theirs).abs().max() / scale < 1e-5
    assert (diffusers_features - theirs).abs().max() / scale > 1e-2  # what the original frequencies fix
    assert (
        bundle.learned_sigma == learned and bundle.num_classes == classes and bundle.has_null_class == (rows > classes)
    )
    assert bundle.extras["timestep_features"] == "original" and len(bundle.extras["weights"]) == 12


def test_ddpm_on_dits_grid_equals_dits_sampler_on_the_original_model(tmp_path, vae_dir):
    depth, hidden, heads, patch, learned, rows, classes, latent = SIZES["learned-sigma-null"]
    state = random_state(depth, hidden, heads, patch, 4, learned, rows, latent)
    folder = import_checkpoint(
        _save(tmp_path, state), tmp_path / "m", num_classes=classes, heads=heads, vae=str(vae_dir)
    )
    bundle = load_bundle(str(folder), "cpu", "fp32")
    lane = Lane("ddpm[spacing=linspace]", 250, 4, seed=3, cfg_scale=1.5, cfg_channels=3)
    ours = sample(bundle, [lane])[0].latents.double()
    theirs = improved_ddpm_loop(
        bundle, dit_space_timesteps(1000, 250), 4, 3, 1.5, guided_channels=3,
        forward=lambda x, t, y: forward(state, heads, x, t, y),
    )  # fmt: skip
    assert ((ours - theirs).abs().max() / theirs.abs().max()).item() < 1e-4


def test_both_checkpoint_forms_and_the_weights_flag(tmp_path, vae_dir):
    state = random_state(2, 64, 4, 2, 4, True, 11, 8)
    ckpt = _save(tmp_path, state, model="DiT-custom", num_classes=10, image_size=64, class_dropout_prob=0.1)
    ema = read_checkpoint(ckpt)[0]
    raw, args = read_checkpoint(ckpt, "model")
    assert torch.equal(ema["pos_embed"], state["pos_embed"]) and not torch.equal(
        raw["blocks.0.mlp.fc1.bias"], state["blocks.0.mlp.fc1.bias"]
    )
    assert args.num_classes == 10
    plain = _save(tmp_path, state, "plain.pt")
    assert set(read_checkpoint(plain)[0]) == set(state) and read_checkpoint(plain)[1] is None
    with pytest.raises(ValueError, match="plain state dict, one set of weights"):
        read_checkpoint(plain, "model")  # a plain state dict has one set of weights


def test_every_field_is_inferred_from_the_tensors():
    state = random_state(12, 384, 6, 8, 4, True, 1001, 32)  # DiT-S/8's sizes, ImageNet's table
    arch = infer_arch(state)
    assert (arch.name, arch.heads, arch.depth, arch.hidden, arch.patch) == ("DiT-S/8", 6, 12, 384, 8)
    assert (arch.num_classes, arch.has_null_class, arch.latent_size, arch.learned_sigma) == (1000, True, 32, True)
    with pytest.raises(ValueError, match="--heads 4 contradicts DiT-S/8, which has 6 heads"):
        infer_arch(state, arch="DiT-S/8", heads=4)
    assert infer_arch(state, heads=4).heads == 4  # same sizes, other heads: the tensors cannot tell, the flag decides


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"arch": "DiT-XL/2"},
            "--arch says DiT-XL/2 \\(depth 28, hidden 1152, patch 2\\), but the tensors are depth 2",
        ),
        ({"arch": "DiT-M/2"}, "Unknown DiT configuration 'DiT-M/2'"),
        ({"num_classes": 5}, "The label table has 11 rows, .*--num-classes \\(or args.num_classes\\) says 5"),
        ({}, "match none of the paper's DiT configurations.*--arch .* or --heads N"),
        ({"heads": 5}, "--heads 5 does not divide the hidden size 64"),
    ],
)
def test_overrides_that_contradict_the_tensors_are_named(kwargs, message):
    state = random_state(2, 64, 4, 2, 4, True, 11, 8)
    with pytest.raises(ValueError, match=message):
        infer_arch(state, num_classes=kwargs.pop("num_classes", 10), **kwargs)


class _CreatesAFile:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.mark.parametrize("zipped", [True, False])
def test_a_pickle_that_would_run_code_is_refused_by_name(tmp_path, zipped):
    target = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"model": {}, "args": _CreatesAFile(str(target))}, path, _use_new_zipfile_serialization=zipped)
    with pytest.raises(
        ValueError, match="asks to create io.open, which a DiT checkpoint never holds; it was not loaded"
    ):
        read_checkpoint(path)
    assert not target.exists()


def test_a_legacy_pickle_of_tensors_is_read(tmp_path):
    state = random_state(1, 32, 2, 2, 4, True, 3, 4)
    torch.save(state, tmp_path / "legacy.pt", _use_new_zipfile_serialization=False)
    assert set(read_checkpoint(tmp_path / "legacy.pt")[0]) == set(state)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p.write_text("not a checkpoint"), "is not a PyTorch checkpoint"),
        (lambda p: p.write_bytes(_valid_bytes(p)[:200]), "is not a PyTorch checkpoint, or it is cut short"),
        (lambda p: torch.save({"x_embedder.proj.weight": torch.zeros(1)}, p), "pos_embed, t_embedder.mlp.0.weight"),
        (lambda p: torch.save([1, 2], p), "holds list, not a state dict"),
    ],
)
def test_bad_checkpoints_get_one_line_and_nothing_is_written(tmp_path, vae_dir, make, message):
    path = tmp_path / "bad.pt"
    make(path)
    with pytest.raises(ValueError, match=message) as info:
        import_checkpoint(path, tmp_path / "out", num_classes=10, vae=str(vae_dir))
    assert not (tmp_path / "out").exists()
    assert "weights_only" not in str(info.value)  # PyTorch's advice to unpickle untrusted code is never passed on


def _valid_bytes(path):
    torch.save(random_state(1, 32, 2, 2, 4, True, 3, 4), path)
    return path.read_bytes()


def test_labels_force_and_the_vae_are_checked_before_writing(tmp_path, vae_dir):
    ckpt = _save(tmp_path, random_state(2, 64, 4, 2, 4, True, 11, 8))
    names = tmp_path / "names.txt"
    names.write_text("\n".join(f"thing {i}" for i in range(9)))
    with pytest.raises(ValueError, match="names 9 classes; the model has 10"):
        import_checkpoint(ckpt, tmp_path / "m", num_classes=10, heads=4, vae=str(vae_dir), labels=names)
    names.write_text("\n".join(f"thing {i}" for i in range(10)))
    folder = import_checkpoint(ckpt, tmp_path / "m", num_classes=10, heads=4, vae=str(vae_dir), labels=names)
    assert load_bundle(str(folder), "cpu", "fp32").labels.name(3) == "thing 3"
    with pytest.raises(FileExistsError, match="already exists; nothing was written \\(add --force"):
        import_checkpoint(ckpt, folder, num_classes=10, heads=4, vae=str(vae_dir))
    import_checkpoint(ckpt, folder, num_classes=10, heads=4, vae=str(vae_dir), force=True)
    with pytest.raises(FileNotFoundError, match="not in the hub cache and nothing is downloaded here"):
        import_checkpoint(ckpt, tmp_path / "n", num_classes=10, heads=4, vae="nobody/no-such-vae")
    assert not (tmp_path / "n").exists()


def test_a_model_without_a_null_class_refuses_guidance_plainly(tmp_path, vae_dir):
    depth, hidden, heads, patch, learned, rows, classes, latent = SIZES["fixed-sigma-no-null"]
    ckpt = _save(tmp_path, random_state(depth, hidden, heads, patch, 4, learned, rows, latent))
    folder = import_checkpoint(ckpt, tmp_path / "m", num_classes=classes, heads=heads, vae=str(vae_dir))
    bundle = load_bundle(str(folder), "cpu", "fp32")
    assert not bundle.has_null_class and bundle.default_cfg == 1.0
    assert len(check_lanes(bundle, [Lane("ddim", 4, 2)])) == 1  # the model's default: no guidance
    with pytest.raises(ValueError, match="no null class, so classifier-free guidance is unavailable"):
        check_lanes(bundle, [Lane("ddim", 4, 2, cfg_scale=4.0)])


def test_the_command_line_imports_exports_and_round_trips(tmp_path, vae_dir):
    state = random_state(2, 64, 4, 2, 4, True, 11, 8)
    ckpt = _save(tmp_path, state, num_classes=10)
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    run = lambda *a: subprocess.run([sys.executable, "-m", "dit_demo", *a], capture_output=True, text=True, env=env)  # noqa: E731
    made = run("import", str(ckpt), "--out", str(tmp_path / "m"), "--heads", "4", "--vae", str(vae_dir))
    assert made.returncode == 0 and "10 classes, 16 px, cfg 4" in made.stdout, made.stderr
    again = run("import", str(ckpt), "--out", str(tmp_path / "m"), "--heads", "4", "--vae", str(vae_dir))
    assert again.returncode == 2 and again.stderr.startswith("error: ") and "--force" in again.stderr
    out = run("export", str(tmp_path / "m"), "--out", str(tmp_path / "back.pt"))
    assert out.returncode == 0, out.stderr
    back = torch.load(tmp_path / "back.pt", weights_only=True)
    assert set(back) == set(state) and all(torch.equal(back[k], state[k]) for k in state)
    index = json.loads((tmp_path / "m" / "model_index.json").read_text())
    assert index["timestep_features"] == "original" and len(index["weights_sha256"]) == 64


def test_a_local_copy_keeps_the_original_features(tmp_path, vae_dir):
    folder = import_checkpoint(_save(tmp_path, random_state(2, 64, 4, 2, 4, True, 11, 8)), tmp_path / "m",
                               num_classes=10, heads=4, vae=str(vae_dir))  # fmt: skip
    bundle = load_bundle(str(folder), "cpu", "fp32")
    from diffusers import DDPMScheduler

    copy = save_bundle(tmp_path / "copy", bundle.transformer, bundle.vae, DDPMScheduler.from_config(bundle.scheduler_config),
                       {str(i): bundle.labels.name(i) for i in range(10)})  # fmt: skip
    assert load_bundle(str(copy), "cpu", "fp32").extras["timestep_features"] == "original"


def test_the_app_serves_an_import_and_reproduce_refuses_another_models_png(tmp_path, vae_dir, small_bundle_dir):
    from conftest import serve
    from gradio_client import Client, handle_file

    from app import create_app
    from dit_demo.lab.outputs.pngmeta import read_parameters

    state = random_state(2, 64, 4, 2, 4, True, 11, 8)
    folder = import_checkpoint(_save(tmp_path, state, num_classes=10), tmp_path / "mine", heads=4, vae=str(vae_dir))
    with serve(create_app(str(folder), "cpu", "fp32")) as url:
        client = Client(url, verbose=False)
        _, gallery, summary = client.predict(["class 3"], "ddim", 4, 4.0, 0, 1, 1, api_name="/generate")
        made = read_parameters(gallery[0]["image"])
        assert "1 image(s), 4 NFE each" in summary and made["class_name"] == "class 3"
        assert made["model_hash"] == json.loads((folder / "model_index.json").read_text())["weights_sha256"][:12]
        assert client.predict(handle_file(gallery[0]["image"]), api_name="/reproduce")[-1].startswith("Restored")
    with serve(create_app(str(small_bundle_dir), "cpu", "fp32")) as url:  # another model: its PNG is refused
        client = Client(url, verbose=False)
        with pytest.raises(Exception, match="This PNG was made by another model .* Load the model that made it"):
            client.predict(handle_file(gallery[0]["image"]), api_name="/reproduce")


def test_the_app_says_plainly_that_a_model_without_a_null_class_has_no_guidance(tmp_path, vae_dir):
    from conftest import serve
    from gradio_client import Client

    from app import create_app

    depth, hidden, heads, patch, learned, rows, classes, latent = SIZES["fixed-sigma-no-null"]
    ckpt = _save(tmp_path, random_state(depth, hidden, heads, patch, 4, learned, rows, latent))
    folder = import_checkpoint(ckpt, tmp_path / "m", num_classes=classes, heads=heads, vae=str(vae_dir))
    demo = create_app(str(folder), "cpu", "fp32")
    sliders = [c for c in demo.blocks.values() if getattr(c, "elem_id", None) in ("gen-cfg", "cmp-cfg")]
    assert len(sliders) == 2 and all(not c.interactive and "no null class" in c.info for c in sliders)
    with serve(demo) as url:
        client = Client(url, verbose=False)
        _, gallery, _ = client.predict(["class 1"], "ddim", 3, 1.0, 0, 1, 1, api_name="/generate")
        assert len(gallery) == 1
        with pytest.raises(Exception, match="no null class, so classifier-free guidance is unavailable"):
            client.predict(["class 1"], "ddim", 3, 4.0, 0, 1, 1, api_name="/generate")


def test_a_missing_vae_names_the_hf_command_train_pys_vae_and_a_local_folder_that_fits(tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    embedded = str(EMBEDDED_MODEL / "vae")  # 4-channel latents, 4x: an 8x8 latent makes 32 px
    plain = _save(tmp_path, random_state(2, 64, 4, 2, 4, True, 11, 8), "plain.pt")
    with pytest.raises(FileNotFoundError) as missing:
        import_checkpoint(plain, tmp_path / "m", num_classes=10, heads=4)
    assert "`hf download stabilityai/sd-vae-ft-ema --include '*.json' --include '*.safetensors'`" in str(missing.value)
    assert f"--vae {embedded}" in str(missing.value) and "huggingface-cli" not in str(missing.value)
    folder = import_checkpoint(plain, tmp_path / "m", num_classes=10, heads=4, vae=embedded)  # the folder named works
    assert load_bundle(str(folder), "cpu", "fp32").image_size == 32
    trained_at_64 = _save(tmp_path, random_state(2, 64, 4, 2, 4, True, 11, 8), num_classes=10, image_size=64, vae="mse")
    with pytest.raises(FileNotFoundError, match="hf download stabilityai/sd-vae-ft-mse") as missing:  # train.py's
        import_checkpoint(trained_at_64, tmp_path / "n", heads=4)
    assert embedded not in str(missing.value)  # it would make 32 px pictures of a model trained at 64


def test_an_image_size_the_vae_does_not_make_is_refused_naming_both(tmp_path, vae_dir):
    ckpt = _save(tmp_path, random_state(2, 64, 4, 2, 4, True, 11, 8), num_classes=10, image_size=64)
    embedded = str(EMBEDDED_MODEL / "vae")
    with pytest.raises(ValueError, match="8x8 latent into 32 px images, but args.image_size says 64 px"):
        import_checkpoint(ckpt, tmp_path / "m", heads=4, vae=embedded)
    with pytest.raises(ValueError, match="8x8 latent into 16 px images, but --image-size says 512 px"):
        import_checkpoint(ckpt, tmp_path / "m", heads=4, vae=str(vae_dir), image_size=512)
    assert not (tmp_path / "m").exists()
    folder = import_checkpoint(ckpt, tmp_path / "m", heads=4, vae=embedded, image_size=32)  # the flag: 32 px is meant
    assert load_bundle(str(folder), "cpu", "fp32").image_size == 32
