"""The Gradio app, assembled from its parts: the model row and one module per tab. No sampling logic lives here."""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from dit_demo.app import ids
from dit_demo.app.compare_tab import build_compare_tab
from dit_demo.app.context import AppContext
from dit_demo.app.generate_tab import build_generate_tab
from dit_demo.app.mcp_tools import add_agent_tools
from dit_demo.app.model_box import build_model_row, wire_model_row
from dit_demo.app.model_slot import ModelSlot
from dit_demo.app.outputs import DELETE_CACHE
from dit_demo.app.quality_link import wire_quality_link
from dit_demo.app.quality_tab import build_quality_tab, views
from dit_demo.app.reproduce_tab import build_reproduce_tab, wire_send_to_compare
from dit_demo.lab.quality.answers import QualityData
from dit_demo.runtime.budget import DEFAULT_MAX_SECONDS

# small models make 32 px images: shown whole, with hard pixels at a whole multiple of their size
# (PAGE_JS picks the multiple); images shrunk to fit are smoothed, so grid labels stay legible
SCALED = "#cmp-grid img, #gen-images img, #r-image img"
CSS = (
    f"{SCALED} {{object-fit: contain;}} img.px-whole {{image-rendering: pixelated;}}"
    " .sampler-info {font-size: 0.9em;}"
    # the grid's title and step headers sit at its top edge: keep Gradio's label and buttons off them
    " #cmp-grid .image-container {padding-top: 2.2em;}"
    # fullscreen enlarges the grid to the screen (sized by PAGE_JS everywhere else)
    " :fullscreen img {width: 100%; height: 100%; object-fit: contain;}"
    # a gallery cell is as tall as its (whole-multiple) image, so the image starts at the top of it
    " #gen-images .thumbnail-item {height: auto; aspect-ratio: auto; align-items: flex-start;}"
    # a live preview is as big as its image: a lone one is not stretched to a square of the box's width,
    # whose middle would lie below the preview box's fold
    " :is(#gen-preview, #cmp-preview) .thumbnail-item {height: auto; aspect-ratio: auto; width: auto;}"
    # previews come at their shown size (enlarged on the server with hard pixels): every one alike
    " :is(#gen-preview, #cmp-preview) img {width: auto; height: auto; object-fit: none;"
    " image-rendering: pixelated;}"
    # a failed event leaves every component as it was: no red "Error" pill over it (the message is in
    # its box at the top right, which names the field, and on the tab's status line)
    " [data-testid='status-tracker'] .error {display: none;}"
    # the grid's dark copy is drawn over the grid by the page script, never shown itself
    " #cmp-grid-dark {display: none !important;}"
    # a chart wider than its box (a phone) starts at its left edge and scrolls, instead of being centred
    # with its axis cut off
    " .altair.layout {justify-content: safe center; align-items: safe center; overflow-x: auto;}"
    # four tabs fit a phone's width side by side instead of two and a "more" menu
    " @media (max-width: 480px) {.tab-container > button {padding: 0 6px; font-size: 13px;}}"
    # a gallery's label sits over its top edge: its first row of images starts below it
    " :is(#gen-images, #gen-preview, #cmp-preview) .grid-wrap {padding-top: 32px;}"
    # the text typed into a multiselect picker keeps room to be read beside the chips (it wraps below them)
    " .wrap-inner .secondary-wrap {flex: 1 1 160px; min-width: 160px;}"
    " .clamp-note {font-size: 0.85em; color: var(--body-text-color-subdued); padding-top: 4px;}"
    # captions under the images, not over them
    " :is(#gen-images, #cmp-preview) .caption-label {position: static; max-width: none; white-space: normal; border: none;"
    " background: none;}"
)


# the choice outlives a reload (PAGE_JS applies it when the page opens)
TOGGLE_DARK = (
    "() => { localStorage.setItem('dit-dark', document.body.classList.toggle('dark') ? '1' : '0');"
    " window.ditDarkGrid && window.ditDarkGrid(); }"
)

# what the page does beyond Gradio (page.js): Ctrl+Enter runs the tab in view, Enter in a picker takes
# an exact match, images are sized to a whole multiple of their pixels, a run on a phone scrolls to its
# results, the dark/light choice outlives a reload
PAGE_JS = (Path(__file__).with_name("page.js")).read_text().replace("%SCALED%", SCALED)


def build_ui(
    slot: ModelSlot,
    startup_warning: str = "",
    max_request_seconds: float = DEFAULT_MAX_SECONDS,
    quality_data: QualityData | None = None,
) -> gr.Blocks:
    """The app; each request may cost at most ``max_request_seconds`` of estimated work (0: no limit).
    ``quality_data``: the sweeps the Quality tab opens with."""
    ctx = AppContext(slot, max_request_seconds)
    ctx.measure_now()
    with gr.Blocks(title="DiT Sampler Lab", delete_cache=DELETE_CACHE) as demo:
        with gr.Row():
            gr.Markdown(
                "# DiT Sampler Lab\nClass-conditional DiT: generate, and compare samplers and step counts on the same seed."
            )
            dark = gr.Button("🌓 dark / light", size="sm", scale=0, elem_id=ids.PAGE_DARK)
        dark.click(None, js=TOGGLE_DARK)
        if startup_warning:
            gr.Markdown(f"**Warning:** {startup_warning}")
        model_row = build_model_row(ctx)
        with gr.Tabs() as tabs:
            with gr.Tab("Generate", id="generate"):
                generate = build_generate_tab(ctx)
            with gr.Tab("Compare", id="compare"):
                compare, compare_results, compare_event = build_compare_tab(ctx)
            with gr.Tab("Reproduce", id="reproduce"):
                build_reproduce_tab(ctx, tabs, generate, compare)
            with gr.Tab("Quality", id="quality"):
                quality = build_quality_tab(quality_data)
        wire_send_to_compare(ctx, tabs, generate, compare)
        wire_model_row(ctx, model_row, generate, compare)
        wire_quality_link(compare_results, compare_event, quality, tabs)
        demo.load(views, quality.inputs, quality.outputs, api_visibility="private", queue=False)
        add_agent_tools(demo, ctx, quality_data)  # last: it takes every other endpoint off the MCP tool list
    return demo
