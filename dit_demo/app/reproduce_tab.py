"""Parameters back into forms: the Reproduce tab (a PNG made by the app refills the Generate or
Compare tab, and can run again), and Generate's "send to Compare"."""

from __future__ import annotations

from pathlib import Path

import gradio as gr
from PIL import UnidentifiedImageError

from dit_demo.app import ids
from dit_demo.app.compare_tab import CompareTab
from dit_demo.app.context import AppContext, channel_choice, class_choice
from dit_demo.app.errors import user_errors
from dit_demo.app.form_rules import steps_note
from dit_demo.app.generate_tab import GenerateTab, picked_parameters
from dit_demo.lab.outputs.pngmeta import read_parameters
from dit_demo.lab.outputs.records import BatchRecord, ComparisonRecord, ImageRecord, check_same_model, record_from_dict


def build_reproduce_tab(ctx: AppContext, tabs: gr.Tabs, generate: GenerateTab, compare: CompareTab) -> None:
    """The tab's widgets (inside the current Blocks) and its event; /reproduce is the API."""
    gr.Markdown("Drop a PNG made by this app: its parameters go back into the Generate or Compare tab.")
    with gr.Row():
        with gr.Column():
            upload = gr.File(label="PNG from DiT Sampler Lab", file_types=[".png"], type="filepath", elem_id=ids.R_FILE)
            message = gr.Markdown(elem_id=ids.R_TEXT)
            again = gr.Button("Run it again", variant="primary", elem_id=ids.R_RUN, interactive=False)
            target = gr.Textbox(visible=False)  # the run button of the restored tab, for "Run it again"
        with gr.Column():
            shown = gr.Image(label="The dropped image", type="filepath", elem_id=ids.R_IMAGE, interactive=False)
            params_view = gr.JSON(label="Its parameters", elem_id=ids.R_PARAMS)

    @user_errors
    def on_reproduce(path, switch: bool = True):
        if not path:
            raise ValueError("Drop a PNG saved by DiT Sampler Lab.")
        try:
            params = read_parameters(path)
        except (OSError, UnidentifiedImageError):
            raise ValueError("That file is not a readable PNG; drop a PNG saved by DiT Sampler Lab.") from None
        try:
            restored = restore(ctx, params, tabs, generate, compare, message)
            if not switch:  # dropped in the page: stay here, with the image and its parameters in view
                restored[tabs] = gr.Tabs()
            return restored
        except (KeyError, TypeError) as exc:
            raise ValueError(
                f"This PNG's parameters are incomplete (field {exc} is missing or of the wrong kind); "
                "it cannot be restored."
            ) from None

    # the API's outputs keep their order: the tab, the Generate fields, Compare's models, the other Compare
    # fields, the message (the models come first so that the last fields keep the places callers read)
    fields = [f for f in vars(generate).values() if isinstance(f, gr.components.FormComponent)]
    compare_fields = [f for f in vars(compare).values() if f is not compare.models]
    outputs = [tabs, *fields, compare.models, *compare_fields, message]

    def why_not_restored(path) -> str:
        """The refusal beside the file's name, where it stays (the red box closes): asked again, since a
        failed event hands its listeners no message."""
        try:
            on_reproduce(path, False)
        except gr.Error as exc:
            return f"**Not restored: {Path(str(path or 'the file')).name}.** {exc.message}"
        return ""

    # dropping fills the form without leaving this tab, which shows the image and its parameters;
    # "Run it again" opens the form's tab and runs it
    dropped = upload.upload(lambda path: on_reproduce(path, False), upload, outputs, api_name="reproduce")
    dropped.then(_show, upload, [shown, params_view, target], api_visibility="private")

    # a PNG that cannot be restored leaves nothing of an earlier one (its image, parameters, "Restored"
    # line) and nothing to run again
    def cleared(path):
        return why_not_restored(path), gr.Button(interactive=False), None, None

    dropped.failure(cleared, upload, [message, again, shown, params_view], api_visibility="private")
    dropped.success(lambda: gr.Button(interactive=True), None, again, api_visibility="private")
    # restored steps were chosen by the image's maker: a change of sampler keeps them, as it keeps typed ones
    dropped.success(
        lambda sampler, steps: (True, steps_note(ctx.defaults(), sampler, steps)),
        [generate.sampler, generate.steps],
        [generate.steps_mine, generate.steps_told],
        api_visibility="private",
    )
    # run again = refill the form, then press its run button: the same path as a click, with its checks
    again.click(on_reproduce, upload, outputs, api_visibility="private").then(None, target, None, js=CLICK_WHEN_SHOWN)


# a tab not opened yet has no buttons in the page: wait (up to 10 s) for the restored tab's to appear
CLICK_WHEN_SHOWN = """
(id) => new Promise((done) => {
  const until = Date.now() + 10000;
  const attempt = () => {
    const button = document.getElementById(id);
    if (button && button.offsetParent !== null) { button.click(); done(); }
    else if (Date.now() < until) { requestAnimationFrame(attempt); }
    else { done(); }
  };
  attempt();
})
"""


def _show(path):
    """The dropped image and its parameters, when it is a PNG of ours (the message says why otherwise)."""
    try:
        params = read_parameters(path)
    except (ValueError, OSError, UnidentifiedImageError):
        return None, None, ""
    return path, params, ids.CMP_RUN if params.get("mode") == "compare" else ids.GEN_RUN


def wire_send_to_compare(ctx: AppContext, tabs: gr.Tabs, generate: GenerateTab, compare: CompareTab) -> None:
    """Generate's "send to Compare": the clicked image's class, seed, cfg and sampler become a comparison."""

    @user_errors
    def send(images, index, rows):
        made = ImageRecord.from_dict(picked_parameters(images, index))
        rows, variants = list(rows or []), ""
        if "[" in made.sampler:
            variants = made.sampler
        elif made.sampler not in rows:
            rows.append(made.sampler)
        return (
            gr.Tabs(selected="compare"),
            class_choice(ctx.slot.get(), made.class_id),
            made.seed,
            f"{made.cfg_scale:g}",
            rows,
            variants,
        )

    generate.send.click(
        send,
        [generate.gallery, generate.picked, compare.samplers],
        [tabs, compare.class_, compare.seed, compare.cfgs, compare.samplers, compare.variants],
        api_visibility="private",
    )


def restore(ctx: AppContext, params: dict, tabs, generate: GenerateTab, compare: CompareTab, message) -> dict:
    """New values for the form a PNG's ``params`` came from, keyed by component (the others stay as they are)."""
    bundle = ctx.slot.get()
    record = record_from_dict(params)
    check_same_model(record, bundle.name, bundle.extras.get("weights"), bundle.parameterization.family)
    if isinstance(record, ComparisonRecord):
        spec = record.spec
        variants = [name for name in spec.samplers if "[" in name]  # the dropdown offers registered names only
        return {
            tabs: gr.Tabs(selected="compare"),
            # a plain value keeps the API's answer a list; the Models box's change then offers every family's
            compare.samplers: [name for name in spec.samplers if "[" not in name],
            compare.variants: ", ".join(variants),
            compare.seeds: spec.seeds,
            compare.presets: list(spec.presets),
            compare.models: list(spec.models),
            compare.steps: ",".join(map(str, spec.steps)),
            compare.cfgs: ",".join(f"{c:g}" for c in spec.cfg_scales),
            compare.class_: class_choice(bundle, spec.class_id),
            compare.seed: spec.seed,
            compare.channels: channel_choice(spec.cfg_channels),
            compare.reference: f"{spec.reference[0]}@{spec.reference[1]}" if spec.reference else "",
            message: f"Restored a comparison of {len(spec.samplers)} samplers x {len(spec.steps)} step counts"
            + (f" x {spec.seeds} seeds" if spec.seeds > 1 else "")
            + (f" on {len(spec.models)} models: {', '.join(spec.models)}." if spec.models else ".")
            + _spacing_note(spec.spacing),
        }
    first = ""
    if isinstance(record, BatchRecord):  # a grid of several images: the first one, said so
        first, record = f" (the first of the {len(record.images)} images in this grid)", record.images[0]
    return {
        tabs: gr.Tabs(selected="generate"),
        generate.classes: [class_choice(bundle, record.class_id)],
        generate.sampler: record.sampler.split("[", 1)[0],
        generate.options: record.sampler.partition("[")[2].removesuffix("]"),
        generate.steps: record.steps,
        generate.cfg: record.cfg_scale,
        generate.channels: channel_choice(record.cfg_channels),
        generate.seed: record.seed,
        generate.per_class: 1,
        generate.speed: record.preset or ("fast" if record.took_shortcuts else "exact"),
        message: f"Restored{first}: {record.class_name}, {record.sampler} {record.steps} steps, "
        f"cfg {record.cfg_scale:g}, seed {record.seed}." + _spacing_note(record.spacing),
    }


def _spacing_note(spacing: str | None) -> str:
    if not spacing:
        return ""
    return (
        f" It was made on the {spacing!r} step grid, which this page does not offer yet: the page runs the "
        f"default grid; `python -m dit_demo ... --spacing {spacing}` repeats it exactly."
    )
