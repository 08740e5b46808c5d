"""The model row: which model is loaded, and switching to another among an allowlist."""

from __future__ import annotations

import gradio as gr

from dit_demo.app import ids
from dit_demo.app.compare_tab import CompareTab
from dit_demo.app.context import MODEL_EVENTS, NO_GUIDANCE, AppContext, guidance_settings
from dit_demo.app.errors import user_errors
from dit_demo.app.generate_tab import GenerateTab
from dit_demo.runtime.bundle import DiTBundle


def loaded_text(bundle: DiTBundle) -> str:
    text = f"Loaded: **{bundle.name}** ({bundle.num_classes} classes, {bundle.image_size}px, {bundle.device})"
    return text if bundle.has_null_class else f"{text}. {NO_GUIDANCE}"


def build_model_row(ctx: AppContext) -> tuple[gr.Dropdown, gr.Button, gr.Markdown]:
    with gr.Row():
        box = gr.Dropdown(
            ctx.slot.allowed,
            value=ctx.slot.name,
            label="Model",
            scale=3,
            elem_id=ids.MODEL_NAME,
            allow_custom_value=False,
        )
        # only the offered models can load, so the box takes no typed value it would then reject
        button = gr.Button("Load model", scale=1, elem_id=ids.MODEL_LOAD)
        status = gr.Markdown(loaded_text(ctx.slot.get()))
    return box, button, status


def wire_model_row(ctx: AppContext, row, generate: GenerateTab, compare: CompareTab) -> None:
    """/load_model: on success the class pickers and guidance follow the new model; on failure nothing changes."""
    box, button, status = row

    @user_errors
    def on_load_model(name, progress=gr.Progress()):
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"Choose a model: one of {', '.join(ctx.slot.allowed)}.")
        progress(0.1, desc=f"Loading {name} (downloads on first use)...")
        bundle = ctx.slot.load(name)
        progress(0.9, desc="Measuring the model's speed for the per-request limit...")
        ctx.measure_now()
        choices = bundle.labels.choices()
        return (
            loaded_text(bundle),
            gr.Dropdown(choices=choices, value=[choices[0]]),
            gr.Dropdown(choices=choices, value=choices[0]),
            gr.Slider(value=bundle.default_cfg, **guidance_settings(bundle)),
            gr.Textbox(value=f"{bundle.default_cfg:g}", **guidance_settings(bundle)),
        )

    loading = button.click(
        on_load_model,
        box,
        [status, generate.classes, compare.class_, generate.cfg, compare.cfgs],
        api_name="load_model",
        preprocess=False,  # a name that is not offered gets our message, not Gradio's
        **{**MODEL_EVENTS, "show_progress": "full"},  # loading has no previews to keep visible
    )
    # a model that failed to load is not shown as if it were: the box goes back to the loaded one
    loading.failure(lambda: ctx.slot.name, None, box, api_visibility="private")
