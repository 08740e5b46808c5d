"""What every tab shares: the model slot, the per-request work limit and the widgets' common parts."""

from __future__ import annotations

import dataclasses
import random
import re
import threading
from collections.abc import Sequence

import samplers
from dit_demo.app.model_slot import ModelSlot
from dit_demo.runtime.budget import Budget, CostModel
from dit_demo.runtime.bundle import DiTBundle
from dit_demo.runtime.devices import on_zerogpu
from dit_demo.runtime.engine import MAX_BATCH, Progress
from dit_demo.runtime.levers import describe_preset
from dit_demo.runtime.request import Defaults

CFG_CHANNEL_CHOICES = [("all latent channels (4)", 0), ("first 3, as the original DiT code", 3)]
# seconds between live previews at least; streaming.stream spaces them further when they cost more
PREVIEW_INTERVAL = 0.25
# one model, one job at a time; progress is written on each tab's status line, not drawn over the
# outputs, so the live previews stay visible while a job runs
MODEL_EVENTS = {"concurrency_id": "model", "concurrency_limit": 1, "show_progress": "hidden"}


class CostCache:
    """The measured cost of the loaded model (measured at load, so no request pays for it), and
    the server's overhead around the engine, learned from the requests it serves."""

    START_OVERHEAD = 2.0  # measured 1.5-2.5x on the embedded model on 2 cores (previews, event loop)

    def __init__(self):
        self._cost: tuple[DiTBundle, CostModel] | None = None  # the bundle is kept so its identity is unique
        self.overhead = self.START_OVERHEAD
        self._lock = threading.Lock()

    def remember(self, bundle: DiTBundle, cost: CostModel) -> None:
        """Take ``cost`` as the cost of ``bundle`` (measured elsewhere: a bench run, a test)."""
        with self._lock:
            self._cost = (bundle, cost)

    def known(self, bundle: DiTBundle) -> CostModel | None:
        """The cost of ``bundle`` if it has been measured (None otherwise): nothing runs."""
        with self._lock:
            if self._cost is None or self._cost[0] is not bundle:
                return None
            return dataclasses.replace(self._cost[1], overhead=self.overhead)

    def get(self, bundle: DiTBundle) -> CostModel:
        with self._lock:
            if self._cost is None or self._cost[0] is not bundle:  # one model at a time is loaded
                self._cost = (bundle, CostModel.measure(bundle))
            return dataclasses.replace(self._cost[1], overhead=self.overhead)

    def observe(self, budget: Budget | None, seconds: float) -> None:
        """Fold a finished request's real duration into the overhead.

        Only requests the engine itself should take a second or more for count: shorter ones are
        dominated by fixed costs (starting the stream, saving PNGs) that say nothing about a big
        request. Each observation counts at most 4x and the overhead stays in [1, 4], so one slow
        moment (another process on the cores) cannot lock the server into refusing small requests.
        """
        if budget is None or not budget.estimated:
            return
        engine_estimate = budget.estimated / budget.cost.overhead
        if engine_estimate < 1.0:
            return
        ratio = min(4.0, max(1.0, seconds / engine_estimate))
        with self._lock:
            self.overhead = min(4.0, max(1.0, 0.5 * self.overhead + 0.5 * ratio))


@dataclasses.dataclass
class AppContext:
    slot: ModelSlot
    max_request_seconds: float
    costs: CostCache = dataclasses.field(default_factory=CostCache)

    def budget(self) -> Budget | None:
        """A fresh budget for one request (None: no limit); measures the model on first use."""
        if self.max_request_seconds <= 0:
            return None
        return Budget(self.max_request_seconds, self.costs.get(self.slot.get()))

    def measure_now(self) -> None:
        """Measure the loaded model's cost now, so no request waits for it; on ZeroGPU the GPU exists only
        inside a request, so the first request measures it there."""
        if not on_zerogpu():
            self.costs.get(self.slot.get())

    def estimate(self, work: Sequence[tuple[int, int]]) -> float | None:
        """Estimated seconds for lanes of (model evaluations, rows); None while the model is unmeasured."""
        cost = self.costs.known(self.slot.get())
        return None if cost is None else cost.estimate(work, MAX_BATCH)

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


def eta(progress: Progress) -> str:
    if progress.nfe_done == 0:
        return ""
    remaining = progress.elapsed / progress.nfe_done * (progress.nfe_total - progress.nfe_done)
    return (
        f"round {progress.round}/{progress.total_rounds}, {progress.elapsed:.1f}s elapsed, about {remaining:.1f}s left"
    )


def refused_status() -> str:
    """The status line after a refused request: the message stays in its box; earlier results stay too."""
    return (
        "**The last request was refused**: the message in the box at the top right says why and what is "
        "allowed. What is shown below is from the run before it."
    )


def stopped_status(status: str | None) -> str:
    """The status line after Stop: where the run was (its last "round r/n"), and that the previews stay."""
    match = re.search(r"round (\d+)/(\d+)", status or "")
    where = f" at round {match[1]} of {match[2]}" if match else ""
    return f"Stopped{where}. The previews show where each image was; nothing was saved."


def class_choice(bundle: DiTBundle, class_id: int | str) -> str:
    """The class picker's string ("id: name, synonyms") for a class id or name."""
    return bundle.labels.choices()[list(bundle.labels.names).index(bundle.labels.resolve(class_id))]


def channel_choice(cfg_channels) -> int:
    """The radio's value for a stored cfg_channels: 3 is the paper's, anything else means all."""
    return 3 if cfg_channels == 3 else 0


def sampler_choices() -> list[tuple[str, str]]:
    return [
        (f"{s.label} ({s.nfe_per_step} NFE/step{', stochastic' if s.stochastic else ''})", s.name)
        for s in samplers.all_samplers()
    ]


def sampler_info(name: str | None) -> str:
    try:
        s = samplers.get(name)
    except ValueError:
        return ""
    return f"**{s.label}**: {s.description} Default {s.default_steps} steps. _{s.paper}_"
