"""Packed sequences: the one layout every CRF algorithm works on (torch only, batch-first).

``pack`` moves the unmasked positions of each sequence to the front in their original order,
so sequence ``b`` occupies positions ``0 .. lengths[b] - 1``. This single trick makes right
padding, left padding, a masked first position (``[CLS]``) and holes (first-sub-word masks)
one case. ``Chain`` carries a chain's scores and its bool rules.
"""

from __future__ import annotations

from typing import NamedTuple, Tuple

import torch
from torch import Tensor


class Chain(NamedTuple):
    """Scores and rules of a linear chain: ``start (K,)``, ``trans (K, K)`` ``[from, to]``,
    ``end (K,)``, and the bool tables of allowed starts, transitions and ends."""

    start: Tensor
    trans: Tensor
    end: Tensor
    allowed_start: Tensor
    allowed_trans: Tensor
    allowed_end: Tensor

    def reversed(self) -> "Chain":
        """The chain read right to left (what the backward pass scans)."""
        return Chain(self.end, self.trans.t(), self.start, self.allowed_end, self.allowed_trans.t(), self.allowed_start)


def pack(mask: Tensor) -> Tuple[Tensor, Tensor]:
    """Order positions so that each sequence's unmasked positions come first, in order.

    Args:
        mask: ``(B, T)`` bool.

    Returns:
        ``(order, lengths)``: ``order (B, T)`` long, ``order[b, s]`` is the original position
        of the ``s``-th unmasked token of sequence ``b`` (for ``s < lengths[b]``);
        ``lengths (B,)`` long.
    """
    lengths = mask.sum(dim=1)  # shape: (B,)
    # A stable sort of "is masked" keeps unmasked positions first and in their order.
    order = torch.sort((~mask).to(torch.uint8), dim=1, stable=True).indices  # shape: (B, T)
    return order, lengths


def gather_time(x: Tensor, order: Tensor) -> Tensor:
    """Gather ``x (B, T, ...)`` along time with ``order (B, T')``."""
    index = order.view(order.shape + (1,) * (x.dim() - 2)).expand(order.shape + x.shape[2:])
    return x.gather(1, index)


def unpack(packed: Tensor, order: Tensor, lengths: Tensor, steps: int, fill: float) -> Tensor:
    """Inverse of packing: ``packed (B, L, ...)`` back to ``steps`` input positions
    ``(B, T, ...)``, ``fill`` at masked positions (``order`` and ``lengths`` from :func:`pack`)."""
    batch, used = packed.shape[:2]
    target = torch.where(valid_positions(lengths, used), order[:, :used], steps)  # shape: (B, L)
    target = target.view(target.shape + (1,) * (packed.dim() - 2)).expand_as(packed)
    out = packed.new_full((batch, steps + 1) + packed.shape[2:], fill)
    return out.scatter(1, target, packed)[:, :steps]


def valid_positions(lengths: Tensor, steps: int) -> Tensor:
    """``(B, steps)`` bool: packed position ``s`` holds a real token of sequence ``b``."""
    return torch.arange(steps, device=lengths.device).unsqueeze(0) < lengths.unsqueeze(1)


def reverse_index(lengths: Tensor, steps: int) -> Tensor:
    """``(B, L)`` index that reverses each packed sequence within its length."""
    pos = torch.arange(steps, device=lengths.device).unsqueeze(0)  # shape: (1, L)
    rev = lengths.unsqueeze(1) - 1 - pos  # shape: (B, L)
    return torch.where(rev >= 0, rev, pos)


def last(x: Tensor, lengths: Tensor) -> Tensor:
    """``x (B, L, K)`` at position ``lengths - 1`` (position 0 for empty sequences) -> ``(B, K)``."""
    idx = (lengths - 1).clamp(min=0).view(-1, 1, 1).expand(-1, 1, x.shape[2])
    return x.gather(1, idx).squeeze(1)
