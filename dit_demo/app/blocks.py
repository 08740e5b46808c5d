"""The Gradio app, assembled from its parts: the model row and one module per tab. No sampling logic lives here."""

from __future__ import annotations

import gradio as gr

from dit_demo.app.compare_tab import build_compare_tab
from dit_demo.app.context import AppContext
from dit_demo.app.generate_tab import build_generate_tab
from dit_demo.app.model_box import build_model_row, wire_model_row
from dit_demo.app.model_slot import ModelSlot
from dit_demo.app.outputs import DELETE_CACHE
from dit_demo.app.reproduce_tab import build_reproduce_tab
from dit_demo.runtime.budget import DEFAULT_MAX_SECONDS

# small models make 32 px images: scale them up with hard pixels, not a blur, and whole
CSS = (
    "#cmp-grid img, #gen-images img, #gen-preview img, #cmp-preview img, #c-cells img"
    " {image-rendering: pixelated; object-fit: contain;} .sampler-info {font-size: 0.9em;}"
)


# Ctrl+Enter (Cmd+Enter on a Mac) runs the tab in view, from any field of it
SHORTCUTS_JS = """
() => {
  document.addEventListener("keydown", (event) => {
    if (event.key !== "Enter" || !(event.ctrlKey || event.metaKey)) return;
    for (const id of ["gen-run", "cmp-run"]) {
      const button = document.getElementById(id);
      if (button && button.offsetParent !== null) { event.preventDefault(); button.click(); return; }
    }
  });
}
"""


def build_ui(slot: ModelSlot, startup_warning: str = "", max_request_seconds: float = DEFAULT_MAX_SECONDS) -> gr.Blocks:
    """The app; each request may cost at most ``max_request_seconds`` of estimated work (0: no limit)."""
    ctx = AppContext(slot, max_request_seconds)
    ctx.budget()  # measure the loaded model now, not during the first request
    with gr.Blocks(title="DiT Sampler Lab", delete_cache=DELETE_CACHE) as demo:
        gr.Markdown(
            "# DiT Sampler Lab\nClass-conditional DiT: generate, and compare samplers and step counts on the same seed."
        )
        if startup_warning:
            gr.Markdown(f"**Warning:** {startup_warning}")
        model_row = build_model_row(ctx)
        with gr.Tabs() as tabs:
            with gr.Tab("Generate", id="generate"):
                generate = build_generate_tab(ctx)
            with gr.Tab("Compare", id="compare"):
                compare = build_compare_tab(ctx)
            with gr.Tab("Reproduce", id="reproduce"):
                build_reproduce_tab(ctx, tabs, generate, compare)
        wire_model_row(ctx, model_row, generate, compare)
    return demo
