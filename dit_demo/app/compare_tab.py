"""The Compare tab: samplers x step counts (x cfg scales) on one seed, every lane previewed live."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import gradio as gr
import pandas as pd

from dit_demo.app.context import (
    CFG_CHANNEL_CHOICES,
    MODEL_EVENTS,
    PREVIEW_INTERVAL,
    AppContext,
    eta,
    random_seed,
    sampler_choices,
    stopped_status,
)
from dit_demo.app.errors import gpu, user_errors
from dit_demo.app.outputs import file_name, save_output
from dit_demo.app.preview import preview_images
from dit_demo.app.streaming import stream
from dit_demo.lab.compare import Comparison, ComparisonSpec, run_comparison
from dit_demo.runtime.engine import Progress
from dit_demo.runtime.parsing import MAX_SEED


@dataclass
class CompareTab:
    samplers: gr.Dropdown
    steps: gr.Textbox
    cfgs: gr.Textbox
    class_: gr.Dropdown
    seed: gr.Number
    channels: gr.Radio
    reference: gr.Textbox


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
                seed = gr.Number(0, precision=0, label="Seed", minimum=0, maximum=MAX_SEED)
                dice = gr.Button("🎲 random seed", size="sm")
            channels = gr.Radio(CFG_CHANNEL_CHOICES, value=0, label="Guidance on")
            reference = gr.Textbox(
                "", label="Reference (sampler@steps, e.g. ddim@250; empty = highest-step deterministic cell)"
            )
            with gr.Row():
                run = gr.Button("Compare", variant="primary", elem_id="cmp-run")
                stop = gr.Button("Stop", variant="stop", elem_id="cmp-stop")
        with gr.Column(scale=3):
            preview = gr.Gallery(label="Live: every lane's x0 estimate", columns=6, height=260, elem_id="cmp-preview")
            grid = gr.Image(
                label="Grid (PNG with the comparison spec)",
                type="filepath",
                format="png",
                elem_id="cmp-grid",
                buttons=["download", "fullscreen"],
            )
            summary = gr.Markdown(elem_id="cmp-status")
    with gr.Row():
        cells = gr.Gallery(label="Cells", columns=6, format="png", elem_id="c-cells")
    with gr.Row():
        table = gr.Dataframe(label="Per cell: NFE, time, distance to the reference", elem_id="cmp-table")
    with gr.Row():
        dist_plot = gr.LinePlot(
            x="nfe",
            y="distance",
            color="sampler",
            title="Distance to the reference vs NFE",
            x_title="model evaluations (NFE)",
            y_title="latent RMSE to reference",
            elem_id="distance-plot",
        )
        sigma_plot = gr.LinePlot(
            x="step",
            y="log10_sigma",
            color="run",
            title="Noise levels visited",
            x_title="step",
            y_title="log10 sigma",
            elem_id="sigma-plot",
        )
    tab = CompareTab(samplers_box, steps, cfgs, class_, seed, channels, reference)

    dice.click(random_seed, outputs=seed, api_visibility="private")
    inputs = [samplers_box, steps, cfgs, class_, seed, channels, reference]
    outputs = [preview, grid, cells, table, dist_plot, sigma_plot, summary]
    event = run.click(gpu(_on_compare(ctx)), inputs, outputs, api_name="compare", preprocess=False, **MODEL_EVENTS)
    stop.click(stopped_status, summary, summary, cancels=[event], api_visibility="private")
    return tab


def _on_compare(ctx: AppContext):
    @user_errors
    def on_compare(sampler_names, steps_text, cfg_text, class_item, seed, channels, reference):
        bundle, limit = ctx.slot.get(), ctx.budget()
        spec = ComparisonSpec.build(
            sampler_names,
            steps_text,
            class_item,
            0 if seed is None else seed,
            cfg_text,
            channels,
            reference,
            max_steps=bundle.num_train_timesteps,
        )
        start = time.perf_counter()
        job = lambda callback, cancel: run_comparison(bundle, spec, callback, cancel, limit)  # noqa: E731
        for item in stream(job, PREVIEW_INTERVAL):
            if isinstance(item, Progress):
                names, latents = zip(*spec.cell_previews(item.x0)) if item.x0 else ((), ())
                previews = preview_images(bundle, list(latents), size=96)
                yield (
                    list(zip(previews, names)),
                    *(gr.skip(),) * 5,
                    f"Sampling all lanes in lock-step... {eta(item)}",
                )
                continue
            ctx.costs.observe(limit, time.perf_counter() - start)
            yield (gr.skip(), *comparison_outputs(bundle.name, item))

    return on_compare


def comparison_outputs(model_name: str, comparison: Comparison):
    """The Compare tab's outputs (grid, cells, table, two plots, summary) from a finished comparison."""
    spec = comparison.spec
    name = file_name(comparison.class_name, "compare", "-".join(spec.samplers), f"seed{spec.seed}")
    grid_path = save_output(comparison.grid, {"mode": "compare", "model": model_name, **spec.to_dict()}, name)
    cells = [(c.image, f"{c.caption()} | cfg {c.cfg_scale:g}") for c in comparison.cells]
    multi_cfg = len(spec.cfg_scales) > 1
    dist = pd.DataFrame(
        [
            {
                "sampler": f"{c.sampler} cfg {c.cfg_scale:g}" if multi_cfg else c.sampler,
                "nfe": c.nfe,
                "distance": c.distance,
            }
            for c in comparison.cells
        ]
    )
    longest = [c for c in comparison.cells if c.steps == max(spec.steps)]  # one schedule per sampler stays readable
    sigma_rows = [
        {"run": f"{c.sampler} {c.steps}", "step": i, "log10_sigma": math.log10(max(s, 1e-6))}
        for c in longest
        for i, s in enumerate(c.sigmas)
    ]
    ref = comparison.reference[0]
    summary = (
        f"**{comparison.class_name}** (class {comparison.class_id}), seed {spec.seed}: "
        f"{len(comparison.cells)} cells, {sum(c.nfe for c in comparison.cells)} NFE in {comparison.seconds:.2f}s "
        f"(lock-step batched). Reference: {ref.sampler} @ {ref.steps} steps."
    )
    return grid_path, cells, pd.DataFrame(comparison.table()), dist, pd.DataFrame(sigma_rows), summary
