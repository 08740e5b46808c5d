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
