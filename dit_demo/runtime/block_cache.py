"""Reuse across steps: a first-block cache for the DiT (the idea of TeaCache / first-block-cache).

At every step the first transformer block runs for every row. Where its residual changed little
since that row's last full evaluation (relative mean absolute change below the lane's threshold),
the residual of all the other blocks is taken from that evaluation instead of being computed:
the later blocks of adjacent steps differ about as much as the first one does. At most
``MAX_REUSES`` steps in a row reuse, so drift stays bounded; threshold 0 never reuses.

Rows are keyed by (lane, conditional or null), so lanes at different steps share one batch.

The reuse decisions depend on the model's outputs, so on random weights (the speed suite's
DiT-XL/2 stand-in) a threshold would skip everything or nothing. ``decisions()`` records what a
trained model decided and ``BlockCache(replay=...)`` makes another model take the same decisions.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from dit_demo.runtime.devices import host_values
from dit_demo.runtime.diffusers_adapters import embed_patches, output_layer, run_blocks
from dit_demo.runtime.distinct_rows import distinct_rows, regrouped

MAX_REUSES = 2


@dataclass(kw_only=True)
class BlockCache:
    """Per-request state, one slot per row key (lane, cond/null); ``reused``/``computed`` count rows.

    The residuals live on the model's device; which slots hold one and their reuse streaks live on the
    host, so a call reads back nothing but its reuse decisions (and nothing where no row may reuse)."""

    reused: int = 0
    computed: int = 0
    first: torch.Tensor | None = None  # (slots, tokens, hidden): the first block's residual at the last full evaluation
    rest: torch.Tensor | None = None  # (slots, tokens, hidden): the other blocks' residual then
    streak: dict = field(default_factory=dict)  # slot -> steps in a row reused (present once it holds an evaluation)
    record: bool = False  # keep every call's (keys, reuse mask) in ``seen``, for tests and replays
    seen: list = field(default_factory=list)
    replay: dict | None = None  # row key -> reuse decision per call, from another model's ``decisions()``
    calls: dict = field(default_factory=dict)  # row key -> how many times it has been evaluated (replays)

    def decisions(self) -> dict:
        """Row key -> the reuse decision of each of its calls, in order (needs ``record=True``)."""
        out: dict = {}
        for keys, reuse in self.seen:
            for key, reused in zip(keys, reuse):
                out.setdefault(key, []).append(reused)
        return out

    def _grow(self, need: int, like: torch.Tensor) -> None:
        have = 0 if self.first is None else len(self.first)
        if need <= have:
            return
        zeros = like.new_zeros((max(need, 2 * have) - have, *like.shape[1:]))
        self.first = zeros if self.first is None else torch.cat([self.first, zeros])
        self.rest = zeros.clone() if self.rest is None else torch.cat([self.rest, zeros])

    def forward(
        self,
        model,
        x: torch.Tensor,
        t: torch.Tensor,
        y: torch.Tensor,
        keys: list,
        thresholds: list,
        copies: tuple[list[int], list[int]] | None = None,
    ):
        """``model(x, timestep=t, class_labels=y).sample`` with the later blocks skipped where they may be
        (diffusers' forward in its steps: ``diffusers_adapters``' split forward).

        Identical rows (lanes sharing a seed) run once: ``copies`` says which, as ``(first, inverse)``
        (the engine knows without reading the latents back); without it they are compared here.
        """
        if copies is None:
            copies = tuple(c.tolist() for c in distinct_rows(x, t, y))
        whole = len(copies[0]) == len(x)  # every row its own (most rounds): nothing to gather or spread
        distinct, inverse = (None, None) if whole else (host_values(c, torch.long, x.device) for c in copies)

        def spread(rows: torch.Tensor) -> torch.Tensor:  # distinct rows -> every row
            return rows if whole else rows[inverse]

        td, yd = (t, y) if whole else (t[distinct], y[distinct])
        h = embed_patches(model, x if whole else x[distinct])  # (distinct rows, tokens, hidden)
        h1_distinct = run_blocks(model, h, td, yd, stop=1)
        first, h1 = spread(h1_distinct - h), spread(h1_distinct)
        slots = [2 * lane + kind for lane, kind in keys]
        self._grow(max(slots) + 1, first)
        reuse = self._reuse(first, slots, keys, thresholds)
        if not any(reuse):  # the plain forward, split after the first block
            hs = run_blocks(model, h1_distinct, td, yd, start=1)
            self._remember(slots, reuse, first, spread(hs) - h1)
            return spread(output_layer(model, hs, td, yd))
        out = h1.clone()
        todo = [row for row, hit in enumerate(reuse) if not hit]
        if todo:
            rows = host_values(todo, torch.long, x.device)
            out[rows] = self._later_blocks(model, h1_distinct, t, y, todo, rows, None if whole else copies)
        hits = host_values([row for row, hit in enumerate(reuse) if hit], torch.long, x.device)
        out[hits] = h1[hits] + self.rest[_index([s for s, hit in zip(slots, reuse) if hit], x.device)]
        self._remember(slots, reuse, first, out - h1)
        if whole:
            return output_layer(model, out, t, y)
        # the output layer once per distinct row too (a reused row's residual is its own), so that
        # threshold 0 hands every layer the batch the uncached path would
        key = [len(copies[0]) + row if hit else group for row, (hit, group) in enumerate(zip(reuse, copies[1]))]
        rep, copied = (host_values(c, torch.long, x.device) for c in regrouped(key))
        return output_layer(model, out[rep], t[rep], y[rep])[copied]

    @staticmethod
    def _later_blocks(model, h1_distinct, t, y, todo: list[int], rows: torch.Tensor, copies) -> torch.Tensor:
        """Blocks 2.. for the rows in ``todo`` (``rows``: the same, on the device; each distinct row once,
        where ``copies`` says which repeat)."""
        device = h1_distinct.device
        if copies is None:
            hs, ts, ys, copied = h1_distinct[rows], t[rows], y[rows], None
        else:
            first, inverse = copies
            wanted = [inverse[row] for row in todo]
            once, copied = regrouped(wanted)
            groups = host_values([wanted[i] for i in once], torch.long, device)
            firsts = host_values([first[wanted[i]] for i in once], torch.long, device)
            hs, ts, ys = h1_distinct[groups], t[firsts], y[firsts]
        hs = run_blocks(model, hs, ts, ys, start=1)
        return hs if copied is None else hs[host_values(copied, torch.long, device)]

    def _reuse(self, first: torch.Tensor, slots: list[int], keys: list, thresholds: list) -> list[bool]:
        """Which rows take their later blocks' residual from the cache this call."""
        held = [slot in self.streak for slot in slots]
        if self.replay is not None:
            reuse = [has and self._replayed(key) for has, key in zip(held, keys)]
            for key in keys:
                self.calls[key] = self.calls.get(key, 0) + 1
        else:  # a row may reuse where its slot holds an evaluation not reused too often already
            limits = [
                limit if has and self.streak[slot] < MAX_REUSES else 0.0
                for slot, has, limit in zip(slots, held, thresholds)
            ]
            reuse = [False] * len(slots)
            if any(limits):  # the only read-back: where no row may reuse, nothing waits for the device
                change = relative_change(first, self.first[_index(slots, first.device)]).tolist()
                reuse = [value < limit for value, limit in zip(change, limits)]  # NaN never reuses
        if self.record:
            self.seen.append((list(keys), list(reuse)))
        return reuse

    def _replayed(self, key) -> bool:
        plan = self.replay.get(key, [])
        n = self.calls.get(key, 0)
        return n < len(plan) and bool(plan[n])

    def _remember(self, slots: list[int], reuse: list[bool], first: torch.Tensor, rest: torch.Tensor) -> None:
        """Rows computed in full become their slots' new evaluation; reused rows lengthen their streak."""
        fresh = [row for row, hit in enumerate(reuse) if not hit]
        if len(fresh) < len(slots):  # some rows were reused: pick out the others
            rows = host_values(fresh, torch.long, first.device)
            first, rest = first[rows], rest[rows]
        where = _index([slots[row] for row in fresh], first.device)
        self.first[where], self.rest[where] = first, rest
        for slot, hit in zip(slots, reuse):
            self.streak[slot] = self.streak[slot] + 1 if hit else 0
        self.computed += len(fresh)
        self.reused += len(slots) - len(fresh)


def relative_change(new: torch.Tensor, old: torch.Tensor) -> torch.Tensor:
    """Per row: the mean absolute change over the mean absolute size (a change down counts as much as up)."""
    # L1 norms: the means' ratio in one reduction each (the change is compared every call)
    return torch.linalg.vector_norm(new - old, 1, (1, 2)) / torch.linalg.vector_norm(old, 1, (1, 2)).clamp_min(1e-12)


def _index(slots: list[int], device: torch.device) -> slice | torch.Tensor:
    """Slots as an index into the cache: a slice where they run in order (a batch's rows, most calls),
    which reads and writes in place, without an index tensor or a gather."""
    first = slots[0] if slots else 0
    if slots == list(range(first, first + len(slots))):
        return slice(first, first + len(slots))
    return host_values(slots, torch.long, device)
