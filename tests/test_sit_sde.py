"""SiT's SDE samplers and its other transports (GVP, VP paths; noise and score prediction), each checked end to end
against SiT's ``transport`` sampling (``sample_sde``, ``sample_ode``) as written out here, on the same noise."""

from __future__ import annotations

import math

import pytest
import torch
from sit_helpers import CLASSES, LATENT, import_sit, tiny_state
from test_sit import sit_forward, sit_forward_with_cfg

import samplers
from dit_demo.runtime.engine import sample
from dit_demo.runtime.loader import load_bundle
from dit_demo.runtime.request import Lane

# ---- SiT's transport, restated from transport/path.py, transport.py and integrators.py (float32, as SiT runs) ----


def path_coefficients(path_type, t):
    """(alpha, d_alpha, sigma, d_sigma, d_alpha / alpha, compute_drift's variance) at t, a (B, 1, 1, 1) tensor."""
    if path_type == "Linear":  # ICPlan
        alpha, d_alpha, sigma, d_sigma, ratio = t, 1, 1 - t, -1, 1 / t
    elif path_type == "GVP":  # GVPCPlan
        alpha, d_alpha = torch.sin(t * math.pi / 2), math.pi / 2 * torch.cos(t * math.pi / 2)
        sigma, d_sigma = torch.cos(t * math.pi / 2), -math.pi / 2 * torch.sin(t * math.pi / 2)
        ratio = math.pi / (2 * torch.tan(t * math.pi / 2))
    else:  # VPCPlan, sigma_min 0.1, sigma_max 20
        log_mean = -0.25 * (1 - t) ** 2 * 19.9 - 0.5 * (1 - t) * 0.1
        ratio = 0.5 * (1 - t) * 19.9 + 0.05
        alpha, d_alpha = torch.exp(log_mean), torch.exp(log_mean) * ratio
        sigma = torch.sqrt(1 - torch.exp(2 * log_mean))
        d_sigma = torch.exp(2 * log_mean) * (2 * ratio) / (-2 * sigma)
        return alpha, d_alpha, sigma, d_sigma, ratio, (0.1 + (1 - t) * 19.9) / 2
    return alpha, d_alpha, sigma, d_sigma, ratio, ratio * sigma**2 - sigma * d_sigma


def score(path_type, prediction, out, x, t):
    """SiT's get_score: the model's score, -noise / sigma, or from the velocity (get_score_from_velocity)."""
    alpha, d_alpha, sigma, d_sigma, _, _ = path_coefficients(path_type, t)
    if prediction == "score":
        return out
    if prediction == "noise":
        return out / -sigma
    reverse = alpha / d_alpha
    return (reverse * out - x) / (sigma**2 - reverse * d_sigma * sigma)


def drift(path_type, prediction, out, x, t):
    """SiT's get_drift: a velocity as it is, else -drift_mean + drift_var * score."""
    if prediction == "velocity":
        return out
    _, _, _, _, ratio, var = path_coefficients(path_type, t)
    mean = 0.5 * (0.1 + (1 - t) * 19.9) * x if path_type == "VP" else ratio * x
    return mean + var * score(path_type, prediction, out, x, t)


def diffusion(path_type, form, norm, t):
    """compute_diffusion; SiT returns the float ``norm`` for "constant", which its th.sqrt then refuses."""
    sigma, var = path_coefficients(path_type, t)[2], path_coefficients(path_type, t)[5]
    forms = {"constant": torch.full_like(t, norm), "SBDM": norm * var, "sigma": norm * sigma}
    return forms[form]


def interval(path_type, prediction, sde, form="sigma", last_step_size=0.0):
    """create_transport's sample_eps default and check_interval(eval=True)."""
    eps = 1e-3 if path_type == "VP" or prediction != "velocity" else 0
    if path_type == "VP":
        return 0, 1 - eps if (not sde or last_step_size == 0) else 1 - last_step_size
    if prediction != "velocity" or sde:
        t0 = eps if (form == "SBDM" and sde) or prediction != "velocity" else 0
        return t0, 1 - eps if (not sde or last_step_size == 0) else 1 - last_step_size
    return 0, 1


def guided_model(state, class_id, cfg_scale, guided):
    """One image's model output at (x, t) through SiT's forward or forward_with_cfg (its first half)."""

    def model(x, t):
        ts = torch.ones(1) * t
        if cfg_scale == 1.0:
            return sit_forward(state, x, ts, torch.tensor([class_id]))
        y = torch.tensor([class_id, CLASSES])
        return sit_forward_with_cfg(state, torch.cat([x, x]), torch.cat([ts, ts]), y, cfg_scale, guided)[:1]

    return model


def sit_sample_sde(state, transport, method, form, last_step, steps, class_id, seed, cfg=1.0, guided=4, norm=1.0):
    """sample_sde with num_steps = steps + 1. SiT draws th.randn(x.size()) at each step's start; with guidance
    its batch also holds the null copy, whose increments never reach the image (forward_with_cfg reads the first
    half), so the image's own increments are drawn here, from its seeded generator after its initial noise."""
    path_type, prediction = transport
    size = 0.04 if last_step else 0.0
    t0, t1 = interval(path_type, prediction, True, form, size)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn((1, 4, LATENT, LATENT), generator=g)
    model = guided_model(state, class_id, cfg, guided)

    def sde_drift(x, t):
        t4 = t.view(1, 1, 1, 1)
        out = model(x, t)
        return drift(path_type, prediction, out, x, t4) + diffusion(path_type, form, norm, t4) * score(
            path_type, prediction, out, x, t4
        )

    grid = torch.linspace(t0, t1, steps + 1)
    dt = grid[1] - grid[0]
    with torch.no_grad():
        for t in grid[:-1]:
            dw = torch.randn(x.size(), generator=g) * torch.sqrt(dt)
            noise_scale = torch.sqrt(2 * diffusion(path_type, form, norm, t.view(1, 1, 1, 1)))
            if method == "Euler":
                x = x + sde_drift(x, t) * dt + noise_scale * dw
            else:
                x_hat = x + noise_scale * dw
                k1 = sde_drift(x_hat, t)
                k2 = sde_drift(x_hat + dt * k1, t + dt)
                x = x_hat + 0.5 * dt * (k1 + k2)
        end = torch.tensor(t1, dtype=torch.float32)
        if last_step == "Mean":
            x = x + sde_drift(x, end) * size
        elif last_step == "Euler":  # the probability-flow drift alone, one step of the last size
            x = x + drift(path_type, prediction, model(x, end), x, end.view(1, 1, 1, 1)) * size
        elif last_step == "Tweedie":  # x / alpha + sigma^2 / alpha * score, at t1
            alpha, _, sigma, _, _, _ = path_coefficients(path_type, end.view(1, 1, 1, 1))
            x = x / alpha + sigma**2 / alpha * score(path_type, prediction, model(x, end), x, end.view(1, 1, 1, 1))
    return x[0]


def sit_sample_ode(state, transport, solver, steps, class_id, seed, cfg=1.0, guided=4):
    """sample_ode with torchdiffeq's fixed grid on linspace(t0, t1, steps + 1) and the transport's drift."""
    path_type, prediction = transport
    t0, t1 = interval(path_type, prediction, False)
    x = torch.randn((1, 4, LATENT, LATENT), generator=torch.Generator().manual_seed(seed))
    model = guided_model(state, class_id, cfg, guided)

    def f(t, x):
        return drift(path_type, prediction, model(x, t), x, (torch.ones(1) * t).view(1, 1, 1, 1))

    grid = torch.linspace(t0, t1, steps + 1)
    with torch.no_grad():
        for a, b in zip(grid[:-1], grid[1:]):
            k1 = f(a, x)
            if solver == "euler":
                x = x + (b - a) * k1
            else:
                x = x + (b - a) * (k1 * 0.5 + f(a + (b - a), x + (b - a) * k1) * 0.5)
    return x[0]


def relative_error(ours, theirs):
    return ((ours - theirs).abs().max() / theirs.abs().max()).item()


# ---- the imported models ----

TRANSPORTS = [(p, q) for p in ("Linear", "GVP", "VP") for q in ("velocity", "noise", "score")]


@pytest.fixture(scope="module")
def sit_bundles(tmp_path_factory, sit_state, small_bundle_dir):
    """A bundle per transport, imported lazily from SiT's train.py form with args.path_type, args.prediction."""
    made = {}

    def bundle(transport):
        if transport not in made:
            tmp = tmp_path_factory.mktemp("-".join(transport))
            folder = import_sit(sit_state, tmp, small_bundle_dir, path_type=transport[0], prediction=transport[1])
            made[transport] = load_bundle(str(folder), "cpu", "fp32")
        return made[transport]

    return bundle


@pytest.fixture(scope="module")
def sit_state():
    return tiny_state(5)


SDE_CASES = [  # (sampler, transport, diffusion, last step, cfg, guided channels)
    ("sit_sde_euler", ("Linear", "velocity"), "sigma", "Mean", 1.0, 4),
    ("sit_sde_euler", ("Linear", "velocity"), "sigma", "Mean", 4.0, 3),
    ("sit_sde_euler", ("Linear", "velocity"), "constant", None, 4.0, 4),
    ("sit_sde_euler", ("Linear", "velocity"), "sigma", None, 1.0, 4),
    ("sit_sde_heun", ("Linear", "velocity"), "sigma", "Mean", 4.0, 3),
    ("sit_sde_heun", ("Linear", "velocity"), "constant", "Mean", 1.0, 4),
    ("sit_sde_heun", ("Linear", "velocity"), "sigma", "Mean", 4.0, 4),
    ("sit_sde_euler", ("GVP", "velocity"), "sigma", "Mean", 4.0, 3),
    ("sit_sde_heun", ("VP", "velocity"), "constant", "Mean", 1.0, 4),
    ("sit_sde_euler", ("Linear", "noise"), "sigma", "Mean", 1.0, 4),
    ("sit_sde_heun", ("GVP", "score"), "sigma", "Mean", 4.0, 4),
    ("sit_sde_euler", ("VP", "noise"), "constant", None, 4.0, 3),
    ("sit_sde_euler", ("Linear", "velocity"), "sigma", "Tweedie", 4.0, 3),
    ("sit_sde_heun", ("GVP", "velocity"), "constant", "Euler", 1.0, 4),
]


@pytest.mark.parametrize(("name", "transport", "form", "last_step", "cfg", "guided"), SDE_CASES)
def test_sit_sde_samplers_equal_sits_sample_sde_to_1e_4(
    sit_state, sit_bundles, name, transport, form, last_step, cfg, guided
):
    steps = 5  # SiT's num_steps = 6 grid points
    options = f"diffusion={form},last_step={last_step or 'none'}"
    result = sample(sit_bundles(transport), [Lane(f"{name}[{options}]", steps, 3, 7, cfg, cfg_channels=guided)])[0]
    method = "Euler" if name == "sit_sde_euler" else "Heun"
    theirs = sit_sample_sde(sit_state, transport, method, form, last_step, steps, 3, 7, cfg, guided)
    assert torch.isfinite(theirs).all()
    assert relative_error(result.latents, theirs) < 1e-4
    # the count documented in samplers/flow_sde.py: 1 or 2 a step, plus 1 for a last step
    per_step = 1 if method == "Euler" else 2
    assert result.nfe == len(result.timesteps) == per_step * steps + (last_step is not None)


def test_the_sde_draws_its_noise_from_the_lanes_seed(sit_bundles):
    bundle = sit_bundles(("Linear", "velocity"))
    lanes = [Lane("sit_sde_euler", 4, 3, seed, 1.0) for seed in (1, 1, 2)]
    first, again, other = (r.latents for r in sample(bundle, lanes))
    assert torch.equal(first, again) and not torch.allclose(first, other)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_every_sit_transport_samples_as_sits_sample_ode_to_1e_4(sit_state, sit_bundles, transport):
    bundle = sit_bundles(transport)
    p = bundle.parameterization
    assert (p.path_type, p.prediction_type, p.family) == (*transport, "sit")
    solver, name = ("heun2", "sit_ode_heun") if transport[1] == "score" else ("euler", "sit_ode_euler")
    cfg, guided = (4.0, 3) if transport[0] == "GVP" else (1.0, 4)
    result = sample(bundle, [Lane(name, 4, 2, 9, cfg, cfg_channels=guided)])[0]
    theirs = sit_sample_ode(sit_state, transport, solver, 4, 2, 9, cfg, guided)
    assert relative_error(result.latents, theirs) < 1e-4
    t0, t1 = interval(*transport, False)
    assert result.timesteps[0] == pytest.approx(t0) and bundle.scheduler_config["t1"] == pytest.approx(t1)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_each_transport_reads_the_data_and_noise_level_off_its_path(sit_bundles, transport):
    p = sit_bundles(transport).parameterization
    t = 0.3
    alpha, d_alpha, sigma, d_sigma, _, _ = (
        float(v) for v in path_coefficients(transport[0], torch.tensor(t, dtype=torch.float64))
    )
    assert p.sigma_at(t) == pytest.approx(sigma / alpha) and p.model_time(t) == t
    data, noise = torch.randn(2, 1, 4, LATENT, LATENT, dtype=torch.float64).unbind()
    x_t = alpha * data + sigma * noise
    outputs = {"velocity": d_alpha * data + d_sigma * noise, "noise": noise, "score": -noise / sigma}
    output = torch.cat([outputs[transport[1]], torch.randn_like(data)], dim=1)  # SiT's unused sigma channels follow
    torch.testing.assert_close(p.x0_from_output(x_t, t, output), data)


@pytest.mark.parametrize(
    ("variant", "message"),
    [
        ("sit_sde_euler[diffusion=cosine]", "Unknown SDE diffusion form 'cosine'; SiT's are sigma, constant"),
        ("sit_sde_heun[last_step=Median]", "Unknown SDE last step 'Median'; SiT's are Mean, Tweedie, Euler, None"),
        ("sit_sde_euler[last_step_size=1.5]", "last_step_size is a time between 0 and 1"),
        ("sit_sde_euler[diffusion_norm=-1]", "diffusion_norm scales the SDE's noise: a number 0 or above"),
        ("sit_sde_euler[path_type=VP]", "sit_sde_euler has no option 'path_type'"),
    ],
)
def test_a_bad_sde_option_is_refused_in_one_sentence(variant, message):
    with pytest.raises(ValueError, match=message) as refused:
        samplers.get(variant)
    assert str(refused.value).count(". ") == 0


def test_sde_options_change_the_sample_and_the_count(sit_bundles):
    bundle = sit_bundles(("Linear", "velocity"))
    names = ["sit_sde_heun", "sit_sde_heun[last_step=Tweedie]", "sit_sde_heun[diffusion=linear,diffusion_norm=0.5]"]
    results = sample(bundle, [Lane(name, 3, 1, 4, 1.0) for name in names])
    assert [r.nfe for r in results] == [7, 7, 7]
    assert not torch.allclose(results[0].latents, results[1].latents)
    assert not torch.allclose(results[0].latents, results[2].latents)
    assert samplers.get("sit_sde_euler").nfe(10, bundle.scheduler_config) == 11
    assert samplers.get("sit_sde_euler[last_step=none]").nfe(10, bundle.scheduler_config) == 10


def test_sbdm_diffusion_where_it_is_finite_and_refused_where_sit_starts_at_its_pole(sit_state, sit_bundles):
    from dataclasses import replace

    # a noise model's SDE starts at t = sample_eps, where SBDM's w(t) is finite; the variant grammar's check runs
    # on SiT's default transport (Linear velocity), where it is not, so the sampler is registered for the test
    sbdm = replace(samplers.get("sit_sde_euler"), name="sit_sde_euler_sbdm", overrides={"diffusion": "SBDM"})
    samplers.register(sbdm)
    try:
        result = sample(sit_bundles(("Linear", "noise")), [Lane("sit_sde_euler_sbdm", 4, 5, 3, 1.0)])[0]
    finally:
        samplers.unregister("sit_sde_euler_sbdm")
    theirs = sit_sample_sde(sit_state, ("Linear", "noise"), "Euler", "SBDM", "Mean", 4, 5, 3)
    assert relative_error(result.latents, theirs) < 1e-4
    with pytest.raises(ValueError, match="diffusion=SBDM is infinite at t = 0.0, where SiT starts the SDE of a Linear"):
        samplers.get("sit_sde_euler[diffusion=SBDM]")
