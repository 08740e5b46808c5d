"""The Compare tab: samplers x step counts (x cfg scales x seeds x presets x models) on one seed, every lane
previewed live."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

import samplers as sampler_registry
from dit_demo.app import ids
from dit_demo.app.compare_request import comparison_request
from dit_demo.app.compare_results import (
    CompareResults,
    build_compare_results,
    comparison_outputs,
    wire_compare_results,
)
from dit_demo.app.context import (
    CFG_CHANNEL_CHOICES,
    SAMPLING,
    AppContext,
    guidance_settings,
    model_event,
    preset_choices,
    random_seed,
    sampler_choices,
    streamed,
    time_left,
)
from dit_demo.app.errors import user_errors
from dit_demo.app.form_rules import wire_class_note
from dit_demo.app.model_cache import dropped_text
from dit_demo.app.preview import preview_images
from dit_demo.app.zerogpu import gpu_event
from dit_demo.lab.compare.run import comparison_work, run_comparison
from dit_demo.lab.specs.compare_spec import MAX_SEEDS, ComparisonSpec
from dit_demo.lab.specs.grammar import split_list
from dit_demo.runtime.engine import Progress
from dit_demo.runtime.parsing import MAX_SEED


@dataclass(kw_only=True)
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
    models: gr.Dropdown


def build_compare_tab(ctx: AppContext) -> tuple[CompareTab, CompareResults, object]:
    """The tab's form, its results and /compare's event (for listeners other parts chain to it)."""
    bundle, defaults = ctx.slot.get(), ctx.defaults()
    choices = bundle.labels.choices()
    with gr.Row():
        with gr.Column(scale=2):
            samplers_box = gr.Dropdown(
                sampler_choices(defaults.family),
                value=list(defaults.compare_samplers),
                multiselect=True,
                allow_custom_value=False,
                label="Samplers (rows)",
                elem_id=ids.CMP_SAMPLERS,
            )
            variants = gr.Textbox(
                "",
                label="More rows: sampler variants, e.g. dpmpp_2m[karras=true], ddpm[spacing=linspace], dpmpp_2m[order=3]",
                elem_id=ids.CMP_VARIANTS,
            )
            steps = gr.Textbox(
                defaults.compare_steps,
                elem_id=ids.CMP_STEPS,
                label="Step counts (columns): 10,25,50 or 10-50 (+10) or 5-50 [4]",
            )
            cfgs = gr.Textbox(
                f"{defaults.cfg:g}",
                label="CFG scale(s): one value, or a comma list for a cfg axis",
                elem_id=ids.CMP_CFG,
                **guidance_settings(bundle),
            )
            class_ = gr.Dropdown(
                choices,
                value=choices[0],
                filterable=True,
                allow_custom_value=False,
                label="Class",
                elem_id=ids.CMP_CLASS,
            )
            class_told = gr.Markdown(elem_id=ids.CMP_CLASS_NOTE)
            with gr.Row():
                seed = gr.Number(0, precision=0, label="Seed", minimum=0, maximum=MAX_SEED, elem_id=ids.CMP_SEED)
                seeds = gr.Number(
                    1,
                    precision=0,
                    label="Seeds (a seed axis: mean and spread)",
                    minimum=1,
                    maximum=MAX_SEEDS,
                    elem_id=ids.CMP_SEEDS,
                )
                dice = gr.Button("🎲 random seed", size="sm")
            presets = gr.CheckboxGroup(
                preset_choices(bundle), value=["exact"], label="Speed presets (both: an axis)", elem_id=ids.CMP_PRESETS
            )
            models = gr.Dropdown(
                ctx.slot.allowed,
                value=[],
                multiselect=True,
                allow_custom_value=False,
                label="Models (an axis, each with the samplers of its family; empty = the loaded model)",
                elem_id=ids.CMP_MODELS,
            )
            # the run buttons sit above the rarely changed settings, so pressing them keeps the previews in view
            with gr.Row():
                run = gr.Button("Compare", variant="primary", elem_id=ids.CMP_RUN)
                stop = gr.Button("Stop", elem_id=ids.CMP_STOP, interactive=False)
            with gr.Accordion("More: guidance channels, reference cell", open=False):
                channels = gr.Radio(CFG_CHANNEL_CHOICES, value=0, label="Guidance on")
                reference = gr.Textbox(
                    "", label="Reference (sampler@steps, e.g. ddim@250; empty = highest-step deterministic cell)"
                )
        right = gr.Column(scale=3)
    results = build_compare_results(right)  # filled after the row: the table and plots go below it
    tab = CompareTab(
        samplers=samplers_box,
        steps=steps,
        cfgs=cfgs,
        class_=class_,
        seed=seed,
        channels=channels,
        reference=reference,
        variants=variants,
        seeds=seeds,
        presets=presets,
        models=models,
    )

    dice.click(random_seed, outputs=seed, api_visibility="private")
    wire_class_note(lambda: ctx.slot.get().labels, class_, class_told)
    inputs = [samplers_box, steps, cfgs, class_, seed, channels, reference, variants, seeds, presets]
    inputs += [results.view, results.axis, models]  # models last: calls made before it keep their meaning
    # with a model axis every family's samplers are offered (each runs on the models it drives)
    models.change(_offered_samplers(ctx), models, samplers_box, api_visibility="private")
    outputs = results.outputs()
    event = model_event(run, stop, results.summary, results.grid, _on_compare(ctx), inputs, outputs, api_name="compare")
    wire_compare_results(results, event)
    return tab, results, event


def offered_samplers(family: str, models) -> list[tuple[str, str]]:
    """The Samplers box's choices: the loaded model's family's, or with a model axis every family's."""
    if not models:
        return sampler_choices(family)
    return [
        (f"{s.label} ({s.nfe_per_step} NFE/step; {', '.join(s.families)} models)", s.name)
        for s in sampler_registry.all_samplers()
    ]


def _offered_samplers(ctx: AppContext):
    return lambda models: gr.Dropdown(choices=offered_samplers(ctx.slot.get().parameterization.family, models))


def _models_and_spec(ctx: AppContext, form: tuple, models) -> tuple[object, ComparisonSpec, list[str]]:
    """The form's values as what the comparison runs on, its checked spec (``ValueError`` naming the field
    when one is bad) and the models the model cache dropped."""
    sampler_names, steps_text, cfg_text, class_item, seed, channels, reference, variants, seeds, presets = form
    return comparison_request(
        ctx,
        models,
        _rows(sampler_names, variants),
        steps_text,
        class_item,
        seed=0 if seed is None else seed,
        cfg_text=cfg_text,
        cfg_channels=channels,
        reference=reference,
        seeds=1 if seeds is None else seeds,
        presets=presets,
    )


def _on_compare(ctx: AppContext):
    # /compare's arguments, in the order of the form; the API may leave out the ones with defaults
    def estimate(sampler_names, steps, cfgs, class_, seed, channels, reference, variants="", seeds=1, presets=("exact",),
                 view="images", axis="linear", models=None) -> float | None:  # fmt: skip
        """Seconds the comparison should take, before anything runs (None: the model is not measured yet)."""
        form = sampler_names, steps, cfgs, class_, seed, channels, reference, variants, seeds, presets
        copies, spec, _ = _models_and_spec(ctx, form, models)
        return ctx.estimate_groups(comparison_work(copies, spec))

    @user_errors
    def on_compare(sampler_names, steps, cfgs, class_, seed, channels, reference, variants="", seeds=1, presets=("exact",),
                   view="images", axis="linear", models=None):  # fmt: skip
        form = sampler_names, steps, cfgs, class_, seed, channels, reference, variants, seeds, presets
        copies, spec, dropped = _models_and_spec(ctx, form, models)
        bundle = ctx.slot.get()
        latest: dict[int, object] = {}  # every lane's last x0: finished lanes keep their place in the strip

        def previews(progress: Progress):
            latest.update(progress.x0)
            return (
                _strip(copies, spec, latest),
                *(gr.skip(),) * 6,
                f"{SAMPLING} all lanes in lock-step... {time_left(progress)}",
            )

        def finished(comparison, seconds: float):
            # the strip ends on every cell's final image: a short lane's last preview may be rounds old
            final = _strip(copies, spec, {i: cell.latents for i, cell in enumerate(comparison.cells)})
            return final, *comparison_outputs(bundle.name, comparison, view, axis, dropped_text(dropped))

        job = lambda callback, cancel, limit: run_comparison(copies, spec, callback, cancel, limit)  # noqa: E731
        yield from streamed(ctx, job, previews, finished)

    return gpu_event(on_compare, estimate)


def _strip(models, spec: ComparisonSpec, x0: dict) -> list:
    """The live strip: (preview, cell name) for every lane reported so far, in grid order, each decoded by its
    own model's VAE (a reference lane that is not a cell runs after the cells and is left out)."""
    keys = spec.keys()
    shown = [k for k in sorted(x0) if k < len(keys)]
    bundles = {name: c.base for name, c in models.items()} if isinstance(models, dict) else {"": models.base}
    pictures = {}
    for name, bundle in bundles.items():
        mine = [k for k in shown if keys[k].model == name]
        if mine:
            pictures.update(zip(mine, preview_images(bundle, [x0[k] for k in mine], size=96)))
    return [(pictures[k], spec.key_name(keys[k])) for k in shown]


def _rows(picked, variants) -> list[str] | str:
    """The picked samplers plus the variants typed in (a comma list; commas inside [...] belong to one)."""
    typed = split_list(variants) if isinstance(variants, str) and variants.strip() else []
    if not typed:
        return picked
    if isinstance(picked, str):
        picked = split_list(picked)
    return [*(picked or []), *typed]
