"""The Generate tab: classes x images per class with one sampler, live previews, PNGs that carry their parameters."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from dit_demo.app import ids
from dit_demo.app.context import (
    CFG_CHANNEL_CHOICES,
    SAMPLING,
    AppContext,
    guidance_settings,
    model_event,
    preset_choices,
    random_seed,
    sampler_choices,
    sampler_info,
    streamed,
    time_left,
)
from dit_demo.app.errors import user_errors
from dit_demo.app.form_rules import steps_note, wire_class_note, wire_steps
from dit_demo.app.outputs import file_name, save_output
from dit_demo.app.preview import preview_images
from dit_demo.app.zerogpu import gpu_event
from dit_demo.lab.outputs.generate import generate, generation_lanes
from dit_demo.lab.outputs.pngmeta import read_parameters
from dit_demo.runtime.engine import Progress
from dit_demo.runtime.levers import preset
from dit_demo.runtime.parsing import MAX_CFG, MAX_SEED, as_float
from dit_demo.runtime.request import check_lanes, lane_work


@dataclass(kw_only=True)
class GenerateTab:
    classes: gr.Dropdown
    sampler: gr.Dropdown
    steps: gr.Slider
    cfg: gr.Slider
    channels: gr.Radio
    seed: gr.Number
    per_class: gr.Slider
    speed: gr.Radio
    options: gr.Textbox
    gallery: gr.Gallery
    send: gr.Button
    picked: gr.State  # index of the image clicked in the gallery (0 until one is)
    steps_mine: gr.State  # True once Steps holds a value a person set (typed, dragged or restored)
    steps_told: gr.Markdown  # which rule Steps follows now


def build_generate_tab(ctx: AppContext) -> GenerateTab:
    """The tab's widgets (inside the current Blocks) and its events; /generate is the API."""
    bundle, defaults = ctx.slot.get(), ctx.defaults()
    choices = bundle.labels.choices()
    with gr.Row():
        with gr.Column(scale=2):
            classes = gr.Dropdown(
                choices,
                value=[choices[0]],
                multiselect=True,
                filterable=True,
                allow_custom_value=False,
                label="Classes (type to search names and synonyms)",
                elem_id=ids.GEN_CLASSES,
            )
            class_told = gr.Markdown(elem_id=ids.GEN_CLASS_NOTE)
            with gr.Row():
                run = gr.Button("Generate", variant="primary", elem_id=ids.GEN_RUN)
                stop = gr.Button("Stop", elem_id=ids.GEN_STOP, interactive=False)
            sampler = gr.Dropdown(
                sampler_choices(defaults.family),
                value=defaults.sampler,
                allow_custom_value=False,
                label="Sampler",
                elem_id=ids.GEN_SAMPLER,
            )
            info = gr.Markdown(sampler_info(defaults.sampler), elem_classes="sampler-info")
            with gr.Row():
                steps = gr.Slider(
                    1, defaults.max_steps, value=defaults.steps_for(), step=1, label="Steps", elem_id=ids.GEN_STEPS
                )
                cfg = gr.Slider(
                    0, MAX_CFG, value=defaults.cfg, step=0.125, label="CFG scale", elem_id=ids.GEN_CFG,
                    **guidance_settings(bundle),
                )  # fmt: skip
            steps_told = gr.Markdown(steps_note(defaults, defaults.sampler), elem_id=ids.GEN_STEPS_NOTE)
            with gr.Row():
                seed = gr.Number(0, precision=0, label="Seed", minimum=0, maximum=MAX_SEED, elem_id=ids.GEN_SEED)
                dice = gr.Button("🎲 random seed", size="sm")
                per_class = gr.Slider(1, 8, value=1, step=1, label="Images per class")
            speed = gr.Radio(
                preset_choices(bundle),
                value="exact",
                label="Speed preset",
                elem_id=ids.GEN_PRESET,
            )
            with gr.Accordion("More: sampler options, guidance channels", open=False):
                options = gr.Textbox(
                    "",
                    label="Sampler options (optional), e.g. karras=true or spacing=linspace",
                    elem_id=ids.GEN_OPTIONS,
                )
                channels = gr.Radio(CFG_CHANNEL_CHOICES, value=0, label="Guidance on")
        with gr.Column(scale=3):
            preview = gr.Gallery(
                label="Live preview: where each image is heading", columns=6, height=260, elem_id=ids.GEN_PREVIEW
            )
            summary = gr.Markdown(elem_id=ids.GEN_STATUS)
            gallery = gr.Gallery(
                label="Images (PNG with parameters)", columns=4, format="png", elem_id=ids.GEN_IMAGES, interactive=False
            )
            with gr.Row():
                reuse = gr.Button("♻ reuse this image's seed", size="sm", elem_id=ids.GEN_REUSE, interactive=False)
                send = gr.Button(
                    "→ send to Compare (class, seed, cfg, sampler)", size="sm", elem_id=ids.GEN_SEND, interactive=False
                )
            picked = gr.State(0)
    steps_mine = gr.State(False)
    tab = GenerateTab(
        classes=classes,
        sampler=sampler,
        steps=steps,
        cfg=cfg,
        channels=channels,
        seed=seed,
        per_class=per_class,
        speed=speed,
        options=options,
        gallery=gallery,
        send=send,
        picked=picked,
        steps_mine=steps_mine,
        steps_told=steps_told,
    )

    dice.click(random_seed, outputs=tab.seed, api_visibility="private")
    gallery.select(_picked_index, None, picked, api_visibility="private")
    reuse.click(
        lambda images, index: picked_parameters(images, index)["seed"],
        [gallery, picked],
        seed,
        api_visibility="private",
    )

    wire_class_note(lambda: ctx.slot.get().labels, classes, class_told)
    # a sampler says what it is whoever sets it; its recommended steps apply only while Steps is untouched
    tab.sampler.change(sampler_info, tab.sampler, info, api_visibility="private")
    wire_steps(defaults, tab.sampler, tab.steps, steps_mine, steps_told)
    inputs = [
        tab.classes,
        tab.sampler,
        tab.steps,
        tab.cfg,
        tab.channels,
        tab.seed,
        tab.per_class,
        tab.speed,
        tab.options,
    ]
    outputs = [preview, gallery, summary]
    event = model_event(run, stop, summary, gallery, _on_generate(ctx), inputs, outputs, api_name="generate")
    # reuse and send act on a generated image: offered once there is one
    event.success(lambda: (gr.Button(interactive=True),) * 2, None, [reuse, send], api_visibility="private")
    return tab


def _picked_index(event: gr.SelectData) -> int:
    return event.index


@user_errors
def picked_parameters(images, index) -> dict:
    """The parameters in the PNG of the gallery image clicked last (the first if none was)."""
    if not images:
        raise ValueError("Generate an image first: its seed and settings come from its PNG.")
    item = images[min(max(int(index or 0), 0), len(images) - 1)]
    path = item[0] if isinstance(item, (list, tuple)) else item
    return read_parameters(getattr(path, "path", path))


def _generate_request(ctx: AppContext, classes, sampler, steps, cfg, channels, seed, per_class, speed, options):
    """The form's values as the model copy to run and the lanes to run on it (``ValueError`` if bad)."""
    levers = preset(speed or "exact", ctx.slot.get().device)
    bundle = ctx.slot.model_for(levers)
    cfg = as_float("CFG scale", cfg, 0.0, MAX_CFG)  # the API must send one: None is not "the default" here
    seed = 0 if seed is None else seed
    if isinstance(options, str) and options.strip() and isinstance(sampler, str):
        sampler = f"{sampler}[{options.strip()}]"  # a variant: checked with the sampler's own options
    lanes = generation_lanes(classes, sampler, steps, cfg, seed, per_class, channels, levers=levers.lane)
    if isinstance(classes, list):  # counted above; now every bad class is named at once, not the first only
        bundle.labels.resolve_all(classes)
    return levers, bundle, lanes


def _on_generate(ctx: AppContext):
    def estimate(classes, sampler, steps, cfg, channels, seed, per_class, speed="exact", options=""):
        """Seconds the request should take, before anything runs (None: the model is not measured yet)."""
        _, bundle, lanes = _generate_request(
            ctx, classes, sampler, steps, cfg, channels, seed, per_class, speed, options
        )
        return ctx.estimate(lane_work(bundle, check_lanes(bundle, lanes)))

    @user_errors
    def on_generate(classes, sampler, steps, cfg, channels, seed, per_class, speed="exact", options=""):
        levers, bundle, lanes = _generate_request(
            ctx, classes, sampler, steps, cfg, channels, seed, per_class, speed, options
        )

        def previews(progress: Progress):
            images = preview_images(bundle, [progress.x0[k] for k in sorted(progress.x0)])
            return images, gr.skip(), f"{SAMPLING}... {time_left(progress)}"

        def finished(made, seconds: float):
            files = [(save_output(r.image, r.parameters, _name(r.parameters)), r.caption()) for r in made]
            return (
                gr.skip(),
                files,
                f"{len(made)} image(s), {made[0].nfe} NFE each, {seconds:.2f}s in all on {bundle.device}; "
                f"{speed or 'exact'} preset: {levers.describe()}",
            )

        # the budget is measured on the exact model: an upper bound for the fast one
        job = lambda callback, cancel, limit: generate(bundle, lanes, callback, cancel, limit)  # noqa: E731
        yield from streamed(ctx, job, previews, finished)

    return gpu_event(on_generate, estimate)


def _name(p: dict) -> str:
    return file_name(p["class_name"], p["sampler"], p["steps"], f"cfg{p['cfg_scale']:g}", f"seed{p['seed']}")
