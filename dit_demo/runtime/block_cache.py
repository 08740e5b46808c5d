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
import torch.nn.functional as F

from dit_demo.runtime.devices import host_values
from dit_demo.runtime.distinct_rows import distinct_rows, regrouped

MAX_REUSES = 2


@dataclass
class BlockCache:
    """Per-request state, one slot per row key (lane, cond/null); ``reused``/``computed`` count rows."""

    reused: int = 0
    computed: int = 0
    first: torch.Tensor | None = None  # (slots, tokens, hidden): the first block's residual at the last full evaluation
    rest: torch.Tensor | None = None  # (slots, tokens, hidden): the other blocks' residual then
    has: torch.Tensor | None = None  # (slots,) bool: the slot holds an evaluation
    streak: torch.Tensor | None = None  # (slots,) how many steps in a row the slot has been reused
    record: bool = False  # keep every call's (keys, reuse mask) in ``seen``, for tests and replays
    seen: list = field(default_factory=list)
    replay: dict | None = None  # row key -> reuse decision per call, from another model's ``decisions()``
    calls: dict = field(default_factory=dict)  # row key -> how many times it has been evaluated

    def decisions(self) -> dict:
        """Row key -> the reuse decision of each of its calls, in order (needs ``record=True``)."""
        out: dict = {}
        for keys, reuse in self.seen:
            for key, reused in zip(keys, reuse):
                out.setdefault(key, []).append(reused)
        return out

    def _replayed(self, keys: list, device: torch.device) -> torch.Tensor:
        wanted = []
        for key in keys:
            n = self.calls.get(key, 0)
            plan = self.replay.get(key, [])
            wanted.append(n < len(plan) and bool(plan[n]))
        return torch.tensor(wanted, dtype=torch.bool, device=device)

    def _slots(self, keys: list, like: torch.Tensor) -> torch.Tensor:
        slots = torch.tensor([2 * lane + kind for lane, kind in keys], device=like.device)
        need = int(slots.max()) + 1
        if self.first is None or need > len(self.first):
            grow = max(need, 2 * (0 if self.first is None else len(self.first)))
            pad = grow - (0 if self.first is None else len(self.first))
            zeros = like.new_zeros((pad, *like.shape[1:]))
            self.first = zeros if self.first is None else torch.cat([self.first, zeros])
            self.rest = zeros.clone() if self.rest is None else torch.cat([self.rest, zeros])
            flags = torch.zeros(pad, dtype=torch.bool, device=like.device)
            self.has = flags if self.has is None else torch.cat([self.has, flags])
            counts = torch.zeros(pad, dtype=torch.long, device=like.device)
            self.streak = counts if self.streak is None else torch.cat([self.streak, counts])
        return slots

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
        """``model(x, timestep=t, class_labels=y).sample`` with the later blocks skipped where they may be.

        Identical rows (lanes sharing a seed) run once: ``copies`` says which, as ``(first, inverse)``
        (the engine knows without reading the latents back); without it they are compared here.
        """
        blocks = model.transformer_blocks
        if copies is None:
            distinct, inverse = distinct_rows(x, t, y)
            whole = len(distinct) == len(x)
        else:
            whole = len(copies[0]) == len(x)  # every row its own (most rounds): nothing to gather or spread
            distinct, inverse = (None, None) if whole else (host_values(c, torch.long, x.device) for c in copies)

        def spread(rows: torch.Tensor) -> torch.Tensor:  # distinct rows -> every row
            return rows if whole else rows[inverse]

        td, yd = (t, y) if whole else (t[distinct], y[distinct])
        h = model.pos_embed(x if whole else x[distinct])  # (distinct rows, tokens, hidden)
        h1_distinct = blocks[0](h, timestep=td, class_labels=yd)
        first, h1 = spread(h1_distinct - h), spread(h1_distinct)
        slots = self._slots(keys, first)
        reuse = self._reuse(first, slots, keys, thresholds)
        if not bool(reuse.any()):  # the plain forward, split after the first block
            hs = h1_distinct
            for block in blocks[1:]:
                hs = block(hs, timestep=td, class_labels=yd)
            self._remember(slots, None, first, spread(hs) - h1)
            return spread(_final_layer(model, hs, td, yd, model.patch_size))
        out = h1.clone()
        todo = (~reuse).nonzero().flatten()
        if len(todo):
            out[todo] = self._later_blocks(blocks, h1_distinct, t, y, todo, None if whole else (distinct, inverse))
        out[reuse] = h1[reuse] + self.rest[slots[reuse]]
        self._remember(slots, reuse, first, out - h1)
        if whole:
            return _final_layer(model, out, t, y, model.patch_size)
        # the output layer once per distinct row too (a reused row's residual is its own), so that
        # threshold 0 hands every layer the batch the uncached path would
        key = inverse.clone()
        key[reuse] = len(distinct) + reuse.nonzero().flatten()
        rep, copied = (host_values(c, torch.long, x.device) for c in regrouped(key.tolist()))
        return _final_layer(model, out[rep], t[rep], y[rep], model.patch_size)[copied]

    @staticmethod
    def _later_blocks(blocks, h1_distinct, t, y, todo, copies) -> torch.Tensor:
        """Blocks 2.. for the rows in ``todo`` (each distinct row once, where ``copies`` says which repeat)."""
        if copies is None:
            hs, ts, ys, copied = h1_distinct[todo], t[todo], y[todo], None
        else:
            distinct, inverse = copies
            groups, copied = torch.unique(inverse[todo], return_inverse=True)
            hs, ts, ys = h1_distinct[groups], t[distinct[groups]], y[distinct[groups]]
        for block in blocks[1:]:
            hs = block(hs, timestep=ts, class_labels=ys)
        return hs if copied is None else hs[copied]

    def _reuse(self, first: torch.Tensor, slots: torch.Tensor, keys: list, thresholds: list) -> torch.Tensor:
        """Which rows take their later blocks' residual from the cache this call: (rows,) bool."""
        if self.replay is not None:
            reuse = self.has[slots] & self._replayed(keys, first.device)
        else:
            change = relative_change(first, self.first[slots])
            limit = torch.tensor(thresholds, device=first.device, dtype=change.dtype)
            reuse = self.has[slots] & (limit > 0) & (change < limit) & (self.streak[slots] < MAX_REUSES)
        for key in keys:
            self.calls[key] = self.calls.get(key, 0) + 1
        if self.record:
            self.seen.append((list(keys), reuse.tolist()))
        return reuse

    def _remember(self, slots: torch.Tensor, reuse: torch.Tensor | None, first, rest) -> None:
        """Rows computed in full become their slots' new evaluation; reused rows lengthen their streak.
        ``reuse`` None: no row was reused (most calls), so no row needs picking out."""
        fresh = slots if reuse is None else slots[~reuse]
        if reuse is not None:
            first, rest = first[~reuse], rest[~reuse]
            self.streak[slots[reuse]] += 1
        self.first[fresh], self.rest[fresh], self.has[fresh], self.streak[fresh] = first, rest, True, 0
        self.computed += len(fresh)
        self.reused += len(slots) - len(fresh)


def relative_change(new: torch.Tensor, old: torch.Tensor) -> torch.Tensor:
    """Per row: the mean absolute change over the mean absolute size (a change down counts as much as up)."""
    return (new - old).abs().mean((1, 2)) / old.abs().mean((1, 2)).clamp_min(1e-12)


def _final_layer(model, h: torch.Tensor, t: torch.Tensor, y: torch.Tensor, patch: int) -> torch.Tensor:
    """The DiT's adaLN output layer and unpatchify, as diffusers' DiTTransformer2DModel.forward does them."""
    conditioning = model.transformer_blocks[0].norm1.emb(t, y, hidden_dtype=h.dtype)
    shift, scale = model.proj_out_1(F.silu(conditioning)).chunk(2, dim=1)
    h = model.proj_out_2(model.norm_out(h) * (1 + scale[:, None]) + shift[:, None])  # (rows, tokens, p*p*C)
    side = int(h.shape[1] ** 0.5)
    h = h.reshape(-1, side, side, patch, patch, model.out_channels)
    return torch.einsum("nhwpqc->nchpwq", h).reshape(-1, model.out_channels, side * patch, side * patch)
