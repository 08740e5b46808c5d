"""The app as tools for agents (MCP): generate, compare, reproduce and the quality lookup.

Gradio's MCP server (``launch(mcp_server=True)``) offers each public endpoint as a tool named after its
function: the docstring's first paragraph says what the tool does, each ``Args:`` line describes one
parameter (one line each: Gradio reads no continuation lines) and the annotations give the JSON types.
The tabs' own endpoints answer in the page's shapes (galleries, form updates), so these four tools are
registered beside them with ``gr.api`` and the tabs' endpoints stay API-only. The tools run on the tabs'
request layer (the same checks, per-request budget and model queue), and a refused request comes back as
a tool error that says what was wrong and what is allowed.
"""

# no `from __future__ import annotations`: gr.api reads these annotations as types, and a return
# annotation left as a string would make one output instead of a tuple of them

import functools
import math
from collections.abc import Callable, Sequence
from contextlib import closing
from typing import Literal

import gradio as gr

import samplers as sampler_registry
from dit_demo.app.compare_request import comparison_request
from dit_demo.app.context import MODEL_EVENTS, AppContext, streamed
from dit_demo.app.errors import user_errors
from dit_demo.app.mcp_server import hide_other_endpoints, png_source, unpack_tool_outputs
from dit_demo.app.model_cache import dropped_text
from dit_demo.app.outputs import file_name, save_output
from dit_demo.app.quality_tab import best_text, describe
from dit_demo.app.zerogpu import gpu_event
from dit_demo.lab.compare.run import comparison_work, run_comparison
from dit_demo.lab.outputs.generate import batch_grid, generate, generation_lanes
from dit_demo.lab.outputs.pngmeta import read_parameters
from dit_demo.lab.outputs.records import BatchRecord, ComparisonRecord, check_same_model, record_from_dict
from dit_demo.lab.quality import answers
from dit_demo.lab.quality.answers import COSTS, METRICS, QualityData
from dit_demo.lab.specs.compare_spec import ComparisonSpec
from dit_demo.runtime.bundle import DiTBundle
from dit_demo.runtime.levers import Levers
from dit_demo.runtime.levers import preset as preset_levers
from dit_demo.runtime.parsing import MAX_CFG, as_float, shown
from dit_demo.runtime.request import Lane, check_lanes, lane_work

Preset = Literal["exact", "fast"]
Channels = Literal[0, 3]
Metric = Literal[tuple(METRICS)]
Cost = Literal[tuple(COSTS)]
MODEL_QUEUE = {key: MODEL_EVENTS[key] for key in ("concurrency_id", "concurrency_limit")}
CLASSES_DOC = (
    "the loaded model's class names, synonyms or ids (the embedded Fashion-MNIST model: 'T-shirt/top', "
    "'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot' or 0-9; "
    "DiT-XL/2: the 1000 ImageNet classes, e.g. 'golden retriever' or 207)"
)


class AgentTools:
    """The tools' bodies, over one app's model slot and quality sweeps (``add_agent_tools`` registers them)."""

    def __init__(self, ctx: AppContext, quality_data: QualityData | None):
        self.ctx, self.quality = ctx, quality_data

    def generate_images(
        self,
        classes: list[str],
        sampler: str = "dpmpp_2m",
        steps: int | None = None,
        cfg_scale: float | None = None,
        seed: int = 0,
        images_per_class: int = 1,
        preset: Preset = "exact",
        guidance_channels: Channels = 0,
    ) -> tuple[gr.FileData, str]:
        """Generate class-conditional images with one diffusion sampler on the app's DiT model (its Generate tab). One PNG comes back: the image, or a grid with a row per class and a column per seed; it carries the parameters that made it.

        Args:
            classes: <CLASSES>
            sampler: a sampler name (<SAMPLERS>), or a variant with diffusers scheduler options such as 'dpmpp_2m[karras=true]' or 'ddpm[spacing=linspace]'.
            steps: sampling steps, 1 up to the model's training steps (1000); null: the sampler's recommended count.
            cfg_scale: classifier-free guidance scale, 0 to <MAX_CFG> (1: no guidance); null: the model's own default.
            seed: the noise seed (0 or more); image j of every class uses seed + j, so classes share their noise.
            images_per_class: how many images of each class (classes x images_per_class is at most 64).
            preset: 'exact' takes no shortcuts; 'fast' takes the speed levers that kept quality on this hardware (int8, bf16, block cache).
            guidance_channels: 0 guides every latent channel; 3 only the first three, as the original DiT code did.

        Returns:
            the PNG (an image, and its URL: give that to reproduce_png to make it again)
            a summary: model evaluations (NFE), seconds, and one line per image (class, sampler, steps, cfg, seed)
        """
        levers, bundle, lanes = self._generation(classes, sampler, steps, cfg_scale, seed, images_per_class, preset,
                                                 guidance_channels)  # fmt: skip
        return self._generated(levers, bundle, lanes, images_per_class)

    def compare_samplers(
        self,
        class_name: str,
        samplers: list[str] | None = None,
        steps: list[int] | None = None,
        cfg_scales: list[float] | None = None,
        seed: int = 0,
        seeds: int = 1,
        presets: list[Preset] | None = None,
        reference: str = "",
        guidance_channels: Channels = 0,
        models: list[str] | None = None,
    ) -> tuple[gr.FileData, gr.FileData, str, str]:
        """Compare diffusion samplers and step counts on the same class and seed (the app's Compare tab): every cell is measured against a reference cell, with its cost in model evaluations (NFE) and seconds.

        Args:
            class_name: one class: <CLASSES>
            samplers: the rows: sampler names (<SAMPLERS>) or variants such as 'dpmpp_2m[karras=true]'; null: ddim, dpmpp_2m, euler.
            steps: the columns: step counts, each 1 to 1000, at most 16 of them; null: 10, 25, 50.
            cfg_scales: guidance scales, each 0 to <MAX_CFG> (several make a cfg axis); null: the model's default.
            seed: the noise seed every cell shares (0 or more).
            seeds: how many seeds (seed, seed+1, ...), 1 to 16: the table then gives the mean distance and its spread.
            presets: speed presets, 'exact' and/or 'fast' (both: an axis, to see what the shortcuts cost); null: exact.
            reference: the reference cell as sampler@steps, e.g. 'ddim@250'; empty: the highest-step deterministic cell.
            guidance_channels: 0 guides every latent channel; 3 only the first three, as the original DiT code did.
            models: a model axis: model names as the app's model box offers them, each sampler on the models of its family; null: the loaded model.

        Returns:
            the grid of images (a PNG that carries the comparison; give its URL to reproduce_png to run it again)
            the same grid as |cell - reference|
            the table (markdown): each sampler and step count with its latent and pixel RMSE to the reference, NFE and time
            a summary: class, cells, NFE, seconds and the reference
        """
        return self._compared(*self._comparison(class_name, samplers, steps, cfg_scales, seed, seeds, presets,
                                                reference, guidance_channels, models))  # fmt: skip

    def reproduce_png(self, png: str) -> tuple[gr.FileData, str]:
        """Make an image or comparison again from the parameters its PNG carries (every PNG this app returns carries them): an image from generate_images, a grid of several, or a comparison grid from compare_samplers. The loaded model must be the one that made it.

        Args:
            png: the PNG's URL as this app returned it (its 'Image URL', containing /gradio_api/file=), or the PNG's bytes as a data URL (data:image/png;base64,...).

        Returns:
            the PNG made again
            what it is and how it was made; for a comparison, its table (markdown)
        """
        record = record_from_dict(read_parameters(png_source(png)))
        bundle = self.ctx.slot.get()
        check_same_model(record, bundle.name, bundle.extras.get("weights"), bundle.parameterization.family)
        if isinstance(record, ComparisonRecord):
            models, dropped = self.ctx.slot.models_for(record.spec.models)
            grid, _, table, summary = self._compared(models, record.spec, dropped)
            return grid, f"{summary}\n\n{table}"
        made = record.images if isinstance(record, BatchRecord) else (record,)
        levers = preset_levers(made[0].preset or ("fast" if made[0].took_shortcuts else "exact"), bundle.device)
        lanes = [Lane(r.sampler, r.steps, r.class_id, r.seed, r.cfg_scale, cfg_channels=r.cfg_channels,
                      spacing=r.spacing, levers=r.levers) for r in made]  # fmt: skip
        per_row = sum(r.class_id == made[0].class_id for r in made)
        return self._generated(levers, self.ctx.slot.model_for(levers), lanes, per_row)

    def quality_at_budget(self, budget: float = 25, metric: Metric = "frechet", cost: Cost = "nfe") -> str:
        """Which sampler and step count gives the best images within a cost budget, from the app's quality sweeps (thousands of samples per cell, each metric with its 95% interval); it samples nothing, so it answers at once. Cells that a paired bootstrap cannot tell from the best are named with it.

        Args:
            budget: the most a cell may cost, in the unit of `cost` (model evaluations, or seconds per batch).
            metric: frechet (Frechet distance, lower is better), accuracy (class accuracy), precision, recall, frechet_class_spread, or an ADM evaluator's fid, sfid, inception_score where the sweep has them.
            cost: 'nfe' (model evaluations per image) or 'seconds' (wall time).

        Returns:
            the answer (markdown): which sweep, the best cell within the budget and its ties, then every cell within the budget, best first
        """
        data = self._sweep(metric, cost)
        budget = as_float("Budget", budget, 0.0, math.inf)
        within = [c for c in data.cells if answers.within_budget(c, budget, cost)]
        headers, rows = answers.table(QualityData(data.model, sorted(within, key=lambda c: _rank(c, metric))))
        return "\n\n".join([describe(data), best_text(data, metric, cost, budget), _markdown(headers, rows)])

    def _sweep(self, metric: str, cost: str) -> QualityData:
        """The sweeps, where they can answer for ``metric`` and ``cost`` (``ValueError`` saying why not)."""
        if self.quality is None:
            raise ValueError(describe(None))
        if cost not in COSTS:
            raise ValueError(f"Cost must be one of {', '.join(COSTS)}, got {shown(cost)}.")
        if metric not in self.quality.metrics():
            has = ", ".join(self.quality.metrics()) or "no quality metric"
            raise ValueError(f"This sweep has no {shown(metric)}; it has: {has}.")
        return self.quality

    def generation_estimate(self, *args, **kwargs) -> float | None:
        """Seconds ``generate_images`` should take, before anything runs (ZeroGPU asks for that much)."""
        _, bundle, lanes = self._generation(*args, **kwargs)
        return self.ctx.estimate(lane_work(bundle, check_lanes(bundle, lanes)))

    def comparison_estimate(self, *args, **kwargs) -> float | None:
        models, spec, _ = self._comparison(*args, **kwargs)
        return self.ctx.estimate_groups(comparison_work(models, spec))

    # the tools' own parameter names: ZeroGPU calls an estimate with the arguments Gradio gave the tool
    def _generation(self, classes, sampler="dpmpp_2m", steps=None, cfg_scale=None, seed=0, images_per_class=1,
                    preset="exact", guidance_channels=0) -> tuple[Levers, DiTBundle, list[Lane]]:  # fmt: skip
        """The request as the model copy to run and its lanes (``ValueError`` naming what is wrong)."""
        levers = preset_levers(preset, self.ctx.slot.get().device)
        bundle = self.ctx.slot.model_for(levers)
        steps = self.ctx.defaults().steps_for(sampler) if steps is None else steps
        lanes = generation_lanes(
            classes, sampler, steps, cfg_scale, seed, images_per_class, guidance_channels, levers=levers.lane
        )
        if isinstance(classes, list):  # every bad class named at once, not the first only
            bundle.labels.resolve_all(classes)
        return levers, bundle, lanes

    def _comparison(self, class_name, samplers=None, steps=None, cfg_scales=None, seed=0, seeds=1, presets=None,
                    reference="", guidance_channels=0, models=None) -> tuple:  # fmt: skip
        """(the models it runs on, the checked spec, the models the model cache dropped)."""
        defaults = self.ctx.defaults()
        return comparison_request(
            self.ctx,
            models,
            list(defaults.compare_samplers) if samplers is None else samplers,
            defaults.compare_steps if steps is None else steps,
            class_name,
            seed=seed,
            cfg_text=[defaults.cfg] if cfg_scales is None else cfg_scales,
            cfg_channels=guidance_channels,
            reference=reference,
            seeds=seeds,
            presets=presets,
        )

    def _generated(self, levers: Levers, bundle: DiTBundle, lanes: list[Lane], per_row: int) -> tuple[gr.FileData, str]:
        made, seconds = self._run(lambda cancel, limit: generate(bundle, lanes, None, cancel, limit))
        image, parameters = (made[0].image, made[0].parameters) if len(made) == 1 else batch_grid(made, per_row)
        first = made[0].parameters
        name = file_name(first["class_name"], first["sampler"], first["steps"], f"seed{first['seed']}")
        summary = [
            f"{len(made)} image(s), {made[0].nfe} NFE each, {seconds:.2f}s in all on {bundle.device}; "
            f"preset: {levers.describe()}.",
            *(f"- {g.caption()}" for g in made),
        ]
        return gr.FileData(path=save_output(image, parameters, name)), "\n".join(summary)

    def _compared(self, models, spec: ComparisonSpec, dropped: list[str]) -> tuple[gr.FileData, gr.FileData, str, str]:
        comparison, seconds = self._run(lambda cancel, limit: run_comparison(models, spec, None, cancel, limit))
        parameters = ComparisonRecord(self.ctx.slot.get().name, spec, comparison.model_hash, comparison.family)
        stem = file_name(comparison.class_name, "compare", "-".join(spec.samplers), f"seed{spec.seed}")[: -len(".png")]
        grid = save_output(comparison.grid, parameters.to_dict(), f"{stem}.png")
        difference = save_output(comparison.difference, parameters.to_dict(), f"{stem}_difference.png")
        to = "each model's own reference" if spec.models else "the reference, {0.sampler} @ {0.steps} steps"
        summary = (
            f"{comparison.class_name} (class {comparison.class_id}): {len(comparison.cells)} cells, "
            f"{sum(c.nfe for c in comparison.cells)} NFE in {seconds:.2f}s, sampled in lock-step. Distances are to "
            f"{to.format(comparison.reference[0])}{f', the mean over {spec.seeds} seeds' if spec.seeds > 1 else ''}. "
            f"{comparison.left_out()} " + dropped_text(dropped)
        ).strip()
        return gr.FileData(path=grid), gr.FileData(path=difference), comparison.markdown_table(), summary

    def _run(self, job: Callable):
        """``job(cancel, budget)`` run as the tabs run theirs (under the request's budget, its time learned by
        the server), without previews: (its result, seconds)."""
        job_ = lambda _report, cancel, limit: job(cancel, limit)  # noqa: E731
        with closing(streamed(self.ctx, job_, lambda progress: None, lambda *done: done)) as run:
            return next(run)


def _rank(cell: dict, metric: str) -> tuple[bool, float]:
    """Best first, cells without the metric last."""
    value = answers.value(cell, metric)
    return value is None, 0.0 if value is None else value if METRICS[metric][1] else -value


def _markdown(headers: Sequence[str], rows: Sequence[Sequence]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|---" * len(headers) + "|"]
    return "\n".join(lines + ["| " + " | ".join("" if v is None else str(v) for v in row) + " |" for row in rows])


def _tool(body: Callable, estimate: Callable[..., float | None] | None = None) -> Callable:
    """``body`` as Gradio sees a tool (its name, annotations, and its docstring naming what this app offers),
    a bad request turned into a tool error; with ``estimate``, on ZeroGPU it holds a GPU for that long."""
    run = body if estimate is None else gpu_event(body, estimate)

    @functools.wraps(body)
    def tool(*args, **kwargs):
        return run(*args, **kwargs)

    samplers = ", ".join(sampler_registry.names())  # plugins included: they are registered by now
    filled = {"<CLASSES>": CLASSES_DOC, "<SAMPLERS>": samplers, "<MAX_CFG>": f"{MAX_CFG:g}"}
    tool.__doc__ = functools.reduce(lambda doc, key: doc.replace(key, filled[key]), filled, body.__doc__)
    return user_errors(tool)


def add_agent_tools(demo: gr.Blocks, ctx: AppContext, quality_data: QualityData | None) -> None:
    """The tools, in ``demo`` (inside its ``with`` block, after every tab); the tabs' endpoints leave the tool list."""
    tools = AgentTools(ctx, quality_data)
    model_tools = [
        (tools.generate_images, tools.generation_estimate),
        (tools.compare_samplers, tools.comparison_estimate),
        (tools.reproduce_png, lambda *args, **kwargs: None),  # unknown before the PNG is read: ZeroGPU's cap
    ]
    registered = [_tool(body, estimate) for body, estimate in model_tools]
    for fn in registered:
        gr.api(fn, api_name=fn.__name__, **MODEL_QUEUE)
    registered.append(_tool(tools.quality_at_budget))
    # queued as the tab's own download is, so a refusal reaches the agent as its message (Gradio answers an
    # unqueued one with the message quoted), but in a queue of its own: it reads sweeps, never the model
    gr.api(registered[-1], api_name="quality_at_budget")
    hide_other_endpoints(demo, registered)
    unpack_tool_outputs()
