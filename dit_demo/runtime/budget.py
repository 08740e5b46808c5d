"""A cap on the work one request may cause, in estimated seconds on the loaded model and device.

A public Space has one worker: a request of 64 Heun lanes at 1000 steps with guidance would
hold it for many minutes and queue everyone else behind it. The estimate is a linear model
of what the engine does (one transformer call per round, its cost growing with the rows in
it, one VAE decode per image), with the three coefficients measured on the model as loaded.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from dit_demo.runtime.bundle import DiTBundle
from dit_demo.runtime.conditioning import sharing

DEFAULT_MAX_SECONDS = 60.0


@dataclass(frozen=True)
class CostModel:
    """Seconds per transformer call, per row in a call, and per decoded image.

    ``overhead`` multiplies the sum: what a server adds around the engine (live previews, its
    event loop, the sampling thread sharing the cores), learned from the requests it has served.
    """

    per_call: float
    per_row: float
    per_decode: float
    overhead: float = 1.0

    @classmethod
    def measure(cls, bundle: DiTBundle, rows: int = 3) -> CostModel:
        """Time one forward of 1 and of ``rows`` rows, and one decode (after a warm-up of each)."""
        x = torch.randn((1, *bundle.latent_shape), generator=torch.Generator().manual_seed(0))
        x = x.to(bundle.device, bundle.dtype)

        def forward(n: int) -> None:
            t = torch.full((n,), 500.0, device=bundle.device)
            y = torch.zeros(n, dtype=torch.long, device=bundle.device)
            bundle.transformer(x.expand(n, -1, -1, -1), timestep=t, class_labels=y)

        def decode() -> None:  # the path every request takes: latents -> images
            bundle.decode_images(x.float())

        with torch.inference_mode(), sharing():  # as the engine runs it
            forward(1), decode()  # first calls pay for allocations and kernel selection
            one, many, dec = _best_time(lambda: forward(1)), _best_time(lambda: forward(rows)), _best_time(decode)
        per_row = max(many - one, 0.0) / (rows - 1)
        return cls(per_call=max(one - per_row, 0.0), per_row=per_row, per_decode=dec)

    def estimate(self, lanes: Sequence[tuple[int, int]], max_batch: int | None = None) -> float:
        """Seconds for lanes given as (model evaluations, rows per evaluation), run in lock-step."""
        rounds = max((nfe for nfe, _ in lanes), default=0)
        row_evaluations = sum(nfe * rows for nfe, rows in lanes)
        calls = rounds
        if max_batch:  # big rounds are split into chunks: one more call per chunk
            calls = sum(-(-sum(rows for nfe, rows in lanes if nfe > r) // max_batch) for r in range(rounds))
        return self.overhead * (calls * self.per_call + row_evaluations * self.per_row + len(lanes) * self.per_decode)


def _best_time(fn, min_total: float = 0.05, max_repeats: int = 5) -> float:
    """Best of a few runs; a fast model is repeated until ``min_total`` seconds have passed."""
    best, total, runs = float("inf"), 0.0, 0
    while runs < max_repeats and (runs == 0 or total < min_total):
        start = time.perf_counter()
        fn()
        took = time.perf_counter() - start
        best, total, runs = min(best, took), total + took, runs + 1
    return best


@dataclass
class Budget:
    """At most ``max_seconds`` of estimated work per request (0 or less: no limit).

    One per request: ``estimated`` keeps what :meth:`check` found, for the server to compare
    with what the request really took.
    """

    max_seconds: float
    cost: CostModel
    estimated: float | None = None
    recheck: Callable[[], CostModel] | None = None  # a fresh measurement, taken before refusing
    where_set: str = ""  # how whoever runs the server changes the limit (the app's flag), for the message
    # another model's cost (a model axis' second model); None for the model ``cost`` is of
    price: Callable[[DiTBundle], CostModel | None] | None = None

    def check(self, lanes: Sequence[tuple[int, int]], max_batch: int | None = None) -> float:
        """The request's estimated seconds; ``ValueError`` naming the limit when it is over (after
        ``recheck``, when there is one, confirms the cost: a refusal never rests on one measurement)."""
        return self.check_groups([(None, lanes)], max_batch)

    def check_groups(
        self, groups: Sequence[tuple[DiTBundle | None, Sequence[tuple[int, int]]]], max_batch: int | None = None
    ) -> float:
        """``check`` for groups of lanes run one after another (a comparison's models and presets), each
        in lock step on its model (None: the model of ``cost``) and at that model's cost (``price``)."""
        seconds = self.estimated = self._estimate(groups, max_batch)
        if self.max_seconds > 0 and seconds > self.max_seconds and self.recheck is not None:
            self.cost = self.recheck()
            seconds = self.estimated = self._estimate(groups, max_batch)
        if self.max_seconds > 0 and seconds > self.max_seconds:
            lanes = [lane for _, group in groups for lane in group]
            nfe = sum(n for n, _ in lanes)
            rows = sum(n * r for n, r in lanes)
            raise ValueError(
                f"This request is too big for this server: {len(lanes)} image(s), {nfe} model evaluations "
                f"({rows} transformer rows with guidance) would take about {seconds:.0f} s, and the limit is "
                f"{self.max_seconds:g} s per request. Use fewer steps, fewer images or samplers, or cfg 1 (no "
                f"guidance rows)."
                + (f" Whoever runs the server sets the limit ({self.where_set})." if self.where_set else "")
            )
        return seconds

    def _estimate(self, groups: Sequence[tuple[DiTBundle | None, Sequence[tuple[int, int]]]], max_batch) -> float:
        return sum(self._cost_of(model).estimate(lanes, max_batch) for model, lanes in groups)

    def _cost_of(self, model: DiTBundle | None) -> CostModel:
        other = None if model is None or self.price is None else self.price(model)
        return self.cost if other is None else other
