"""diffusers' flow-matching Euler and Heun driving SiT and REPA models, checked against the schedulers' formulas
written out here, and the per-family samplers tables the README shows."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from original_reference import forward
from sit_helpers import CLASSES, HEADS, LATENT, import_sit, tiny_state

import samplers
from dit_demo.lab.bench import report
from dit_demo.runtime.engine import sample
from dit_demo.runtime.loader import load_bundle
from dit_demo.runtime.request import Lane, check_lanes
from samplers.table import family_tables
from samplers.variants import ALIASES, options_of

SIT_CONFIG = {"path_type": "Linear", "prediction": "velocity", "family": "sit"}  # what a SiT bundle hands a sampler


def shifted(sigma: torch.Tensor, shift: float) -> torch.Tensor:
    """SD3's time shift, as diffusers documents it: shift * sigma / (1 + (shift - 1) * sigma)."""
    return shift * sigma / (1 + (shift - 1) * sigma)


def flow_match_sigmas(steps: int, shift: float, train_steps: int = 1000) -> torch.Tensor:
    """FlowMatch{Euler,Heun}DiscreteScheduler's grid: sigma_max and sigma_min are the shifted ends of the training
    sigmas 1 .. 1 / T; ``steps`` points evenly between them, shifted (again), then a final 0."""
    sigma_max, sigma_min = (
        shifted(torch.tensor(1.0, dtype=torch.float64), shift),
        shifted(torch.tensor(1 / train_steps, dtype=torch.float64), shift),
    )
    grid = shifted(torch.linspace(float(sigma_max), float(sigma_min), steps, dtype=torch.float64), shift)
    return torch.cat([grid, torch.zeros(1, dtype=torch.float64)]).float()


def flow_match_sample(noise_minus_data, x, solver: str, sigmas: torch.Tensor) -> torch.Tensor:
    """diffusers' update from sigma to sigma_next, d = the model's noise - x_data: Euler x += (sigma_next - sigma) d;
    Heun the same as a predictor, then the average of d there and at its result, except into sigma = 0 (Euler)."""
    for sigma, sigma_next in zip(sigmas[:-1], sigmas[1:]):
        d = noise_minus_data(x, sigma)
        if solver == "euler" or sigma_next == 0:
            x = x + (sigma_next - sigma) * d
        else:
            d_next = noise_minus_data(x + (sigma_next - sigma) * d, sigma_next)
            x = x + (sigma_next - sigma) * (d + d_next) / 2
    return x


def guided_velocity(state, x, t, class_id, cfg_scale, guided):
    """The original network's first C channels at time t (SiT's forward); with CFG, ``guided`` channels mixed."""
    y = torch.tensor([class_id, CLASSES])[: 1 + (cfg_scale != 1.0)]
    out = forward(state, HEADS, x.expand(len(y), -1, -1, -1), torch.full((len(y),), float(t)), y)[:, : x.shape[1]]
    if cfg_scale == 1.0:
        return out
    cond, null = out[:1], out[1:]
    mixed = cond.clone()
    mixed[:, :guided] = null[:, :guided] + cfg_scale * (cond[:, :guided] - null[:, :guided])
    return mixed


def reference(state, family, solver, steps, shift, class_id, seed, cfg_scale=1.0, guided=4):
    """The schedulers above on the family's model: SiT reads t = 1 - sigma and its velocity x_data - noise is
    d's negative; REPA reads t = sigma and its velocity noise - x_data is d itself."""
    z = torch.randn((1, 4, LATENT, LATENT), generator=torch.Generator().manual_seed(seed))

    def noise_minus_data(x, sigma):
        if family == "sit":
            return -guided_velocity(state, x, 1 - sigma, class_id, cfg_scale, guided)
        return guided_velocity(state, x, sigma, class_id, cfg_scale, guided)

    with torch.no_grad():
        return flow_match_sample(noise_minus_data, z, solver, flow_match_sigmas(steps, shift))[0]


@pytest.fixture(scope="module")
def sit_state():
    return tiny_state(7)


@pytest.fixture(scope="module")
def sit_folder(tmp_path_factory, sit_state, small_bundle_dir):
    return import_sit(sit_state, tmp_path_factory.mktemp("flow_match"), small_bundle_dir)


@pytest.fixture(scope="module")
def sit_bundle(sit_folder):
    return load_bundle(str(sit_folder), "cpu", "fp32")


@pytest.fixture(scope="module")
def repa_bundle(sit_folder, tmp_path_factory):
    """The same network as a REPA model on its linear path: t = 1 noise, velocity noise - x_data."""
    folder = tmp_path_factory.mktemp("repa") / "repa"
    shutil.copytree(sit_folder, folder)
    index = json.loads((folder / "model_index.json").read_text())
    (folder / "model_index.json").write_text(json.dumps({**index, "family": "repa"}))
    (folder / "scheduler" / "scheduler_config.json").write_text(json.dumps({"path_type": "linear", "prediction": "v"}))
    return load_bundle(str(folder), "cpu", "fp32")


@pytest.mark.parametrize(
    ("name", "solver", "shift", "cfg", "guided"),
    [
        ("flow_match_euler", "euler", 1.0, 1.0, 4),
        ("flow_match_euler[shift=3]", "euler", 3.0, 4.0, 3),
        ("flow_match_heun", "heun", 1.0, 1.0, 4),
        ("flow_match_heun[shift=2.5]", "heun", 2.5, 2.5, 4),
    ],
)
def test_flow_match_on_a_sit_equals_diffusers_formulas_to_1e_4(sit_state, sit_bundle, name, solver, shift, cfg, guided):
    steps = 5
    result = sample(sit_bundle, [Lane(name, steps, 3, seed=11, cfg_scale=cfg, cfg_channels=guided)])[0]
    theirs = reference(sit_state, "sit", solver, steps, shift, 3, 11, cfg, guided)
    assert ((result.latents - theirs).abs().max() / theirs.abs().max()).item() < 1e-4
    sigmas = flow_match_sigmas(steps, shift)
    visited = sigmas[:-1] if solver == "euler" else torch.cat([sigmas[:1], sigmas[1:-1].repeat_interleave(2)])
    assert result.nfe == len(visited) == (steps if solver == "euler" else 2 * steps - 1)
    torch.testing.assert_close(torch.tensor(result.timesteps), 1 - visited, atol=1e-6, rtol=0)  # SiT's time


@pytest.mark.parametrize(("name", "solver"), [("flow_match_euler", "euler"), ("flow_match_heun[shift=3]", "heun")])
def test_flow_match_on_a_repa_reads_repas_time_and_sign(sit_state, repa_bundle, name, solver):
    assert repa_bundle.parameterization.family == "repa"
    shift = 3.0 if "shift" in name else 1.0
    result = sample(repa_bundle, [Lane(name, 4, 2, seed=5, cfg_scale=1.0)])[0]
    theirs = reference(sit_state, "repa", solver, 4, shift, 2, 5)
    assert ((result.latents - theirs).abs().max() / theirs.abs().max()).item() < 1e-4
    assert result.timesteps[0] == 1.0 and result.timesteps[-1] < 0.01  # REPA's t = 1 is noise


def test_with_shift_1_and_n_equal_to_the_training_steps_euler_is_sit_ode_eulers_grid():
    """diffusers' n-step grid ends at sigma = 1 / T before its last step to 0, SiT's at 1 / n: the two are one grid
    when n = T, and there the updates agree to float rounding (a velocity field stands in for the model)."""
    for train_steps in (8, 1000):
        config = {**SIT_CONFIG, "num_train_timesteps": train_steps}
        ours, sits = (
            samplers.get("flow_match_euler").build(config, train_steps),
            samplers.get("sit_ode_euler").build(config, train_steps),
        )
        torch.testing.assert_close(ours.timesteps, sits.timesteps, atol=2e-6, rtol=0)
        x_ours = x_sits = torch.randn(2, 4, 3, 3, generator=torch.Generator().manual_seed(0))
        for t in ours.timesteps:
            x_ours = ours.step(torch.sin(3 * x_ours) - t, t, x_ours).prev_sample
        for t in sits.timesteps:
            x_sits = sits.step(torch.sin(3 * x_sits) - t, t, x_sits).prev_sample
        torch.testing.assert_close(x_ours, x_sits, atol=1e-4, rtol=1e-4)
    ours = samplers.get("flow_match_euler").build(SIT_CONFIG, 10)  # n < T: diffusers stops at 1 - 1 / T
    assert float(ours.timesteps[-1]) == pytest.approx(0.999) and float(ours.timesteps[1]) == pytest.approx(
        0.111, abs=1e-6
    )


@pytest.mark.parametrize("shift", [0.5, 3.0, 7.0])
def test_shift_moves_the_grid_as_diffusers_documents(shift):
    plain = 1 - samplers.get("flow_match_euler").build(SIT_CONFIG, 12).timesteps
    sigmas = 1 - samplers.get(f"flow_match_euler[shift={shift}]").build(SIT_CONFIG, 12).timesteps
    torch.testing.assert_close(sigmas, flow_match_sigmas(12, shift)[:-1], atol=1e-6, rtol=0)
    assert sigmas[0] == 1 and (sigmas[1:-1] > plain[1:-1]).all() == (shift > 1)  # > 1: more steps at high noise
    heun = 1 - samplers.get(f"flow_match_heun[shift={shift}]").build(SIT_CONFIG, 12).timesteps
    torch.testing.assert_close(heun[::2], flow_match_sigmas(12, shift)[:-1], atol=1e-6, rtol=0)


def test_the_forced_ddpm_keys_change_nothing_and_a_discrete_grid_is_refused(sit_bundle):
    from diffusers import FlowMatchEulerDiscreteScheduler

    built = samplers.get("flow_match_euler").build(sit_bundle.scheduler_config, 6)  # with Sampler.build's DDPM keys
    plain = FlowMatchEulerDiscreteScheduler()
    plain.set_timesteps(6)
    settings = {key: value for key, value in built.inner.config.items() if not key.startswith("_")}
    assert settings == {key: value for key, value in plain.config.items() if not key.startswith("_")}
    assert torch.equal(built.inner.sigmas, plain.sigmas)
    for name in ("flow_match_euler", "flow_match_heun"):
        with pytest.raises(ValueError, match="step grid 'linspace' is for discrete-time"):
            sample(sit_bundle, [Lane(name, 3, 0, 0, 1.0, spacing="linspace")])
        with pytest.raises(ValueError, match="refused these options .* the step grid 'leading' is for discrete-time"):
            samplers.get(f"{name}[spacing=leading]")


def test_the_samplers_are_refused_for_a_dit_and_named_for_flow_families(small_bundle):
    assert "family" not in small_bundle.scheduler_config  # a DiT's config stays as it was loaded
    for name in ("flow_match_euler", "flow_match_heun"):
        with pytest.raises(ValueError, match=rf"'{name}' drives sit and repa models; the loaded model is a dit"):
            check_lanes(small_bundle, [Lane(name, 4, 0)])
        assert all(name in [s.name for s in samplers.for_family(f)] for f in ("sit", "repa"))


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"path_type": "GVP", "family": "sit"}, "trained on the GVP path: choose one of its family's own samplers"),
        ({"path_type": "cosine", "family": "repa"}, "trained on the cosine path"),
        ({"path_type": "Linear", "prediction": "noise", "family": "sit"}, "this model predicts the noise"),
        ({"family": "dit"}, "know the time of sit and repa models; the model's family is 'dit'"),
    ],
)
def test_what_the_linear_velocity_adapter_cannot_drive_is_refused_at_build(config, message):
    for name in ("flow_match_euler", "flow_match_heun"):
        with pytest.raises(ValueError, match=message):
            samplers.get(name).build(config, 4)


@pytest.mark.parametrize(
    ("variant", "message"),
    [
        ("flow_match_euler[shift=0]", "shift must be a positive number"),
        ("flow_match_heun[shift=-2]", "shift must be a positive number"),
        ("flow_match_euler[shift_terminal=1]", "shift_terminal is the last sigma before 0, between 0 and 1"),
        ("flow_match_euler[family=repa]", "has no option 'family'"),
        ("flow_match_heun[path_type=linear]", "has no option 'path_type'"),
        ("flow_match_heun[karras=true]", "has no option 'use_karras_sigmas'"),
    ],
)
def test_bad_options_are_refused_in_one_sentence(variant, message):
    with pytest.raises(ValueError, match=message):
        samplers.get(variant)


def test_euler_options_reach_diffusers():
    sampler = samplers.get("flow_match_euler[karras=true,shift_terminal=0.1]")
    scheduler = sampler.build(SIT_CONFIG, 8)
    assert scheduler.inner.config.use_karras_sigmas and scheduler.inner.config.shift_terminal == 0.1
    assert not torch.allclose(scheduler.timesteps, samplers.get("flow_match_euler").build(SIT_CONFIG, 8).timesteps)


def test_the_per_family_tables_list_each_familys_samplers_in_registry_order():
    tables = family_tables(samplers.all_samplers())
    for family in ("dit", "sit", "repa"):
        rows = tables.split(f"**{samplers.base.family_label(family)}** models:")[1].split("\n\n**")[0]
        names = [line.split("`")[1] for line in rows.splitlines() if line.startswith("| `")]
        assert names == [s.name for s in samplers.for_family(family)]
    assert "| `flow_match_euler` | Flow-match Euler (diffusers) | 1 | no | 50 |" in tables
    for sampler in samplers.all_samplers():  # every option a table names is one the variant grammar takes
        assert all(ALIASES.get(option, option) in options_of(sampler) for option in sampler.noted_options)


def test_the_readmes_per_family_tables_are_the_registrys():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    blocks = report.readme_blocks(readme)
    assert report.SAMPLER_FAMILIES in blocks, "README lacks <!-- bench:samplers-by-family --> (Flow models section)"
    assert blocks[report.SAMPLER_FAMILIES].strip() == report.block(report.SAMPLER_FAMILIES).strip(), (
        "README out of date: python -m dit_demo bench --readme README.md"
    )
