"""A comparison = samplers (or variants) x step counts (x cfg scales x seeds x presets x models) on one class, in
lock-step."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping

import torch

from dit_demo.lab.compare.comparison import Cell, Comparison
from dit_demo.lab.compare.grids import comparison_grid, difference_grid
from dit_demo.lab.outputs.records import ImageRecord
from dit_demo.lab.quality.metrics import latent_rmse, pixel_rmse
from dit_demo.lab.specs.compare_spec import ComparisonSpec, with_references
from dit_demo.runtime.budget import Budget
from dit_demo.runtime.bundle import DiTBundle
from dit_demo.runtime.engine import MAX_BATCH, Progress, run
from dit_demo.runtime.levers import preset
from dit_demo.runtime.model_copies import ModelCopies
from dit_demo.runtime.request import Lane, check_lanes, lane_work

Models = DiTBundle | ModelCopies | Mapping[str, DiTBundle | ModelCopies]


def run_comparison(
    models: Models,
    spec: ComparisonSpec,
    callback: Callable[[Progress], None] | None = None,
    cancel: threading.Event | None = None,
    budget: Budget | None = None,
) -> Comparison:
    """Sample every cell (plus references that are not cells) in lock-step: one batch per (model, preset),
    since presets may run different weights (int8, bf16) and each model its own transformer. ``models``:
    the model (or its copies), or with a model axis each of the spec's models by name."""
    copies = model_copies(models, spec)
    keys, ref_index = with_references(spec)
    jobs = comparison_jobs(copies, spec)
    start = time.perf_counter()
    results = run_groups(jobs, callback, cancel, budget, priced_as(copies, spec))
    every: list[Cell | None] = [None] * len(keys)
    for (model, _, members), group_results in zip(jobs, results):
        images = model.decode_images(torch.stack([r.latents for r in group_results]))
        for i, r, image in zip(members, group_results, images):
            every[i] = Cell(
                sampler=r.lane.sampler.name,
                steps=r.lane.steps,
                cfg_scale=r.lane.cfg_scale,
                image=image,
                latents=r.latents,
                nfe=r.nfe,
                seconds=r.seconds,
                timesteps=r.timesteps,
                sigmas=[model.parameterization.sigma_at(t) for t in r.timesteps],
                seed=r.lane.seed,
                preset=keys[i].preset,
                model=keys[i].model,
                levers=r.lane.levers,
                record=ImageRecord.from_lane(r.lane, model, keys[i].preset),
            )
    for cell in every:
        ref = every[ref_index[cell.model, cell.cfg_scale, cell.seed]]
        cell.distance = latent_rmse(cell.latents, ref.latents)
        cell.pixel_distance = pixel_rmse(cell.image, ref.image)
        cell.is_reference = cell is ref
    cells = every[: len(spec.keys())]
    class_id = results[0][0].lane.class_id
    references = [
        every[ref_index[model, cfg, seed]]
        for model, _ in spec.model_rows()
        for cfg in spec.cfg_scales
        for seed in spec.seed_list
    ]
    first = copies[spec.model_rows()[0][0]].base
    comparison = Comparison(
        spec=spec,
        class_id=class_id,
        class_name=first.labels.name(class_id),
        cells=cells,
        reference=references,
        seconds=time.perf_counter() - start,
    )
    if not spec.models:  # a model axis names its models and their families in the spec, and each cell's record
        comparison.model_hash = first.extras.get("weights")
        comparison.family = first.parameterization.family
    comparison.grid = comparison_grid(comparison)
    comparison.difference = difference_grid(comparison)
    return comparison


def model_copies(models: Models, spec: ComparisonSpec) -> dict[str, ModelCopies]:
    """Each of the spec's models ("" without a model axis) -> its copies; a ``ValueError`` for a model that
    is missing or whose family is not the one the spec was built for."""
    if not isinstance(models, Mapping):
        names = [name for name, _ in spec.model_rows()]
        if len(names) > 1:
            raise ValueError(f"This comparison runs on {len(names)} models; give each of them: {', '.join(names)}.")
        models = {names[0]: models}
    copies = {}
    for name, family in spec.model_rows():
        if name not in models:
            raise ValueError(f"Model {name!r} of this comparison is not loaded; load it, then compare again.")
        copies[name] = models[name] if isinstance(models[name], ModelCopies) else ModelCopies(models[name])
        loaded = copies[name].base.parameterization.family
        if family is not None and loaded != family:
            raise ValueError(
                f"{name} is a {loaded} model; this comparison was made with a {family} model of that name."
            )
    return copies


def comparison_jobs(models: Models, spec: ComparisonSpec) -> list[tuple[DiTBundle, list[Lane], list[int]]]:
    """One (model, lanes, positions) job per (model, preset): the cells plus the references that are not cells."""
    copies = model_copies(models, spec)
    keys, _ = with_references(spec)
    jobs = []
    for model, _ in spec.model_rows():
        device = copies[model].base.device
        for name in spec.presets:
            members = [i for i, key in enumerate(keys) if key.preset == name and key.model == model]
            lanes = [spec.lane(keys[i], device) for i in members]
            jobs.append((copies[model].get(preset(name, device)), lanes, members))
    return jobs


def comparison_work(models: Models, spec: ComparisonSpec) -> list[tuple[DiTBundle, list[tuple[int, int]]]]:
    """Each group's model to price it at and its lanes' (model evaluations, rows per evaluation), checked, before
    any sampling: the groups run one after another, each in lock step (``Budget.check_groups``)."""
    copies = model_copies(models, spec)
    jobs = comparison_jobs(copies, spec)
    return [(base, lane_work(m, check_lanes(m, lanes))) for base, (m, lanes, _) in zip(priced_as(copies, spec), jobs)]


def priced_as(copies: dict[str, ModelCopies], spec: ComparisonSpec) -> list[DiTBundle]:
    """The model each of ``comparison_jobs``' groups is priced at, in its order: a preset's copy at its model's."""
    return [copies[model].base for model, _ in spec.model_rows() for _ in spec.presets]


def run_groups(
    jobs: list[tuple[DiTBundle, list[Lane], list[int]]],
    callback: Callable[[Progress], None] | None = None,
    cancel: threading.Event | None = None,
    budget: Budget | None = None,
    priced: list[DiTBundle] | None = None,
) -> list[list]:
    """Each (model, lanes, positions) group through the engine in turn, reported as one request:
    rounds and evaluations count across groups and previews carry the lanes' overall positions.
    All lanes are checked, and the budget is checked for all of them, before any sampling: group after
    group, each at the cost of its model in ``priced`` (default: the group's own)."""
    checked = [check_lanes(model, lanes) for model, lanes, _ in jobs]
    work = [lane_work(model, group) for (model, _, _), group in zip(jobs, checked)]
    if budget is not None:
        budget.check_groups(list(zip(priced or [model for model, _, _ in jobs], work)), MAX_BATCH)
    # the groups still to run, as planned (an adaptive solver's lanes at their cap until they run); the group
    # running reports its own totals, which for an adaptive solver are its estimate as it goes
    rounds = [max(nfe for nfe, _ in group) for group in work]
    nfes = [sum(nfe for nfe, _ in group) for group in work]
    done = {"rounds": 0, "nfe": 0, "elapsed": 0.0}
    out = []
    for k, ((model, _, positions), group) in enumerate(zip(jobs, checked)):
        after = sum(rounds[k + 1 :]), sum(nfes[k + 1 :])

        def relay(p: Progress, positions=positions, later=after) -> None:
            x0 = {positions[i]: v for i, v in p.x0.items()}
            callback(
                Progress(
                    round=done["rounds"] + p.round,
                    total_rounds=done["rounds"] + p.total_rounds + later[0],
                    nfe_done=done["nfe"] + p.nfe_done,
                    nfe_total=done["nfe"] + p.nfe_total + later[1],
                    elapsed=done["elapsed"] + p.elapsed,
                    x0=x0,
                    estimated=p.estimated,
                )
            )

        tick = time.perf_counter()
        out.append(run(model, group, relay if callback else None, cancel, MAX_BATCH))
        done["rounds"] += max(r.nfe for r in out[-1])  # lanes in lock step: the group took its longest lane's
        done["nfe"] += sum(r.nfe for r in out[-1])
        done["elapsed"] += time.perf_counter() - tick
    return out
