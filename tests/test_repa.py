"""REPA checkpoints (sihyun-yu/REPA) imported and sampled: its SiT with q/k norms and projector heads, its two paths
and its samplers with their guidance interval, each checked against REPA's code written out in repa_reference.py."""

from __future__ import annotations

import json
import math

import pytest
import torch
from repa_reference import Model, euler_maruyama_sampler, euler_sampler, repa_checkpoint, repa_forward, repa_state

import samplers
from dit_demo.lab.interchange.dit_import import export_folder, import_checkpoint
from dit_demo.runtime.engine import sample
from dit_demo.runtime.loader import load_bundle
from dit_demo.runtime.parameterization import RepaVelocity
from dit_demo.runtime.request import Lane, check_lanes

DEPTH, HIDDEN, HEADS, PATCH, ROWS, CLASSES, LATENT = 2, 64, 4, 2, 11, 10, 8
REPA_ARGS = {
    "encoder_depth": 1, "qk_norm": True, "fused_attn": True, "path_type": "linear", "prediction": "v",
    "num_classes": CLASSES, "resolution": 2 * LATENT, "proj_coeff": 0.5, "enc_type": "dinov2-vit-b", "cfg_prob": 0.1,
}  # fmt: skip


def relative(ours: torch.Tensor, theirs: torch.Tensor) -> float:
    return ((ours.double() - theirs.double()).abs().max() / theirs.double().abs().max()).item()


def imported(tmp, state, vae_dir, name="model", **args):
    ckpt = tmp / f"{name}.pt"
    torch.save(repa_checkpoint(state, **{**REPA_ARGS, **args}), ckpt)
    return import_checkpoint(ckpt, tmp / name, heads=HEADS, vae=str(vae_dir / "vae"))


@pytest.fixture(scope="module")
def qk_state():
    return repa_state(DEPTH, HIDDEN, HEADS, PATCH, ROWS, LATENT, qk_norm=True, seed=7)


@pytest.fixture(scope="module")
def cosine_state():
    return repa_state(DEPTH, HIDDEN, HEADS, PATCH, ROWS, LATENT, qk_norm=False, seed=8)


@pytest.fixture(scope="module")
def qk_folder(tmp_path_factory, qk_state, small_bundle_dir):
    return imported(tmp_path_factory.mktemp("repa"), qk_state, small_bundle_dir)


@pytest.fixture(scope="module")
def qk_bundle(qk_folder):
    return load_bundle(str(qk_folder), "cpu", "fp32")


@pytest.fixture(scope="module")
def cosine_bundle(tmp_path_factory, cosine_state, small_bundle_dir):
    tmp = tmp_path_factory.mktemp("repa_cos")
    folder = imported(tmp, cosine_state, small_bundle_dir, qk_norm=False, path_type="cosine", encoder_depth=2)
    return load_bundle(str(folder), "cpu", "fp32")


def test_the_import_records_repa_and_drops_the_projectors(qk_folder, qk_bundle):
    index = json.loads((qk_folder / "model_index.json").read_text())
    assert index["family"] == "repa" and index["qk_norm"] == "layer_norm"
    assert index["transport"]["path_type"] == "linear" and index["transport"]["prediction"] == "v"
    assert "1 = noise, 0 = data" in index["transport"]["time"]
    assert (
        index["source"]["dropped"].startswith("dropped 6 projector tensors")
        and "after block 1" in index["source"]["dropped"]
    )
    assert index["source"]["fused_attn"] is True
    p = qk_bundle.parameterization
    assert isinstance(p, RepaVelocity) and p.path_type == "linear" and not qk_bundle.learned_sigma
    assert qk_bundle.transformer.transformer_blocks[1].attn1.norm_k is not None


@pytest.mark.parametrize("which", ["qk", "cosine"])
def test_the_imported_repa_is_repas_forward_to_1e_5(which, qk_state, qk_bundle, cosine_state, cosine_bundle):
    state, bundle = (qk_state, qk_bundle) if which == "qk" else (cosine_state, cosine_bundle)
    x, t = torch.randn(3, 4, LATENT, LATENT), torch.tensor([1.0, 0.37, 0.0])  # REPA's time, as it is
    y = torch.tensor([0, CLASSES - 1, CLASSES])
    with torch.no_grad():
        ours = bundle.parameterization.prediction(bundle.transformer(x, timestep=t, class_labels=y).sample)
    assert relative(ours, repa_forward(state, HEADS, x, t, y)) < 1e-5
    if which == "qk":  # the norms matter: without them the forward is another one
        bare = {k: v for k, v in state.items() if "_norm." not in k}
        assert relative(ours, repa_forward(bare, HEADS, x, t, y)) > 1e-3


@pytest.mark.parametrize(("path", "t"), [("linear", 0.0), ("linear", 0.3), ("cosine", 0.3), ("cosine", 0.9)])
def test_repa_velocity_answers_repas_path_formulas(path, t):
    p = RepaVelocity(4, path)
    alpha, sigma = (1 - t, t) if path == "linear" else (math.cos(math.pi * t / 2), math.sin(math.pi * t / 2))
    d_alpha, d_sigma = (-1, 1) if path == "linear" else (-math.pi / 2 * sigma, math.pi / 2 * alpha)
    data, noise = torch.randn(2, 1, 4, 2, 2, dtype=torch.float64).unbind()
    x_t, v = alpha * data + sigma * noise, d_alpha * data + d_sigma * noise  # loss.py's input and target
    torch.testing.assert_close(p.x0_from_output(x_t, t, v), data)
    assert p.sigma_at(t) == pytest.approx(sigma / alpha) and p.model_time(t) == t
    assert RepaVelocity(4, path).sigma_at(1.0) > 1e15 and not p.final_step_takes_x0(samplers.get("repa_euler"))


CASES = [  # sampler, steps, cfg, guidance (low, high), guided channels, model
    ("repa_euler", 6, 4.0, (0.2, 0.7), 4, "qk"),
    ("repa_euler[heun=true]", 4, 4.0, (0.25, 0.75), 4, "qk"),
    ("repa_euler[heun=true]", 5, 1.0, (0.0, 1.0), 4, "cosine"),
    ("repa_euler_maruyama", 6, 4.0, (0.2, 0.7), 4, "qk"),
    ("repa_euler_maruyama", 5, 2.5, (0.0, 1.0), 3, "cosine"),
]


@pytest.mark.parametrize(("name", "steps", "cfg", "interval", "guided", "which"), CASES)
def test_repa_samplers_equal_repas_samplers_py_to_1e_4(name, steps, cfg, interval, guided, which, qk_state, qk_bundle, cosine_state, cosine_bundle):  # fmt: skip
    state, bundle = (qk_state, qk_bundle) if which == "qk" else (cosine_state, cosine_bundle)
    low, high = interval
    options = f"guidance_low={low},guidance_high={high}"
    full = f"{name[:-1]},{options}]" if "[" in name else f"{name}[{options}]"
    result = sample(bundle, [Lane(full, steps, 3, seed=11, cfg_scale=cfg, cfg_channels=guided)])[0]
    g = torch.Generator().manual_seed(11)
    z = torch.randn((1, 4, LATENT, LATENT), generator=g)  # the lane's initial noise, then its per-step noise
    model = Model(state, HEADS, torch.tensor([3]), CLASSES, cfg, low, high, guided)
    if "maruyama" in name:
        theirs = euler_maruyama_sampler(model, z, steps, g, bundle.parameterization.path_type)
    else:
        theirs = euler_sampler(model, z, steps, heun="heun" in name)
    assert relative(result.latents, theirs[0]) < 1e-4
    heun = "heun" in name
    assert result.nfe == len(result.timesteps) == (2 * steps - 1 if heun else steps)


def test_guidance_follows_repas_interval_at_each_steps_t_cur():
    scheduler = samplers.get("repa_euler[heun=true,guidance_low=0.25,guidance_high=0.75]").build({}, 4)
    decided = []
    for t in scheduler.timesteps:
        decided.append(scheduler.guided_now())
        scheduler.step(torch.zeros(1, 4, 2, 2), t, torch.zeros(1, 4, 2, 2))
    # steps from t = 1, .75, .5, .25: bounds inclusive; the correction at t_next follows its step's t_cur
    assert decided == [False, False, True, True, True, True, True]
    assert [float(t) for t in scheduler.timesteps] == [1.0, 0.75, 0.75, 0.5, 0.5, 0.25, 0.25]


def test_the_sde_draws_its_noise_from_the_lanes_generator(qk_bundle):
    a, b, c = sample(qk_bundle, [Lane("repa_euler_maruyama", 4, 1, seed=s, cfg_scale=1.0) for s in (5, 5, 6)])
    assert torch.equal(a.latents, b.latents) and not torch.equal(a.latents, c.latents)


def test_a_plain_state_dict_without_a_null_class_imports_with_the_flag_and_exports_back(tmp_path, small_bundle_dir):
    state = repa_state(DEPTH, HIDDEN, HEADS, PATCH, CLASSES, LATENT, qk_norm=True, seed=9)  # no null-class row
    ckpt = tmp_path / "plain.pt"
    torch.save(state, ckpt)
    folder = import_checkpoint(
        ckpt, tmp_path / "m", heads=HEADS, num_classes=CLASSES, vae=str(small_bundle_dir / "vae"), family="repa",
        path_type="cosine",
    )  # fmt: skip
    index = json.loads((folder / "model_index.json").read_text())
    assert "encoder depth not recorded" in index["source"]["dropped"] and index["null_class"] is False
    bundle = load_bundle(str(folder), "cpu", "fp32")
    assert bundle.parameterization.path_type == "cosine" and not bundle.has_null_class
    x, t, y = torch.randn(2, 4, LATENT, LATENT), torch.tensor([0.9, 0.1]), torch.tensor([0, 9])
    with torch.no_grad():
        ours = bundle.transformer(x, timestep=t, class_labels=y).sample
    assert relative(ours, repa_forward(state, HEADS, x, t, y)) < 1e-5
    exported = torch.load(export_folder(folder, tmp_path / "back.pt"), weights_only=True)
    sampling = {k: v for k, v in state.items() if not k.startswith("projectors.")}
    assert exported.keys() == sampling.keys()
    assert all(torch.allclose(exported[k], sampling[k], atol=1e-6) for k in sampling)


def test_repa_samplers_drive_only_repa_models(qk_bundle, small_bundle):
    with pytest.raises(ValueError, match=r"'repa_euler' drives repa models; the loaded model is a dit"):
        check_lanes(small_bundle, [Lane("repa_euler", 4, 0)])
    with pytest.raises(ValueError, match=r"'ddim' drives dit models; the loaded model is a repa \(flow-matching"):
        check_lanes(qk_bundle, [Lane("ddim", 4, 0)])
    with pytest.raises(ValueError, match=r"'sit_ode_euler' drives sit models"):
        check_lanes(qk_bundle, [Lane("sit_ode_euler", 4, 0)])
    assert {"repa_euler", "repa_euler_maruyama"} <= {s.name for s in samplers.for_family("repa")}
    assert "repa_euler" not in {s.name for s in samplers.for_family("sit")}


BAD = [
    ({"prediction": "x"}, {}, r"REPA's code samples velocity prediction \(v\) only; this model says prediction=x\."),
    ({"path_type": "edm"}, {}, r"REPA's paths are linear and cosine; this model says path_type=edm\."),
    ({"qk_norm": False}, {}, r"args.qk_norm says False, but the weights have q/k norms"),
    ({"encoder_depth": 5}, {}, r"encoder depth 5 is not a block of this 2-block model"),
    ({}, {"path_type": "cosine"}, r"--path-type cosine contradicts the checkpoint's args.path_type linear\."),
    ({}, {"family": "sit"}, r"REPA's q/k norms or projector heads, which a sit model has not: .* --family repa\."),
    ({}, {"family": "dit"}, r"which a dit model has not"),
]


@pytest.mark.parametrize(("args", "flags", "message"), BAD)
def test_bad_args_and_flags_are_refused_in_one_sentence(tmp_path, qk_state, small_bundle_dir, args, flags, message):
    ckpt = tmp_path / "bad.pt"
    torch.save(repa_checkpoint(qk_state, **{**REPA_ARGS, **args}), ckpt)
    with pytest.raises(ValueError, match=message) as caught:
        import_checkpoint(ckpt, tmp_path / "m", heads=HEADS, vae=str(small_bundle_dir / "vae"), **flags)
    assert "\n" not in str(caught.value) and not (tmp_path / "m").exists()


def test_flow_flags_are_refused_for_a_dit_and_the_step_grid_for_repa(tmp_path, qk_bundle, small_bundle_dir):
    from original_reference import random_state

    ckpt = tmp_path / "dit.pt"
    torch.save(random_state(DEPTH, HIDDEN, HEADS, PATCH, 4, True, ROWS, LATENT), ckpt)
    with pytest.raises(ValueError, match="--path-type, --prediction and --encoder-depth are for flow models"):
        import_checkpoint(ckpt, tmp_path / "m", heads=HEADS, num_classes=CLASSES, path_type="linear")
    with pytest.raises(ValueError, match="step grid 'linspace' is for discrete-time"):
        sample(qk_bundle, [Lane("repa_euler", 3, 0, 0, 1.0, spacing="linspace")])


def test_the_command_line_imports_repa_and_says_what_it_dropped(tmp_path, qk_state, small_bundle_dir, capsys):
    from dit_demo.cli.main import main

    ckpt = tmp_path / "0400000.pt"
    torch.save(repa_checkpoint(qk_state, **REPA_ARGS), ckpt)
    vae = str(small_bundle_dir / "vae")
    main(["import", str(ckpt), "--out", str(tmp_path / "m"), "--heads", str(HEADS), "--vae", vae])
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("dropped 6 projector tensors") and printed[1].startswith("wrote ")
    main(["generate", "3", "--model", str(tmp_path / "m"), "--sampler", "repa_euler_maruyama", "--steps", "3",
          "--out", str(tmp_path / "g.png")])  # fmt: skip
    assert (tmp_path / "g.png").is_file()


def test_a_repa_scheduler_is_fresh_on_every_build():
    sampler = samplers.get("repa_euler[heun=true]")
    first = sampler.build({"path_type": "cosine"}, 3)
    x = torch.ones(1, 4, 2, 2)
    first.step(x, first.timesteps[0], x)
    again = sampler.build({"path_type": "cosine"}, 3)
    assert again is not first and again._index == 0 and again.config.path_type == "cosine"
    assert torch.equal(again.timesteps, first.timesteps) and len(again.timesteps) == 5


def test_the_flow_flags_serve_a_plain_sit_state_dict(tmp_path, small_bundle_dir):
    from original_reference import random_state

    ckpt = tmp_path / "sit.pt"
    torch.save(random_state(DEPTH, HIDDEN, HEADS, PATCH, 4, True, ROWS, LATENT), ckpt)
    flags = {"family": "sit", "path_type": "Linear", "prediction": "velocity"}
    vae = str(small_bundle_dir / "vae")
    folder = import_checkpoint(ckpt, tmp_path / "m", heads=HEADS, num_classes=CLASSES, vae=vae, **flags)
    transport = json.loads((folder / "model_index.json").read_text())["transport"]
    assert (transport["path_type"], transport["prediction"]) == ("Linear", "velocity")
    with pytest.raises(ValueError, match="--encoder-depth names the block REPA's projectors read"):
        import_checkpoint(ckpt, tmp_path / "n", heads=HEADS, family="sit", encoder_depth=4)
