"""The Compare tab: samplers x step counts (x cfg scales) on one seed, every lane previewed live."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import gradio as gr
import pandas as pd

import samplers
from dit_demo.app.context import (
    CFG_CHANNEL_CHOICES,
    MODEL_EVENTS,
    PREVIEW_INTERVAL,
    AppContext,
    eta,
    preset_choices,
    random_seed,
    refused_status,
    sampler_choices,
    stopped_status,
)
from dit_demo.app.errors import user_errors
from dit_demo.app.outputs import file_name, save_output, save_zip
from dit_demo.app.plots import comparison_plots
from dit_demo.app.preview import preview_images
from dit_demo.app.streaming import stream
from dit_demo.app.zerogpu import gpu_event
from dit_demo.lab.compare import MAX_SEEDS, Comparison, ComparisonSpec, comparison_work, run_comparison
from dit_demo.runtime.engine import Progress
from dit_demo.runtime.parsing import MAX_SEED, split_list


@dataclass
class CompareTab:
    samplers: gr.Dropdown
    steps: gr.Textbox
    cfgs: gr.Textbox
    class_: gr.Dropdown
    seed: gr.Number
    channels: gr.Radio
    reference: gr.Textbox
    variants: gr.Textbox
    seeds: gr.Number
    presets: gr.CheckboxGroup


def build_compare_tab(ctx: AppContext) -> CompareTab:
    """The tab's widgets (inside the current Blocks) and its events; /compare is the API."""
    bundle, defaults = ctx.slot.get(), ctx.defaults()
    choices = bundle.labels.choices()
    with gr.Row():
        with gr.Column(scale=2):
            samplers_box = gr.Dropdown(
                sampler_choices(),
                value=list(defaults.compare_samplers),
                multiselect=True,
                allow_custom_value=False,
                label="Samplers (rows)",
                elem_id="cmp-samplers",
            )
            variants = gr.Textbox(
                "",
                label="More rows: sampler variants, e.g. dpmpp_2m[karras=true], ddpm[spacing=linspace], dpmpp_2m[order=3]",
                elem_id="cmp-variants",
            )
            steps = gr.Textbox(
                defaults.compare_steps,
                elem_id="cmp-steps",
                label="Step counts (columns): 10,25,50 or 10-50 (+10) or 5-50 [4]",
            )
            cfgs = gr.Textbox(
                f"{defaults.cfg:g}", label="CFG scale(s): one value, or a comma list for a cfg axis", elem_id="c-cfg"
            )
            class_ = gr.Dropdown(
                choices, value=choices[0], filterable=True, allow_custom_value=False, label="Class", elem_id="c-class"
            )
            with gr.Row():
                seed = gr.Number(0, precision=0, label="Seed", minimum=0, maximum=MAX_SEED, elem_id="cmp-seed")
                seeds = gr.Number(
                    1,
                    precision=0,
                    label="Seeds (a seed axis: mean and spread)",
                    minimum=1,
                    maximum=MAX_SEEDS,
                    elem_id="cmp-seeds",
                )
                dice = gr.Button("🎲 random seed", size="sm")
            presets = gr.CheckboxGroup(
                preset_choices(bundle), value=["exact"], label="Speed presets (both: an axis)", elem_id="cmp-presets"
            )
            # the run buttons sit above the rarely changed settings, so pressing them keeps the previews in view
            with gr.Row():
                run = gr.Button("Compare", variant="primary", elem_id="cmp-run")
                stop = gr.Button("Stop", variant="stop", elem_id="cmp-stop")
            with gr.Accordion("More: guidance channels, reference cell", open=False):
                channels = gr.Radio(CFG_CHANNEL_CHOICES, value=0, label="Guidance on")
                reference = gr.Textbox(
                    "", label="Reference (sampler@steps, e.g. ddim@250; empty = highest-step deterministic cell)"
                )
        with gr.Column(scale=3):
            preview = gr.Gallery(label="Live: every lane's x0 estimate", columns=6, height=260, elem_id="cmp-preview")
            summary = gr.Markdown(elem_id="cmp-status")
            view = gr.Radio(
                [("images", "images"), ("difference to the reference", "difference")],
                value="images",
                label="Show",
                elem_id="cmp-view",
            )
            grid = gr.Image(
                label="Grid (PNG with the comparison spec)",
                type="filepath",
                format="png",
                elem_id="cmp-grid",
                buttons=["download", "fullscreen"],
            )
            files = gr.State({})  # the finished comparison's files: the grid, its difference view, the zip
            download = gr.DownloadButton("Download all (zip)", elem_id="cmp-zip")
    with gr.Row():
        table = gr.Dataframe(label="Per cell: NFE, time, distance to the reference", elem_id="cmp-table")
    with gr.Row():
        dist_plot = gr.LinePlot(
            x="nfe",
            y="distance",
            color="series",
            title="Distance to the reference vs NFE",
            x_title="model evaluations (NFE)",
            y_title="latent RMSE to reference",
            elem_id="distance-plot",
        )
        sigma_plot = gr.LinePlot(
            x="step",
            y="log10_sigma",
            color="series",
            title="Noise levels visited",
            x_title="step",
            y_title="log10 sigma",
            elem_id="sigma-plot",
        )
    tab = CompareTab(samplers_box, steps, cfgs, class_, seed, channels, reference, variants, seeds, presets)

    dice.click(random_seed, outputs=seed, api_visibility="private")
    view.change(lambda which, kept: kept.get(which, gr.skip()), [view, files], grid, api_visibility="private")
    inputs = [samplers_box, steps, cfgs, class_, seed, channels, reference, variants, seeds, presets, view]
    outputs = [preview, grid, files, download, table, dist_plot, sigma_plot, summary]
    event = run.click(_on_compare(ctx), inputs, outputs, api_name="compare", preprocess=False, **MODEL_EVENTS)
    event.failure(refused_status, None, summary, api_visibility="private")
    stop.click(stopped_status, summary, summary, cancels=[event], api_visibility="private")
    return tab


def _comparison_spec(ctx: AppContext, sampler_names, steps_text, cfg_text, class_item, seed, channels, reference,
                     variants, seeds, presets) -> ComparisonSpec:  # fmt: skip
    """The form's values as a checked comparison (``ValueError`` naming the field when one is bad)."""
    return ComparisonSpec.build(
        _rows(sampler_names, variants),
        steps_text,
        class_item,
        0 if seed is None else seed,
        cfg_text,
        channels,
        reference,
        max_steps=ctx.slot.get().num_train_timesteps,
        seeds=1 if seeds is None else seeds,
        presets=presets,
    )


def _on_compare(ctx: AppContext):
    # /compare's arguments, in the order of the form; the API may leave out the ones with defaults
    def estimate(sampler_names, steps, cfgs, class_, seed, channels, reference, variants="", seeds=1, presets=("exact",),
                 view="images") -> float | None:  # fmt: skip
        """Seconds the comparison should take, before anything runs (None: the model is not measured yet)."""
        spec = _comparison_spec(
            ctx, sampler_names, steps, cfgs, class_, seed, channels, reference, variants, seeds, presets
        )
        return ctx.estimate(comparison_work(ctx.slot.variants(), spec))

    @user_errors
    def on_compare(sampler_names, steps, cfgs, class_, seed, channels, reference, variants="", seeds=1, presets=("exact",),
                   view="images"):  # fmt: skip
        models, limit = ctx.slot.variants(), ctx.budget()
        bundle = models.base
        spec = _comparison_spec(
            ctx, sampler_names, steps, cfgs, class_, seed, channels, reference, variants, seeds, presets
        )
        start = time.perf_counter()
        job = lambda callback, cancel: run_comparison(models, spec, callback, cancel, limit)  # noqa: E731
        latest: dict[int, object] = {}  # every lane's last x0: finished lanes keep their place in the strip
        for item in stream(job, PREVIEW_INTERVAL):
            if isinstance(item, Progress):
                latest.update(item.x0)
                names, latents = zip(*spec.cell_previews(latest)) if latest else ((), ())
                previews = preview_images(bundle, list(latents), size=96)
                yield (
                    list(zip(previews, names)),
                    *(gr.skip(),) * 6,
                    f"Sampling all lanes in lock-step... {eta(item)}",
                )
                continue
            ctx.costs.observe(limit, time.perf_counter() - start)
            yield (gr.skip(), *comparison_outputs(bundle.name, item, view))

    return gpu_event(on_compare, estimate)


def _rows(picked, variants) -> list[str] | str:
    """The picked samplers plus the variants typed in (a comma list; commas inside [...] belong to one)."""
    typed = split_list(variants) if isinstance(variants, str) and variants.strip() else []
    if not typed:
        return picked
    if isinstance(picked, str):
        picked = split_list(picked)
    return [*(picked or []), *typed]


def comparison_outputs(model_name: str, comparison: Comparison, view: str = "images"):
    """The Compare tab's outputs from a finished comparison: the grid shown (images or differences),
    the files kept for the view toggle, the zip, table, two plots and the summary."""
    spec = comparison.spec
    parameters = {"mode": "compare", "model": model_name, **spec.to_dict()}
    stem = file_name(comparison.class_name, "compare", "-".join(spec.samplers), f"seed{spec.seed}")[: -len(".png")]
    kept = {
        "images": save_output(comparison.grid, parameters, f"{stem}.png"),
        "difference": save_output(comparison.difference, parameters, f"{stem}_difference.png"),
    }
    zip_path = save_zip(
        f"{stem}.zip",
        {
            **{os.path.basename(path): path for path in kept.values()},
            **{
                _cell_name(comparison, c): (c.image, comparison.cell_parameters(c, model_name))
                for c in comparison.cells
            },
        },
    )
    summary = (
        f"**{comparison.class_name}** (class {comparison.class_id}): {len(comparison.cells)} cells, "
        f"{sum(c.nfe for c in comparison.cells)} NFE in {comparison.seconds:.2f}s (lock-step batched). "
        + _reference_text(comparison)
    )
    return (
        kept.get(view, kept["images"]),
        kept,
        zip_path,
        pd.DataFrame(comparison.table()),
        *comparison_plots(comparison),
        summary,
    )


def _reference_text(comparison: Comparison) -> str:
    ref = comparison.reference[0]
    text = f"Reference: {samplers.get(ref.sampler).label} @ {ref.steps} steps"
    if len(comparison.spec.presets) > 1:
        text += f", {ref.preset} preset"
    if comparison.spec.seeds > 1:
        text += f", one per seed; distances are the mean (and sd) over {comparison.spec.seeds} seeds"
    return text + "."


def _cell_name(comparison: Comparison, cell) -> str:
    return file_name(
        comparison.class_name,
        cell.sampler,
        cell.steps,
        f"cfg{cell.cfg_scale:g}",
        f"seed{cell.seed}",
        cell.preset if len(comparison.spec.presets) > 1 else "",
    )
