"""The Gradio app, assembled from its parts: the model row and one module per tab. No sampling logic lives here."""

from __future__ import annotations

import gradio as gr

from dit_demo.app.compare_tab import build_compare_tab
from dit_demo.app.context import AppContext
from dit_demo.app.generate_tab import build_generate_tab
from dit_demo.app.model_box import build_model_row, wire_model_row
from dit_demo.app.model_slot import ModelSlot
from dit_demo.app.outputs import DELETE_CACHE
from dit_demo.app.reproduce_tab import build_reproduce_tab, wire_send_to_compare
from dit_demo.runtime.budget import DEFAULT_MAX_SECONDS

# small models make 32 px images: shown whole, with hard pixels at a whole multiple of their size
# (PAGE_JS picks the multiple); images shrunk to fit are smoothed, so grid labels stay legible
SCALED = "#cmp-grid img, #gen-images img, #gen-preview img, #cmp-preview img, #r-image img"
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
    # a failed event leaves every component as it was: no red "Error" pill over it (the message is in
    # its box at the top right, which names the field, and on the tab's status line)
    " [data-testid='status-tracker'] .error {display: none;}"
    # captions under the images, not over them
    " #gen-images .caption-label {position: static; max-width: none; white-space: normal; border: none;"
    " background: none;}"
)


# the choice outlives a reload (PAGE_JS applies it when the page opens)
TOGGLE_DARK = "() => { localStorage.setItem('dit-dark', document.body.classList.toggle('dark') ? '1' : '0'); }"

# Ctrl+Enter (Cmd+Enter on a Mac) runs the tab in view, from any field of it; images are sized to a
# whole multiple of their pixels that fits their box and the window
PAGE_JS = """
() => {
  if (localStorage.getItem("dit-dark") === "1") document.body.classList.add("dark");
  document.addEventListener("keydown", (event) => {
    if (event.key !== "Enter" || !(event.ctrlKey || event.metaKey)) return;
    for (const id of ["gen-run", "cmp-run"]) {
      const button = document.getElementById(id);
      if (button && button.offsetParent !== null) { event.preventDefault(); button.click(); return; }
    }
  });
  // on a phone the form fills the screen: a run brings its live previews and status into view
  document.addEventListener("click", (event) => {
    const run = event.target.closest && event.target.closest("#gen-run, #cmp-run");
    if (!run || window.innerWidth > 700) return;
    const results = document.getElementById(run.id === "gen-run" ? "gen-preview" : "cmp-preview");
    if (results) results.scrollIntoView({block: "start"});
  });
  const SCALED = "%s";
  const fit = (img) => {
    if (!img || !img.isConnected) return;  // replaced by a newer image since it loaded
    const w = img.naturalWidth, h = img.naturalHeight;
    if (!w || !h || !img.parentElement) return;
    if (document.fullscreenElement && document.fullscreenElement.contains(img)) {
      img.style.width = img.style.height = img.style.maxWidth = "";  // fullscreen: the CSS fills the screen
      return;
    }
    // the room: the smallest clipping box around the image (a gallery's scroll area), and the window
    let roomW = Infinity, roomH = window.innerHeight * 0.85;
    for (let e = img.parentElement, i = 0; e && i < 8; e = e.parentElement, i++) {
      // the component's own box follows its image's height, so only its width (the layout's) counts
      if (e.id) { roomW = Math.min(roomW, e.clientWidth || Infinity); break; }
      if (getComputedStyle(e).overflowY !== "visible") {
        roomW = Math.min(roomW, e.clientWidth || Infinity);
        roomH = Math.min(roomH, e.clientHeight || Infinity);
      }
    }
    let k = 0.96 * Math.min(roomW / w, roomH / h);
    if (k >= 1) {
      // an enlarged small image also stays above the fold: from its component's first image to the
      // bottom of the window, unless that is tiny (so every image of a gallery gets the same size)
      const first = (img.closest("[id]") || img).querySelector("img") || img;
      const top = first.parentElement.getBoundingClientRect().top + window.scrollY;
      const fold = Math.max(window.innerHeight - top - 24, 0.3 * window.innerHeight);
      k = Math.max(1, Math.min(k, 0.96 * fold / h));
    }
    const whole = k >= 1 ? Math.floor(k) : k;  // shrinking: any factor, smoothed
    img.style.width = Math.round(w * whole) + "px";
    img.style.height = Math.round(h * whole) + "px";
    img.style.maxWidth = "none";
    img.classList.toggle("px-whole", k >= 1);
  };
  const fitAll = () => document.querySelectorAll(SCALED).forEach(fit);
  // fitted when loaded, and again once the outputs around it have settled (a status line above it)
  document.addEventListener("load", (event) => {
    // the event is over when the timer fires (its target is null by then): keep the image itself
    const img = event.target;
    if (img && img.matches && img.matches(SCALED)) { fit(img); setTimeout(() => fit(img), 300); }
  }, true);
  window.addEventListener("resize", fitAll);
  document.addEventListener("fullscreenchange", fitAll);
}
""".replace("%s", SCALED)


def build_ui(slot: ModelSlot, startup_warning: str = "", max_request_seconds: float = DEFAULT_MAX_SECONDS) -> gr.Blocks:
    """The app; each request may cost at most ``max_request_seconds`` of estimated work (0: no limit)."""
    ctx = AppContext(slot, max_request_seconds)
    ctx.measure_now()
    with gr.Blocks(title="DiT Sampler Lab", delete_cache=DELETE_CACHE) as demo:
        with gr.Row():
            gr.Markdown(
                "# DiT Sampler Lab\nClass-conditional DiT: generate, and compare samplers and step counts on the same seed."
            )
            dark = gr.Button("🌓 dark / light", size="sm", scale=0, elem_id="dark-toggle")
        dark.click(None, js=TOGGLE_DARK)
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
        wire_send_to_compare(ctx, tabs, generate, compare)
        wire_model_row(ctx, model_row, generate, compare)
    return demo
