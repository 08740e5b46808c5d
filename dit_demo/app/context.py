"""What every tab shares: the model slot, the per-request work limit and the widgets' common parts."""

from __future__ import annotations

import dataclasses
import random
import re
import time
from collections.abc import Callable, Iterator, Sequence

import gradio as gr

import samplers
from dit_demo.app.costs import CostCache
from dit_demo.app.model_slot import ModelSlot
from dit_demo.app.streaming import stream
from dit_demo.lab.specs.defaults import Defaults
from dit_demo.runtime.budget import Budget
from dit_demo.runtime.bundle import DiTBundle
from dit_demo.runtime.devices import on_zerogpu
from dit_demo.runtime.engine import MAX_BATCH, Progress
from dit_demo.runtime.levers import describe_preset

CFG_CHANNEL_CHOICES = [("all latent channels (4)", 0), ("first 3, as the original DiT code", 3)]
# seconds between live previews at least; streaming.stream spaces them further when they cost more
PREVIEW_INTERVAL = 0.25
# one model, one job at a time; progress is written on each tab's status line, not drawn over the
# outputs, so the live previews stay visible while a job runs
MODEL_EVENTS = {"concurrency_id": "model", "concurrency_limit": 1, "show_progress": "hidden"}


@dataclasses.dataclass
class AppContext:
    slot: ModelSlot
    max_request_seconds: float
    costs: CostCache = dataclasses.field(default_factory=CostCache)

    def budget(self) -> Budget | None:
        """A fresh budget for one request (None: no limit); measures the model on first use."""
        if self.max_request_seconds <= 0:
            if on_zerogpu():  # no limit, but the GPU slot each request asks for comes from the measurement
                self.costs.get(self.slot.get())
            return None
        return self.costs.budget(self.slot.get(), self.max_request_seconds)

    def measure_now(self) -> None:
        """Measure the loaded model's cost now, so no request waits for it; on ZeroGPU the GPU exists only
        inside a request, so the first request measures it there."""
        if not on_zerogpu():
            self.costs.get(self.slot.get())

    def estimate(self, work: Sequence[tuple[int, int]]) -> float | None:
        """Estimated seconds for lanes of (model evaluations, rows); None while the model is unmeasured."""
        cost = self.costs.known(self.slot.get())
        return None if cost is None else cost.estimate(work, MAX_BATCH)

    def estimate_groups(self, groups: Sequence[tuple[DiTBundle, Sequence[tuple[int, int]]]]) -> float | None:
        """``estimate`` for groups run one after another, each at its model's cost where that is known (a model
        axis' other model, once it has run) and the loaded model's otherwise; nothing is measured here."""
        cost = self.costs.known(self.slot.get())
        if cost is None:
            return None
        return sum((self.costs.price(m, measure=False) or cost).estimate(work, MAX_BATCH) for m, work in groups)

    def defaults(self) -> Defaults:
        return Defaults.for_bundle(self.slot.get())


def preset_choices(bundle: DiTBundle) -> list[tuple[str, str]]:
    """The speed presets, each saying what it does on this model's device."""
    return [
        ("exact: no shortcuts", "exact"),
        (f"fast: {describe_preset('fast', bundle.device)}", "fast"),
    ]


def random_seed() -> int:
    return random.randint(0, 2**31 - 1)


def time_left(progress: Progress) -> str:
    """The status line while a run is on: round r/n, time elapsed, about how long is left."""
    if progress.nfe_done == 0:
        return ""
    remaining = progress.elapsed / progress.nfe_done * (progress.nfe_total - progress.nfe_done)
    about = "about " if progress.estimated else ""  # an adaptive solver's rounds are its estimate until it ends
    return (
        f"round {progress.round}/{about}{progress.total_rounds}, {progress.elapsed:.1f}s elapsed, "
        f"about {remaining:.1f}s left"
    )


STOPPED = "Stopped"  # how a stopped run's status line starts
STARTING = "Starting..."  # a run's status line from its click to its first round
SAMPLING = "Sampling"  # how a run's status line starts while it reports its rounds


def refused_status(status: str | None, results, stopping: bool = False) -> str:
    """The status line after a failed request. A Stop also ends the event as failed (``stopping``: the page saw
    the Stop click): then this, the event's last message, says where it stopped, so neither a progress line still
    on its way when the Stop landed nor the order of the two handlers can leave another line standing.
    The message itself is in the red box at the top right; earlier results, if any, stay below."""
    if stopping is True:
        return stopped_status(status)
    if (status or "").startswith(STOPPED):
        return status
    kept = " What is shown below is from the run before it." if results else ""
    return f"**The last request was refused**: the red box at the top right says why and what is allowed.{kept}"


def stopped_status(status: str | None) -> str:
    """The status line after Stop: where the run was (its last "round r/n"), and that the previews stay."""
    match = re.search(r"round (\d+)/(\d+)", status or "")
    if match is None and (status or "").startswith((STARTING, SAMPLING)):  # on, but no round said yet
        return f"{STOPPED} before the first round. Nothing was saved."
    if match is None:
        return status or "Nothing is running."  # Stop while idle: nothing changes
    return f"{STOPPED} at round {match[1]} of {match[2]}. The previews show where each image was; nothing was saved."


def model_event(run: gr.Button, stop: gr.Button, status: gr.Markdown, results, fn, inputs, outputs, **settings):
    """``run.click(fn, ...)`` as a model event, with its Stop: offered only while a run is on; a refused
    run keeps the tab's last ``results`` and says so, a stopped one keeps its own status line (Gradio
    ends a cancelled event as failed too)."""
    # before the event: a listener added to the button after it would wait for the run to end
    run.click(lambda: gr.Button(interactive=True), None, stop, queue=False, api_visibility="private")
    # in the page, at the click: the last run's line (a "Stopped at round r") must not stand for this one,
    # and a server answer could land after this run's own first line
    run.click(None, None, status, js=f"() => {STARTING!r}", api_visibility="private")
    # whether this run was stopped, set in the page at the clicks: the failure that a Stop also causes may reach
    # the server before or after the Stop's own status line, so the failure handler cannot tell from the line
    stopping = gr.State(False)
    run.click(None, None, stopping, js="() => false", api_visibility="private")
    # preprocess=False: every payload reaches the request layer as sent, so a bad one gets our message
    # (Gradio's own conversion would answer "abc" or NaN with a generic error)
    event = run.click(fn, inputs, outputs, preprocess=False, **settings, **MODEL_EVENTS)
    event.then(lambda: gr.Button(interactive=False), None, stop, queue=False, api_visibility="private")
    event.failure(refused_status, [status, results, stopping], status, api_visibility="private")
    stop.click(None, None, stopping, js="() => true", api_visibility="private")
    stop.click(stopped_status, status, status, cancels=[event], api_visibility="private")
    return event


def class_choice(bundle: DiTBundle, class_id: int | str) -> str:
    """The class picker's string ("id: name, synonyms") for a class id or name."""
    return bundle.labels.choices()[list(bundle.labels.names).index(bundle.labels.resolve(class_id))]


def channel_choice(cfg_channels) -> int:
    """The radio's value for a stored cfg_channels: 3 is the paper's, anything else means all."""
    return 3 if cfg_channels == 3 else 0


def sampler_choices(family: str) -> list[tuple[str, str]]:
    """The sampler picker's (label, name) pairs: only the samplers that can drive a model of ``family``."""
    return [
        (f"{s.label} ({s.nfe_per_step} NFE/step{', stochastic' if s.stochastic else ''})", s.name)
        for s in samplers.for_family(family)
    ]


def sampler_info(name: str | None) -> str:
    try:
        s = samplers.get(name)
    except ValueError:
        return ""
    return f"**{s.label}**: {s.description} Default {s.default_steps} steps. _{s.paper}_"


def streamed(ctx: AppContext, job: Callable, previews: Callable, finished: Callable) -> Iterator:
    """A tab's model job, run and streamed: ``job(callback, cancel, budget)`` runs under this request's
    budget in its own thread; each preview yields ``previews(progress)`` and the end yields
    ``finished(result, seconds)``, after the server has learned what the request really took. Stop
    cancels it (``model_event``)."""
    limit = ctx.budget()
    start = time.perf_counter()
    for item in stream(lambda callback, cancel: job(callback, cancel, limit), PREVIEW_INTERVAL):
        if isinstance(item, Progress):
            yield previews(item)
            continue
        seconds = time.perf_counter() - start
        ctx.costs.observe(limit, seconds)
        yield finished(item, seconds)


NO_GUIDANCE = "This model has no null class (trained without class dropout): no guidance, the CFG scale stays 1."


def guidance_settings(bundle: DiTBundle) -> dict:
    """What the CFG inputs allow for this model: a model without a null class cannot be guided."""
    if bundle.has_null_class:
        return {"interactive": True, "info": None}
    return {"interactive": False, "info": NO_GUIDANCE}
