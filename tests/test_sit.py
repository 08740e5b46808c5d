"""SiT checkpoints (willisma/SiT) imported and sampled: its model, its Linear-path velocity parameterization
and its fixed-grid ODE samplers, each checked against the original code's formulas written out here."""

from __future__ import annotations

import argparse
import json
import math

import pytest
import torch
from original_reference import forward, train_checkpoint
from sit_helpers import CLASSES, HEADS, LATENT, SIT_ARGS, import_sit, tiny_state

import samplers
from dit_demo.lab.interchange.dit_import import export_folder, import_checkpoint
from dit_demo.lab.interchange.original_dit import infer_arch
from dit_demo.lab.interchange.sit_import import checkpoint_family
from dit_demo.runtime.engine import sample
from dit_demo.runtime.loader import load_bundle
from dit_demo.runtime.parameterization import SiTTransport
from dit_demo.runtime.request import Lane, check_lanes


def sit_forward(state, x, t, y):
    """SiT's ``forward``: DiT's network on t in [0, 1] as it is; with learn_sigma it keeps the first C channels."""
    return forward(state, HEADS, x, t, y)[:, : x.shape[1]]


def sit_forward_with_cfg(state, x, t, y, cfg_scale, guided):
    """SiT's ``forward_with_cfg``: the first half of the batch run as conditional and null rows, ``guided``
    channels mixed (SiT's code: 3; "the standard approach": all of them), the rest left conditional."""
    half = x[: len(x) // 2]
    out = sit_forward(state, torch.cat([half, half]), t, y)
    cond, null = out.chunk(2)
    mixed = cond.clone()
    mixed[:, :guided] = null[:, :guided] + cfg_scale * (cond[:, :guided] - null[:, :guided])
    return torch.cat([mixed, mixed])


def sit_sample_ode(state, solver, num_steps, class_id, seed, cfg_scale=1.0, guided=4):
    """SiT's ``sample.py`` with ``sample_ode``: torchdiffeq's fixed grid on linspace(0, 1, num_steps), the velocity
    as the drift; "euler" y += dt f(t0, y); "heun2" k1 = f(t0, y), k2 = f(t0 + dt, y + dt k1), y += dt (k1 + k2) / 2."""
    z = torch.randn((1, 4, LATENT, LATENT), generator=torch.Generator().manual_seed(seed))
    y = torch.tensor([class_id])
    if cfg_scale != 1.0:
        z, y = torch.cat([z, z]), torch.cat([y, torch.tensor([CLASSES])])

    def drift(t, x):
        ts = torch.ones(x.shape[0]) * t
        if cfg_scale == 1.0:
            return sit_forward(state, x, ts, y)
        return sit_forward_with_cfg(state, x, ts, y, cfg_scale, guided)

    grid = torch.linspace(0, 1, num_steps)
    x = z
    with torch.no_grad():
        for t0, t1 in zip(grid[:-1], grid[1:]):
            dt = t1 - t0
            k1 = drift(t0, x)
            if solver == "euler":
                x = x + dt * k1
            else:
                k2 = drift(t0 + dt * 1.0, x + dt * k1 * 1.0)
                x = x + dt * (k1 * 0.5 + k2 * 0.5)
    return x[:1]


@pytest.fixture(scope="module")
def sit_state():
    return tiny_state(5)


@pytest.fixture(scope="module")
def sit_folder(tmp_path_factory, sit_state, small_bundle_dir):
    return import_sit(sit_state, tmp_path_factory.mktemp("sit"), small_bundle_dir)


@pytest.fixture(scope="module")
def sit_bundle(sit_folder):
    return load_bundle(str(sit_folder), "cpu", "fp32")


def test_the_import_detects_sit_and_records_its_transport(sit_folder, sit_bundle):
    index = json.loads((sit_folder / "model_index.json").read_text())
    assert index["family"] == "sit" and index["transport"]["path_type"] == "Linear"
    assert index["transport"]["prediction"] == "velocity" and "0 = noise, 1 = data" in index["transport"]["time"]
    p = sit_bundle.parameterization
    assert isinstance(p, SiTTransport) and p.family == "sit" and not p.learned_variance
    assert (p.path_type, p.prediction_type) == ("Linear", "velocity")
    assert not sit_bundle.learned_sigma and sit_bundle.transformer.config.out_channels == 8


def test_the_imported_sit_is_the_original_forward_to_1e_5(sit_state, sit_bundle):
    x, t = torch.randn(3, 4, LATENT, LATENT), torch.tensor([0.0, 0.37, 1.0])  # SiT's time, no factor of 1000
    y = torch.tensor([0, CLASSES - 1, CLASSES])
    with torch.no_grad():
        out = sit_bundle.transformer(x, timestep=t, class_labels=y).sample
    ours, theirs = sit_bundle.parameterization.prediction(out), sit_forward(sit_state, x, t, y)
    assert (ours - theirs).abs().max() / theirs.abs().max() < 1e-5


@pytest.mark.parametrize("t", [0.0, 0.25, 0.5, 0.9, 1.0])
def test_linear_velocity_answers_sits_formulas(sit_bundle, t):
    p = sit_bundle.parameterization
    assert p.model_time(t) == t
    assert p.sigma_at(t) == (math.inf if t == 0 else pytest.approx((1 - t) / t))  # noise / data coefficient
    data, noise = torch.randn(2, 4, LATENT, LATENT, dtype=torch.float64).unbind()
    x_t = t * data + (1 - t) * noise  # path.ICPlan: alpha_t = t on the data, sigma_t = 1 - t on the noise
    output = torch.cat([data - noise, torch.randn_like(data)])[None]  # velocity, then SiT's unused channels
    torch.testing.assert_close(p.x0_from_output(x_t[None], t, output), data[None])
    assert not p.final_step_takes_x0(samplers.get("sit_ode_euler"))


@pytest.mark.parametrize(
    ("name", "solver", "cfg", "guided"),
    [
        ("sit_ode_euler", "euler", 1.0, 4),
        ("sit_ode_euler", "euler", 4.0, 3),
        ("sit_ode_heun", "heun2", 1.0, 4),
        ("sit_ode_heun", "heun2", 4.0, 3),
        ("sit_ode_heun", "heun2", 2.5, 4),
    ],
)
def test_sit_ode_samplers_equal_sits_sample_ode_to_1e_4(sit_state, sit_bundle, name, solver, cfg, guided):
    steps = 6  # SiT's num_steps = 7 grid points
    lane = Lane(name, steps, 3, seed=11, cfg_scale=cfg, cfg_channels=guided)
    result = sample(sit_bundle, [lane])[0]
    theirs = sit_sample_ode(sit_state, solver, steps + 1, 3, 11, cfg, guided)[0]
    assert ((result.latents - theirs).abs().max() / theirs.abs().max()).item() < 1e-4
    per_step = samplers.get(name).nfe_per_step
    assert result.nfe == per_step * steps == len(result.timesteps)
    assert result.timesteps[0] == 0.0 and result.timesteps[-1] == pytest.approx(1.0 - (solver == "euler") / steps)


def test_samplers_drive_only_their_own_family(sit_bundle, small_bundle):
    with pytest.raises(ValueError, match=r"'ddim' drives dit models; the loaded model is a sit \(flow-matching"):
        check_lanes(sit_bundle, [Lane("ddim", 4, 0)])
    with pytest.raises(ValueError, match=r"'sit_ode_heun' drives sit models; .* a dit \(discrete noise-prediction"):
        check_lanes(small_bundle, [Lane("sit_ode_heun", 4, 0)])
    sit = [s.name for s in samplers.for_family("sit")]
    assert {"sit_ode_euler", "sit_ode_heun", "sit_sde_euler", "sit_sde_heun"} <= set(sit)
    assert not any(name.startswith("sit_") for name in (s.name for s in samplers.for_family("dit")))


def test_a_flow_scheduler_is_fresh_on_every_build(sit_bundle):
    sampler = samplers.get("sit_ode_heun")
    first = sampler.build(sit_bundle.scheduler_config, 3)
    x = torch.ones(1, 4, 2, 2)
    first.step(x, first.timesteps[0], x)
    again = sampler.build(sit_bundle.scheduler_config, 3)
    assert again is not first and again._index == 0 and torch.equal(again.timesteps, first.timesteps)


def test_unknown_transports_are_refused_in_one_sentence(tmp_path, sit_state, small_bundle_dir):
    for path_type, prediction in (("Cosine", "velocity"), ("Linear", "x0")):  # every SiT transport imports
        ckpt = tmp_path / f"{path_type}-{prediction}.pt"
        torch.save(train_checkpoint(sit_state, **{**SIT_ARGS, "path_type": path_type, "prediction": prediction}), ckpt)
        with pytest.raises(ValueError, match=rf"path_type={path_type}, prediction={prediction}, which .* cannot"):
            import_checkpoint(ckpt, tmp_path / "m", heads=HEADS, vae=str(small_bundle_dir / "vae"))
        assert not (tmp_path / "m").exists()


def test_family_from_flag_or_args_and_sit_names_read_as_dits(sit_state):
    assert checkpoint_family(None, argparse.Namespace(path_type="Linear")) == "sit"
    assert checkpoint_family(None, argparse.Namespace(model="DiT-XL/2")) == "dit"
    assert checkpoint_family("sit", None) == "sit" and checkpoint_family(None, None) == "dit"
    with pytest.raises(ValueError, match="args.model says SiT-XL/2 .depth 28, hidden 1152, patch 2., but the tensors"):
        infer_arch(sit_state, argparse.Namespace(model="SiT-XL/2", num_classes=CLASSES))
    with pytest.raises(ValueError, match="Unknown DiT configuration 'SiT-XXL/2'"):
        infer_arch(sit_state, argparse.Namespace(model="SiT-XXL/2", num_classes=CLASSES))


def test_a_plain_state_dict_imports_as_sit_with_the_flag_and_exports_back(tmp_path, sit_state, small_bundle_dir):
    ckpt = tmp_path / "plain.pt"
    torch.save(sit_state, ckpt)
    folder = import_checkpoint(
        ckpt, tmp_path / "m", heads=HEADS, num_classes=CLASSES, vae=str(small_bundle_dir / "vae"), family="sit"
    )
    assert load_bundle(str(folder), "cpu", "fp32").parameterization.family == "sit"
    exported = torch.load(export_folder(folder, tmp_path / "back.pt"), weights_only=True)
    assert exported.keys() == sit_state.keys()
    assert all(torch.allclose(exported[k], sit_state[k], atol=1e-6) for k in sit_state)


def test_the_command_line_defaults_to_the_sit_samplers_for_a_sit(sit_folder, sit_bundle, tmp_path, capsys):
    from dit_demo.cli.main import main
    from dit_demo.lab.specs.defaults import Defaults

    defaults = Defaults.for_bundle(sit_bundle)
    assert defaults.sampler == "sit_ode_euler"
    fixed_step = [s.name for s in samplers.for_family("sit") if s.name != "sit_ode_dopri5"]
    assert defaults.sampler == "sit_ode_euler" and defaults.compare_samplers == tuple(fixed_step[:3])
    main(["generate", "3", "--model", str(sit_folder), "--steps", "2", "--out", str(tmp_path / "g.png")])
    main(["compare", "--model", str(sit_folder), "--steps", "2,3", "--out", str(tmp_path / "c.png")])
    printed = capsys.readouterr().out
    assert "(1 image(s), 2 NFE)" in printed and "| SiT ODE Heun |" in printed
    assert (tmp_path / "g.png").is_file() and (tmp_path / "c.png").is_file()


def test_a_step_grid_for_discrete_samplers_is_refused_for_a_sit(sit_bundle):
    from dit_demo.runtime.engine import sample
    from dit_demo.runtime.request import Lane

    with pytest.raises(ValueError, match="step grid 'linspace' is for discrete-time"):
        sample(sit_bundle, [Lane("sit_ode_euler", 3, 0, 0, 1.0, spacing="linspace")])
