"""Identical rows of a round, found so the transformer evaluates each of them once.

Lanes of a comparison share their seed, so their rows often coincide: every lane's first round
(same noise, and the first timestep of a trailing grid is 999 at any step count), and samplers
that take the same first steps (DPM-Solver++ 2M and 3M agree for two steps). A row's output
depends only on its (latent, timestep, class), so one evaluation serves all of its copies.
"""

from __future__ import annotations

import torch


def distinct_rows(*columns: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(first, inverse)`` for rows equal in every column (row ``i`` of each tensor).

    ``first`` holds the index of the first row of each set of identical rows, in the order they
    first appear; ``inverse[i]`` is row ``i``'s position in ``first``, so ``c[first][inverse]``
    equals ``c`` for every column. Values compare exactly; the indices live on the first column's device.
    """
    rows = len(columns[0])
    flat = torch.cat([c.detach().reshape(rows, -1).to("cpu", torch.float64) for c in columns], dim=1)
    _, group = torch.unique(flat, dim=0, return_inverse=True)  # groups in sorted order
    first = torch.full((int(group.max()) + 1,), rows, dtype=torch.long)
    first.scatter_reduce_(0, group, torch.arange(rows), reduce="amin")
    order = torch.argsort(first)  # groups in order of first appearance
    rank = torch.empty_like(order)
    rank[order] = torch.arange(len(order))
    device = columns[0].device
    return first[order].to(device), rank[group].to(device)


class SharedRows:
    """Which rows of each round repeat an earlier row, looking at the latents only where they may be equal.

    Comparing latents reads them back from the device, which makes the host wait for the round
    before it can queue the next one. Lanes on different seeds start from different noise, and two
    lanes whose inputs differed once do not meet again, so only lanes whose inputs were equal at
    the last look are compared: a batch of classes on one seed compares in its first two rounds,
    and after that no round waits. (Missing a coincidence would only cost a row, and the batch's float
    rounding around it.)
    """

    def __init__(self, seeds: list[int]):
        by_seed: dict[int, list[int]] = {}
        for lane, seed in enumerate(seeds):
            by_seed.setdefault(seed, []).append(lane)
        self.suspects = [lanes for lanes in by_seed.values() if len(lanes) > 1]  # lanes whose inputs may be equal

    def _same_inputs(self, inputs: dict[int, torch.Tensor]) -> dict[int, int]:
        """Lane -> the first lane of its suspect set with an equal input this round (lanes with a copy only)."""
        same, suspects = {}, []
        for lanes in self.suspects:
            lanes = [lane for lane in lanes if lane in inputs]  # finished lanes leave
            if len(lanes) < 2:
                continue
            # compared on the host, where the answer is read: no index list sent to the device and back
            _, inverse = distinct_rows(torch.stack([inputs[lane] for lane in lanes]).cpu())
            found: dict[int, list[int]] = {}
            for lane, copy_of in zip(lanes, inverse.tolist()):
                found.setdefault(copy_of, []).append(lane)
            for equal in found.values():
                if len(equal) > 1:
                    suspects.append(equal)
                    same.update((lane, equal[0]) for lane in equal)
        self.suspects = suspects
        return same

    def plan(self, inputs: dict[int, torch.Tensor], rows: list[tuple[int, float, int]]) -> tuple[list[int], list[int]]:
        """``(first, inverse)`` over ``rows`` (lane, timestep, class), as :func:`distinct_rows` gives them;
        ``inputs`` maps each active lane to its (C, H, W) model input this round."""
        same = self._same_inputs(inputs)
        return regrouped([(same.get(lane, lane), t, y) for lane, t, y in rows])


def regrouped(keys: list) -> tuple[list[int], list[int]]:
    """``(first, inverse)`` for rows whose keys are equal, as :func:`distinct_rows` gives them for tensors."""
    index: dict = {}
    first, inverse = [], []
    for row, key in enumerate(keys):
        if key not in index:
            index[key] = len(first)
            first.append(row)
        inverse.append(index[key])
    return first, inverse
