"""The Gradio interface. It maps widgets to the engine's calls; no sampling logic lives here."""

from __future__ import annotations

import dataclasses
import functools
import inspect
import logging
import math
import os
import random
import tempfile
import threading
import time
import uuid
from pathlib import Path

import gradio as gr
import pandas as pd
from PIL import UnidentifiedImageError

import samplers
from dit_demo.app.model_slot import EMBEDDED_NAME, ModelSlot
from dit_demo.app.preview import preview_images
from dit_demo.app.streaming import stream
from dit_demo.lab.compare import ComparisonSpec, run_comparison
from dit_demo.lab.generate import generate, generation_lanes
from dit_demo.lab.pngmeta import read_parameters, save_png
from dit_demo.runtime.budget import DEFAULT_MAX_SECONDS, Budget, CostModel
from dit_demo.runtime.engine import Progress
from dit_demo.runtime.loader import DiTBundle
from dit_demo.runtime.request import MAX_CFG, MAX_SEED

OUTPUT_DIR = Path(tempfile.gettempdir()) / "dit_sampler_lab"
OUTPUT_MAX_AGE = 3600  # seconds an output PNG stays on disk; Gradio's cache is swept on the same clock
DELETE_CACHE = (600, OUTPUT_MAX_AGE)  # Gradio: every 10 minutes, delete its files older than an hour
PREVIEW_INTERVAL = 0.25  # seconds between live previews at least; streaming.stream spaces them further when they cost more
log = logging.getLogger(__name__)
CFG_CHANNEL_CHOICES = [("all latent channels (4)", 0), ("first 3, as the original DiT code", 3)]
CSS = "#compare-grid img {image-rendering: pixelated;} .sampler-info {font-size: 0.9em;}"

try:  # ZeroGPU on Hugging Face Spaces: only when the `spaces` package is there
    import spaces

    gpu = spaces.GPU(duration=120) if os.environ.get("SPACE_ID") else (lambda fn: fn)
except ImportError:
    def gpu(fn):
        return fn


def _as_gr_error(exc: Exception) -> gr.Error:
    if isinstance(exc, (ValueError, FileNotFoundError)):
        return gr.Error(str(exc), print_exception=False)
    # a bug, not bad input: the log keeps the traceback, the user gets a sentence and the app keeps serving
    log.exception("request failed")
    return gr.Error(f"Something went wrong inside the app ({type(exc).__name__}); nothing was changed. "
                    "Please report it with the inputs you used.", print_exception=False)


def user_errors(fn):
    """Turn the engine's ValueErrors into readable gr.Error popups; the app keeps serving."""
    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def stream_wrapper(*args, **kwargs):
            try:
                yield from fn(*args, **kwargs)
            except gr.Error:
                raise
            except Exception as exc:
                raise _as_gr_error(exc) from None

        return stream_wrapper

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except Exception as exc:
            raise _as_gr_error(exc) from None

    return wrapper


class CostCache:
    """The measured cost of the loaded model (measured at load, so no request pays for it), and
    the server's overhead around the engine, learned from the requests it serves."""

    START_OVERHEAD = 2.0  # measured 1.5-2.5x on the embedded model on 2 cores (previews, event loop)

    def __init__(self):
        self._cost: tuple[DiTBundle, CostModel] | None = None  # the bundle is kept so its id stays unique
        self.overhead = self.START_OVERHEAD
        self._lock = threading.Lock()

    def get(self, bundle: DiTBundle) -> CostModel:
        with self._lock:
            if self._cost is None or self._cost[0] is not bundle:  # one model at a time is loaded
                self._cost = (bundle, CostModel.measure(bundle))
            return dataclasses.replace(self._cost[1], overhead=self.overhead)

    def observe(self, budget: Budget | None, seconds: float) -> None:
        """Fold a finished request's real duration into the overhead (long requests only: short ones are noise)."""
        if budget is None or not budget.estimated or seconds < 2.0:
            return
        engine_estimate = budget.estimated / budget.cost.overhead
        with self._lock:
            self.overhead = min(10.0, max(1.0, 0.5 * self.overhead + 0.5 * seconds / engine_estimate))


def _sampler_choices():
    return [(f"{s.label} ({s.nfe_per_step} NFE/step{', stochastic' if s.stochastic else ''})", s.name)
            for s in samplers.all_samplers()]


def _sampler_info(name: str | None) -> str:
    try:
        s = samplers.get(name)
    except ValueError:
        return ""
    return f"**{s.label}**: {s.description} Default {s.default_steps} steps. _{s.paper}_"


_last_sweep = [0.0]


def sweep_outputs(folder: Path = OUTPUT_DIR, max_age: float = OUTPUT_MAX_AGE, now: float | None = None) -> int:
    """Delete this app's PNGs older than ``max_age`` seconds (Gradio serves copies from its own cache)."""
    now = time.time() if now is None else now
    removed = 0
    for path in folder.glob("*.png"):
        try:
            if now - path.stat().st_mtime > max_age:
                path.unlink()
                removed += 1
        except FileNotFoundError:  # another worker swept it first
            pass
    return removed


def _save(image, parameters: dict, stem: str) -> str:
    OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
    if time.time() - _last_sweep[0] > 60:  # at most once a minute: disk stays bounded, requests stay cheap
        _last_sweep[0] = time.time()
        sweep_outputs()
    return str(save_png(image, OUTPUT_DIR / f"{stem}-{uuid.uuid4().hex[:8]}.png", parameters))


def _spacing_note(spacing: str | None) -> str:
    if not spacing:
        return ""
    return (f" It was made on the {spacing!r} step grid, which this page does not offer yet: the page runs the "
            f"default grid; `python -m dit_demo ... --spacing {spacing}` repeats it exactly.")


def _channel_choice(cfg_channels) -> int:
    """The radio's value for a stored cfg_channels: 3 is the paper's, anything else means all."""
    return 3 if cfg_channels == 3 else 0


def _eta(progress: Progress) -> str:
    if progress.nfe_done == 0:
        return ""
    remaining = progress.elapsed / progress.nfe_done * (progress.nfe_total - progress.nfe_done)
    return f"round {progress.round}/{progress.total_rounds}, {progress.elapsed:.1f}s elapsed, about {remaining:.1f}s left"


def build_ui(slot: ModelSlot, startup_warning: str = "", max_request_seconds: float = DEFAULT_MAX_SECONDS) -> gr.Blocks:
    """The app; each request may cost at most ``max_request_seconds`` of estimated work (0: no limit)."""
    bundle = slot.get()
    class_choices = bundle.labels.choices()
    costs = CostCache()

    def budget() -> Budget | None:
        return Budget(max_request_seconds, costs.get(slot.get())) if max_request_seconds > 0 else None

    budget()  # measure the loaded model now, not during the first request

    with gr.Blocks(title="DiT Sampler Lab", delete_cache=DELETE_CACHE) as demo:
        gr.Markdown("# DiT Sampler Lab\nClass-conditional DiT: generate, and compare samplers and step counts on the same seed.")
        if startup_warning:
            gr.Markdown(f"**Warning:** {startup_warning}")
        with gr.Row():
            model_box = gr.Dropdown(slot.allowed, value=slot.name, label="Model", scale=3, elem_id="model", allow_custom_value=True)
            model_btn = gr.Button("Load model", scale=1, elem_id="load-model")
            model_status = gr.Markdown(f"Loaded: **{bundle.name}** ({bundle.num_classes} classes, {bundle.image_size}px, {bundle.device})")

        with gr.Tabs() as tabs:
            with gr.Tab("Generate", id="generate"):
                with gr.Row():
                    with gr.Column(scale=2):
                        g_classes = gr.Dropdown(class_choices, value=[class_choices[0]], multiselect=True, filterable=True, allow_custom_value=True,
                                                label="Classes (type to search names and synonyms)", elem_id="g-classes")
                        g_sampler = gr.Dropdown(_sampler_choices(), value="dpmpp_2m", allow_custom_value=True, label="Sampler", elem_id="g-sampler")
                        g_info = gr.Markdown(_sampler_info("dpmpp_2m"), elem_classes="sampler-info")
                        with gr.Row():
                            g_steps = gr.Slider(1, 1000, value=25, step=1, label="Steps")
                            g_cfg = gr.Slider(0, MAX_CFG, value=bundle.default_cfg, step=0.125, label="CFG scale")
                        g_channels = gr.Radio(CFG_CHANNEL_CHOICES, value=0, label="Guidance on")
                        with gr.Row():
                            g_seed = gr.Number(0, precision=0, label="Seed", minimum=0, maximum=MAX_SEED)
                            g_dice = gr.Button("🎲 random seed", size="sm")
                            g_per_class = gr.Slider(1, 8, value=1, step=1, label="Images per class")
                        with gr.Row():
                            g_run = gr.Button("Generate", variant="primary", elem_id="generate-btn")
                            g_stop = gr.Button("Stop", variant="stop", elem_id="generate-stop")
                    with gr.Column(scale=3):
                        g_preview = gr.Gallery(label="Live preview (current x0 estimate)", columns=4, height=220)
                        g_gallery = gr.Gallery(label="Images (PNG with parameters)", columns=4, format="png", elem_id="g-gallery")
                        g_text = gr.Markdown()

            with gr.Tab("Compare", id="compare"):
                with gr.Row():
                    with gr.Column(scale=2):
                        c_samplers = gr.Dropdown(_sampler_choices(), value=["ddim", "dpmpp_2m", "euler"], multiselect=True, allow_custom_value=True,
                                                 label="Samplers (rows)", elem_id="c-samplers")
                        c_steps = gr.Textbox("10,25,50", label="Step counts (columns): 10,25,50 or 10-50 (+10) or 5-50 [4]",
                                             elem_id="c-steps")
                        c_cfgs = gr.Textbox(f"{bundle.default_cfg:g}", label="CFG scale(s): one value, or a comma list for a cfg axis", elem_id="c-cfg")
                        c_class = gr.Dropdown(class_choices, value=class_choices[0], filterable=True, allow_custom_value=True, label="Class", elem_id="c-class")
                        with gr.Row():
                            c_seed = gr.Number(0, precision=0, label="Seed", minimum=0, maximum=MAX_SEED)
                            c_dice = gr.Button("🎲", size="sm")
                        c_channels = gr.Radio(CFG_CHANNEL_CHOICES, value=0, label="Guidance on")
                        c_ref = gr.Textbox("", label="Reference (sampler@steps, e.g. ddim@250; empty = highest-step deterministic cell)")
                        with gr.Row():
                            c_run = gr.Button("Compare", variant="primary", elem_id="compare-btn")
                            c_stop = gr.Button("Stop", variant="stop", elem_id="compare-stop")
                    with gr.Column(scale=3):
                        c_preview = gr.Gallery(label="Live: every lane's x0 estimate", columns=6, height=260, elem_id="c-preview")
                        c_grid = gr.Image(label="Grid (PNG with the comparison spec)", type="filepath", format="png",
                                          elem_id="compare-grid", buttons=["download", "fullscreen"])
                        c_text = gr.Markdown(elem_id="compare-summary")
                with gr.Row():
                    c_cells = gr.Gallery(label="Cells", columns=6, format="png", elem_id="c-cells")
                with gr.Row():
                    c_table = gr.Dataframe(label="Per cell: NFE, time, distance to the reference", elem_id="c-table")
                with gr.Row():
                    c_dist_plot = gr.LinePlot(x="nfe", y="distance", color="sampler", title="Distance to the reference vs NFE",
                                              x_title="model evaluations (NFE)", y_title="latent RMSE to reference",
                                              elem_id="distance-plot")
                    c_sigma_plot = gr.LinePlot(x="step", y="log10_sigma", color="run", title="Noise levels visited",
                                               x_title="step", y_title="log10 sigma", elem_id="sigma-plot")

            with gr.Tab("Reproduce", id="reproduce"):
                gr.Markdown("Drop a PNG made by this app: its parameters go back into the Generate or Compare tab.")
                r_file = gr.File(label="PNG from DiT Sampler Lab", file_types=[".png"], type="filepath", elem_id="r-file")
                r_text = gr.Markdown(elem_id="r-text")

        # ---- events: every model event shares one concurrency group (one GPU/CPU, one job at a time)
        model_events = {"concurrency_id": "model", "concurrency_limit": 1}

        def random_seed():
            return random.randint(0, 2**31 - 1)

        g_dice.click(random_seed, outputs=g_seed, api_visibility="private")
        c_dice.click(random_seed, outputs=c_seed, api_visibility="private")
        g_sampler.change(_sampler_info, g_sampler, g_info, api_visibility="private")

        @user_errors
        def on_generate(classes, sampler, steps, cfg, channels, seed, per_class, progress=gr.Progress()):
            bundle, limit = slot.get(), budget()
            lanes = generation_lanes(classes, sampler, steps, cfg, 0 if seed is None else seed, per_class, channels)
            start = time.perf_counter()
            for item in stream(lambda callback, cancel: generate(bundle, lanes, callback, cancel, limit), PREVIEW_INTERVAL):
                if isinstance(item, Progress):
                    progress(item.nfe_done / item.nfe_total, desc=_eta(item))
                    previews = preview_images(bundle, [item.x0[k] for k in sorted(item.x0)])
                    yield previews, gr.skip(), f"Sampling... {_eta(item)}"
                    continue
                costs.observe(limit, time.perf_counter() - start)
                files = [(_save(r.image, r.parameters, "dit"), r.caption()) for r in item]
                yield gr.skip(), files, (f"{len(item)} image(s), {item[0].nfe} NFE each, "
                                         f"{time.perf_counter() - start:.2f}s in all on {bundle.device}")

        # preprocess=False: every payload reaches the request layer as sent, so a bad one gets our message
        # (Gradio's own conversion would answer "abc" or NaN with a generic error)
        g_event = g_run.click(gpu(on_generate), [g_classes, g_sampler, g_steps, g_cfg, g_channels, g_seed, g_per_class],
                              [g_preview, g_gallery, g_text], api_name="generate", preprocess=False, **model_events)
        g_stop.click(None, cancels=[g_event], api_visibility="private")

        @user_errors
        def on_compare(sampler_names, steps_text, cfg_text, class_item, seed, channels, reference, progress=gr.Progress()):
            bundle, limit = slot.get(), budget()
            spec = ComparisonSpec.build(sampler_names, steps_text, class_item, 0 if seed is None else seed, cfg_text,
                                        channels, reference, max_steps=bundle.num_train_timesteps)
            lane_names = [f"{lane.sampler} {lane.steps}" for lane in spec.lanes()]
            start = time.perf_counter()
            for item in stream(lambda callback, cancel: run_comparison(bundle, spec, callback, cancel, limit), PREVIEW_INTERVAL):
                if isinstance(item, Progress):
                    progress(item.nfe_done / item.nfe_total, desc=_eta(item))
                    keys = sorted(k for k in item.x0 if k < len(lane_names))
                    previews = preview_images(bundle, [item.x0[k] for k in keys], size=96)
                    yield (list(zip(previews, [lane_names[k] for k in keys])), *(gr.skip(),) * 5,
                           f"Sampling all lanes in lock-step... {_eta(item)}")
                    continue
                costs.observe(limit, time.perf_counter() - start)
                yield (gr.skip(), *comparison_outputs(bundle, item))

        c_inputs = [c_samplers, c_steps, c_cfgs, c_class, c_seed, c_channels, c_ref]
        c_outputs = [c_preview, c_grid, c_cells, c_table, c_dist_plot, c_sigma_plot, c_text]
        c_event = c_run.click(gpu(on_compare), c_inputs, c_outputs, api_name="compare", preprocess=False, **model_events)
        c_stop.click(None, cancels=[c_event], api_visibility="private")

        @user_errors
        def on_reproduce(path):
            if not path:
                raise ValueError("Drop a PNG saved by DiT Sampler Lab.")
            try:
                params = read_parameters(path)
            except (OSError, UnidentifiedImageError):
                raise ValueError("That file is not a readable PNG; drop a PNG saved by DiT Sampler Lab.") from None
            try:
                return _restore(params)
            except (KeyError, TypeError) as exc:
                raise ValueError(f"This PNG's parameters are incomplete (field {exc} is missing or of the wrong "
                                 "kind); it cannot be restored.") from None

        def _restore(params: dict):
            keep = gr.skip()
            if params.get("mode") == "compare":
                spec = ComparisonSpec.from_dict(params)
                ref = f"{spec.reference[0]}@{spec.reference[1]}" if spec.reference else ""
                return (gr.Tabs(selected="compare"), keep, keep, keep, keep, keep, keep, keep,
                        list(spec.samplers), ",".join(map(str, spec.steps)), ",".join(f"{c:g}" for c in spec.cfg_scales),
                        _class_choice(spec.class_id), spec.seed, _channel_choice(spec.cfg_channels), ref,
                        f"Restored a comparison of {len(spec.samplers)} samplers x {len(spec.steps)} step counts."
                        + _spacing_note(spec.spacing))
            if params.get("mode") == "generate":
                return (gr.Tabs(selected="generate"), [_class_choice(params["class_id"])], params["sampler"], params["steps"],
                        params["cfg_scale"], _channel_choice(params.get("cfg_channels")), params["seed"], 1,
                        keep, keep, keep, keep, keep, keep, keep,
                        f"Restored: {params['class_name']}, {params['sampler']} {params['steps']} steps, seed {params['seed']}."
                        + _spacing_note(params.get("spacing")))
            raise ValueError(f"This PNG's parameters are of a kind this app cannot restore ({params.get('mode')!r}).")

        def _class_choice(class_id):
            bundle = slot.get()
            cid = bundle.labels.resolve(class_id)
            return bundle.labels.choices()[list(bundle.labels.names).index(cid)]

        r_file.upload(on_reproduce, r_file,
                      [tabs, g_classes, g_sampler, g_steps, g_cfg, g_channels, g_seed, g_per_class,
                       c_samplers, c_steps, c_cfgs, c_class, c_seed, c_channels, c_ref, r_text], api_name="reproduce")

        @user_errors
        def on_load_model(name, progress=gr.Progress()):
            if not isinstance(name, str) or not name.strip():
                raise ValueError(f"Choose a model: one of {', '.join(slot.allowed)}.")
            progress(0.1, desc=f"Loading {name} (downloads on first use)...")
            bundle = slot.load(name)
            if max_request_seconds > 0:
                progress(0.9, desc="Measuring the model's speed for the per-request limit...")
                costs.get(bundle)
            choices = bundle.labels.choices()
            status = f"Loaded: **{bundle.name}** ({bundle.num_classes} classes, {bundle.image_size}px, {bundle.device})"
            return (status, gr.Dropdown(choices=choices, value=[choices[0]]), gr.Dropdown(choices=choices, value=choices[0]),
                    bundle.default_cfg, f"{bundle.default_cfg:g}")

        model_btn.click(on_load_model, model_box, [model_status, g_classes, c_class, g_cfg, c_cfgs],
                        api_name="load_model", **model_events)
    return demo


def comparison_outputs(bundle, comparison):
    """The Compare tab's outputs (grid, cells, table, two plots, summary) from a finished comparison."""
    spec = comparison.spec
    grid_path = _save(comparison.grid, {"mode": "compare", "model": bundle.name, **spec.to_dict()}, "compare")
    cells = [(c.image, f"{c.caption()} | cfg {c.cfg_scale:g}") for c in comparison.cells]
    table = pd.DataFrame(comparison.table())
    dist = pd.DataFrame([{"sampler": f"{c.sampler} cfg {c.cfg_scale:g}" if len(spec.cfg_scales) > 1 else c.sampler,
                          "nfe": c.nfe, "distance": c.distance} for c in comparison.cells])
    sigma_rows = []
    for c in comparison.cells:
        if c.steps != max(spec.steps) and len(spec.steps) > 1:
            continue  # one schedule per sampler (its longest) keeps the plot readable
        sigma_rows += [{"run": f"{c.sampler} {c.steps}", "step": i, "log10_sigma": math.log10(max(s, 1e-6))}
                       for i, s in enumerate(c.sigmas)]
    ref = comparison.reference[0]
    summary = (f"**{comparison.class_name}** (class {comparison.class_id}), seed {spec.seed}: {len(comparison.cells)} cells, "
               f"{sum(c.nfe for c in comparison.cells)} NFE in {comparison.seconds:.2f}s (lock-step batched). "
               f"Reference: {ref.sampler} @ {ref.steps} steps.")
    return grid_path, cells, table, dist, pd.DataFrame(sigma_rows), summary


def default_model() -> str:
    if os.environ.get("DIT_MODEL"):
        return os.environ["DIT_MODEL"]
    return "facebook/DiT-XL-2-256" if os.environ.get("SPACE_ID") else EMBEDDED_NAME
