"""What requests cost on the loaded model: measured when it loads, then kept honest by what it serves.

A measurement is a few forwards: taken while another process has the cores it can be many times
too high, and a server that trusted it would refuse small requests for as long as it runs. So a
measurement is never the last word:

- every served request the engine should take a second or more for teaches the overhead (its real
  seconds over the engine's estimate): what the server adds, or what the measurement got wrong;
- a request whose real time disagrees with its estimate by more than ``DISAGREEMENT`` marks the
  measurement stale: the next request measures again;
- before a request is refused the model is measured again, keeping each coefficient's lower value
  (another process can only make a measurement slower), and the refusal rests on that.
"""

from __future__ import annotations

import dataclasses
import threading
import weakref
from collections.abc import Callable

from dit_demo.runtime.budget import Budget, CostModel
from dit_demo.runtime.bundle import DiTBundle

LIMIT_HELP = "--max-request-seconds / DIT_MAX_REQUEST_SECONDS, 0 for no limit"  # app.py's flag and variable
START_OVERHEAD = 2.0  # what the server adds around the engine on 2 cores (previews, event loop)
OVERHEAD_RANGE = (0.25, 4.0)  # one odd request can move the overhead this far and no further
DISAGREEMENT = 3.0  # real time this many times off the estimate: measure again
MIN_TEACHING_SECONDS = 1.0  # shorter requests are mostly fixed costs (starting the stream, saving PNGs)


def _lower(a: CostModel, b: CostModel) -> CostModel:
    return CostModel(min(a.per_call, b.per_call), min(a.per_row, b.per_row), min(a.per_decode, b.per_decode))


class CostCache:
    """The cost of the loaded model (and of the other models a model axis runs: ``price``), and the
    overhead learned from the requests it serves.

    ``measure`` is how a model's cost is taken (``CostModel.measure``; tests pass a stand-in)."""

    def __init__(self, measure: Callable[[DiTBundle], CostModel] = CostModel.measure):
        self._measure = measure
        self._cost: tuple[DiTBundle, CostModel] | None = None  # the bundle is kept so its identity is unique
        # other models a model axis runs, by identity; weakly held, so a model the cache drops is not kept here
        self._others: dict[int, tuple[weakref.ref, CostModel]] = {}
        self._stale = False
        self.overhead = START_OVERHEAD
        self._lock = threading.Lock()

    def remember(self, bundle: DiTBundle, cost: CostModel) -> None:
        """Take ``cost`` as the cost of ``bundle`` (measured elsewhere: a bench run, a test)."""
        with self._lock:
            self._cost, self._stale = (bundle, cost), False

    def known(self, bundle: DiTBundle) -> CostModel | None:
        """The cost of ``bundle`` if it has been measured (None otherwise): nothing runs."""
        with self._lock:
            if self._cost is None or self._cost[0] is not bundle:
                return None
            return dataclasses.replace(self._cost[1], overhead=self.overhead)

    def get(self, bundle: DiTBundle) -> CostModel:
        """The cost of ``bundle``, measured now if it never was or its measurement is stale."""
        with self._lock:
            if self._cost is None or self._cost[0] is not bundle:  # one model at a time is loaded
                self._cost, self.overhead = (bundle, self._measure(bundle)), START_OVERHEAD
            elif self._stale:
                self._cost = (bundle, _lower(self._cost[1], self._measure(bundle)))
            self._stale = False
            return dataclasses.replace(self._cost[1], overhead=self.overhead)

    def price(self, bundle: DiTBundle, measure: bool = True) -> CostModel | None:
        """Another model's cost (a model axis' second model), measured on its first request and kept while
        it lives, with the overhead learned on the loaded one; None for the loaded model (its own cost), and
        with ``measure=False`` for a model not measured yet."""
        with self._lock:
            if self._cost is not None and self._cost[0] is bundle:
                return None
            found = self._others.get(id(bundle))
        if found is None or found[0]() is not bundle:
            if not measure:
                return None
            found = (weakref.ref(bundle), self._measure(bundle))
            with self._lock:
                self._others = {k: v for k, v in self._others.items() if v[0]() is not None}
                self._others[id(bundle)] = found
        return dataclasses.replace(found[1], overhead=self.overhead)

    def remeasure(self, bundle: DiTBundle) -> CostModel:
        """Measure again before a refusal; the overhead falls back to no more than its start value."""
        with self._lock:
            self._stale = True
            self.overhead = min(self.overhead, START_OVERHEAD)
        return self.get(bundle)

    def budget(self, bundle: DiTBundle, max_seconds: float) -> Budget:
        """A fresh budget for one request that measures again before it refuses."""
        return Budget(
            max_seconds,
            self.get(bundle),
            recheck=lambda: self.remeasure(bundle),
            where_set=LIMIT_HELP,
            price=self.price,
        )

    def observe(self, budget: Budget | None, seconds: float) -> None:
        """Fold a finished request's real duration into the overhead (see the module's docstring)."""
        if budget is None or not budget.estimated:
            return
        engine_estimate = budget.estimated / budget.cost.overhead
        if engine_estimate < MIN_TEACHING_SECONDS and seconds < MIN_TEACHING_SECONDS:
            return
        ratio = seconds / engine_estimate
        lo, hi = OVERHEAD_RANGE
        with self._lock:
            if not 1 / DISAGREEMENT <= ratio / self.overhead <= DISAGREEMENT:
                self._stale = True
            self.overhead = min(hi, max(lo, 0.5 * self.overhead + 0.5 * ratio))
