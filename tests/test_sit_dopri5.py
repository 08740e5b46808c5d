"""SiT's default sampler, adaptive dopri5, in the lock-step engine: checked against SiT's own torchdiffeq call on
the original SiT forward (restated in test_sit.py), evaluation for evaluation, and for what the engine must do with
a solver that picks its own steps (its cap, a Stop mid-run, a lane beside a fixed-grid one, progress, budget)."""

from __future__ import annotations

import math
import re
import threading

import pytest
import torch
from sit_helpers import CLASSES, LATENT, import_sit, tiny_state
from test_sit import sit_forward, sit_forward_with_cfg
from torchdiffeq import odeint

import samplers
from dit_demo.runtime.budget import Budget, CostModel
from dit_demo.runtime.engine import Cancelled, run, sample
from dit_demo.runtime.loader import load_bundle
from dit_demo.runtime.request import Lane, check_lanes


def sit_dopri5(state, class_id, seed, cfg_scale=1.0, guided=4, atol=1e-6, rtol=1e-3):
    """SiT's ``sample.py`` with ``sample_ode()``'s defaults: ``odeint`` with dopri5 on linspace(0, 1, 50), the
    velocity as the drift, the batch doubled with the null class under cfg. Returns the sample and the times the
    drift was called at (its NFE is their number)."""
    z = torch.randn((1, 4, LATENT, LATENT), generator=torch.Generator().manual_seed(seed))
    y = torch.tensor([class_id])
    if cfg_scale != 1.0:
        z, y = torch.cat([z, z]), torch.cat([y, torch.tensor([CLASSES])])
    calls = []

    def drift(t, x):
        calls.append(float(t))
        ts = torch.ones(x.shape[0]) * t
        if cfg_scale == 1.0:
            return sit_forward(state, x, ts, y)
        return sit_forward_with_cfg(state, x, ts, y, cfg_scale, guided)

    with torch.no_grad():
        x = odeint(drift, z, torch.linspace(0, 1, 50), method="dopri5", atol=[atol], rtol=[rtol])[-1]
    return x[:1], calls


def relative(ours: torch.Tensor, theirs: torch.Tensor) -> float:
    return ((ours - theirs).abs().max() / theirs.abs().max()).item()


def solver_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "dopri5"]


@pytest.fixture(scope="module")
def sit_state():
    state = tiny_state(7)
    # a stronger drift than these random weights give: dopri5 then takes several steps, not two or three
    state["final_layer.linear.weight"] = state["final_layer.linear.weight"] * 10
    return state


@pytest.fixture(scope="module")
def sit_bundle(tmp_path_factory, sit_state, small_bundle_dir):
    folder = import_sit(sit_state, tmp_path_factory.mktemp("sit_dopri5"), small_bundle_dir)
    return load_bundle(str(folder), "cpu", "fp32")


@pytest.mark.parametrize(("cfg", "guided"), [(1.0, 4), (4.0, 3), (4.0, 4)])
def test_dopri5_is_sits_torchdiffeq_call_to_1e_3_with_its_nfe(sit_state, sit_bundle, cfg, guided):
    result = sample(sit_bundle, [Lane("sit_ode_dopri5", 10, 3, seed=11, cfg_scale=cfg, cfg_channels=guided)])[0]
    theirs, calls = sit_dopri5(sit_state, 3, 11, cfg, guided)
    assert relative(result.latents, theirs[0]) < 1e-3
    assert result.nfe == len(calls) == len(result.timesteps)  # torchdiffeq's own count, rejected steps included
    # t0 and the trial point for the first step size; later step sizes come from an error estimate, a difference
    # of nearly equal stages, which the model's float rounding (imported vs restated forward) moves
    assert result.timesteps[:2] == pytest.approx(calls[:2], rel=1e-4) and result.timesteps[0] == 0.0
    assert result.timesteps[-1] >= 1.0 > result.timesteps[-7]  # the last step's stages reach t1 (or pass it)


def test_driven_by_the_same_model_it_is_torchdiffeqs_call_to_the_bit(sit_bundle):
    z = torch.randn((1, 4, LATENT, LATENT), generator=torch.Generator().manual_seed(11))
    calls = []

    def drift(t, x):  # the engine's model call on SiT's time and the velocity channels, no guidance
        calls.append(float(t))
        return sit_bundle.transformer(x, timestep=torch.ones(1) * t, class_labels=torch.tensor([3])).sample[:, :4]

    with torch.inference_mode():
        theirs = odeint(drift, z, torch.linspace(0, 1, 50), method="dopri5", atol=[1e-6], rtol=[1e-3])[-1]
    result = sample(sit_bundle, [Lane("sit_ode_dopri5", 10, 3, seed=11, cfg_scale=1.0)])[0]
    assert result.timesteps == calls and torch.equal(result.latents, theirs[0])


def test_options_reach_the_solver_and_change_result_and_nfe(sit_state, sit_bundle):
    default = sample(sit_bundle, [Lane("sit_ode_dopri5", 10, 3, seed=11, cfg_scale=1.0)])[0]
    tight = sample(sit_bundle, [Lane("sit_ode_dopri5[rtol=1e-4,atol=1e-7]", 10, 3, seed=11, cfg_scale=1.0)])[0]
    theirs, calls = sit_dopri5(sit_state, 3, 11, atol=1e-7, rtol=1e-4)
    assert relative(tight.latents, theirs[0]) < 1e-3 and tight.nfe == len(calls)
    assert tight.nfe > default.nfe and not torch.equal(tight.latents, default.latents)
    assert tight.lane.sampler.name == "sit_ode_dopri5[rtol=0.0001,atol=1e-07]"


def test_the_steps_of_a_lane_do_not_move_the_solver(sit_bundle):
    few, many = sample(sit_bundle, [Lane("sit_ode_dopri5", 2, 1, seed=4), Lane("sit_ode_dopri5", 200, 1, seed=4)])
    assert few.nfe == many.nfe and torch.equal(few.latents, many.latents)


def test_the_cap_on_evaluations_refuses_in_one_sentence(sit_bundle):
    capped = r"^SiT's dopri5 stopped at t = \S+ after its cap of 50 model evaluations"
    with pytest.raises(ValueError, match=capped) as e:
        sample(sit_bundle, [Lane("sit_ode_dopri5[rtol=1e-8,atol=1e-10,max_nfe=50]", 10, 0, seed=1)])
    assert not re.search(r"\.\s+[A-Z]", str(e.value)) and str(e.value).endswith("].")
    assert not solver_threads()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ("rtol=0", "dopri5's rtol must be a positive number"),
        ("atol=-1e-6", "dopri5's atol must be a positive number"),
        ("max_nfe=10", "max_nfe caps its model evaluations: a whole number from 50 to 100000"),
        ("spacing=linspace", "step grid 'linspace' is for discrete-time"),
    ],
)
def test_bad_options_are_refused(options, message):
    with pytest.raises(ValueError, match=message):
        samplers.get(f"sit_ode_dopri5[{options}]")


def test_a_stop_mid_run_leaves_no_solver_thread(sit_bundle):
    cancel = threading.Event()

    def stop_after_three(progress):
        if progress.round == 3:
            cancel.set()

    lanes = check_lanes(sit_bundle, [Lane("sit_ode_dopri5", 10, 2, seed=3), Lane("sit_ode_dopri5", 10, 4, seed=5)])
    with pytest.raises(Cancelled, match=r"Stopped after 3 of about \d+ rounds"):
        run(sit_bundle, lanes, stop_after_three, cancel)
    assert not solver_threads()

    def failing_preview(progress):  # an error out of a callback ends the solver too
        raise RuntimeError("preview failed")

    with pytest.raises(RuntimeError, match="preview failed"):
        run(sit_bundle, lanes, failing_preview)
    assert not solver_threads()


def test_beside_a_fixed_grid_lane_each_keeps_its_own_numbers(sit_bundle):
    adaptive, fixed = Lane("sit_ode_dopri5", 10, 3, seed=8, cfg_scale=2.0), Lane("sit_ode_heun", 4, 6, seed=9)
    alone = [sample(sit_bundle, [lane])[0] for lane in (adaptive, fixed)]
    reports = []
    together = sample(sit_bundle, [adaptive, fixed], callback=reports.append)
    # a batched forward moves a row at float rounding, and dopri5's step sizes with it (its error estimate is a
    # difference of nearly equal stages): the same evaluations, at times equal to that rounding
    for one, both in zip(alone, together):
        assert both.nfe == one.nfe and both.timesteps == pytest.approx(one.timesteps, rel=1e-2)
        assert relative(both.latents, one.latents) < 1e-5
    assert together[1].timesteps == alone[1].timesteps
    # rounds run while the adaptive lane has evaluations left; its count is "about" until it is done
    assert [p.round for p in reports] == list(range(1, together[0].nfe + 1))
    assert reports[0].estimated and not reports[-1].estimated
    assert reports[-1].total_rounds == together[0].nfe and reports[-1].nfe_total == together[0].nfe + 8
    assert all(p.total_rounds >= p.round for p in reports)


def test_a_budget_counts_the_cap(sit_bundle):
    sampler = samplers.get("sit_ode_dopri5[max_nfe=300]")
    assert sampler.nfe(10, sit_bundle.scheduler_config) == 300
    per_evaluation = Budget(250.0, CostModel(per_call=0.0, per_row=1.0, per_decode=0.0))
    with pytest.raises(ValueError, match="300 model evaluations"):
        sample(sit_bundle, [Lane(sampler.name, 10, 0, cfg_scale=1.0)], budget=per_evaluation)
    fits = Lane("sit_ode_dopri5[max_nfe=200]", 10, 0, cfg_scale=1.0)
    assert sample(sit_bundle, [fits], budget=per_evaluation)[0].nfe < 200


def test_dopri5_comes_right_after_sits_fixed_grid_solvers():
    names = [s.name for s in samplers.for_family("sit")]
    assert names[names.index("sit_ode_heun") + 1] == "sit_ode_dopri5"
    assert "sit_ode_dopri5" not in [s.name for s in samplers.for_family("dit")]


def test_the_solvers_own_errors_reach_the_engine_and_end_its_thread():
    scheduler = samplers.get("sit_ode_dopri5").build({}, 10)
    x = torch.zeros(1, 4, 2, 2)
    with pytest.raises(RuntimeError, match=r"SiT's dopri5 could not go on \(torchdiffeq: .*not finite"):
        with torch.inference_mode():
            for t in scheduler.timesteps:  # grows as the solver asks; a model that gives NaN
                x = scheduler.step(torch.full_like(x, math.nan), t, x).prev_sample
    assert not solver_threads()
