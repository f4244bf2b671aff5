"""Log-depth CRF algorithms: parallel prefix scans over ``K x K`` semiring blocks (torch only).

A linear chain of ``L`` positions is the product ``alpha_0 (x) M_1 (x) ... (x) M_{L-1}`` of
step blocks ``M_t[i, j] = trans[i, j] + emission_t[j]`` (``(x)``: the log or max semiring's
matrix product). The sequential algorithms multiply left to right, ``L`` dependent steps of
a few tiny kernels each. Here neighbouring blocks are multiplied pairwise, all at once, so
the chain collapses in ``ceil(log2 L)`` levels of batched ``K x K`` products (pytorch-struct's
idea): more arithmetic (``K^3`` per block instead of ``K^2``) and far fewer dispatches. Where
that pays is :func:`use_scan`'s rule (per device type).

Positions past a sequence's length get the identity block, so packed sequences of any length
share one tree.

* :func:`prefix_scores`: the scores at every position in either semiring. In the log semiring
  (``mcrf.crf.exact``: forward and backward scores, hence log Z, its gradient and the
  marginals) each product is an exact log-sum-exp over ``K`` middle tags with forbidden
  entries at ``mcrf.crf.numerics.NEG``: no exp-space shortcut, so no range check and no
  fallback at any scale.
* :func:`viterbi_scan`: max semiring. An up-sweep of block products and a down-sweep give the
  Viterbi scores ``alpha_t`` at every position; back-pointers follow with the sequential
  algorithm's rule (first best predecessor), and the backtrace composes them by pointer
  jumping (``log2 L`` gathers). The best path equals the sequential one whenever the two sum
  orders give the same ``alpha`` (always for exactly representable scores, so ties break the
  same way); scores agree to float rounding.
"""

from __future__ import annotations

from typing import List

import torch
from torch import Tensor

#: Elements of one ``(..., K, K, K)`` product temporary, at most (larger products run in chunks).
_CHUNK = 1 << 24


def _amax(x: Tensor, dim: int) -> Tensor:
    return x.amax(dim=dim)


def use_scan(batch: int, steps: int, num_tags: int, decode: bool, device_type: str = "cpu") -> bool:
    """The rule behind ``algorithm="auto"``: whether the log-depth scan runs for a packed
    ``(batch, steps, num_tags)`` input on a device of type ``device_type``.

    * ``"cuda"`` (and other accelerators): the scan, for decoding always and for the NLL from 128
      steps. Source: issue 19's measurement by its author on one NVIDIA H200 (torch 2.11, CUDA 13)
      of the previous code: decode 3.5-31x faster by the scan at every cell (32 x 64 x 9: 2.4 vs
      8.8 ms; 16 x 1024 x 9: 3.5 vs 107.3 ms); for the NLL with ``validate=False`` both columns ran
      the same exact fallback on every row, so their difference is the fast part's: the scan
      ahead by 1.9-79 ms from ``T = 128`` (512 x 128 x 9, 64 x 256 x 37, 1 x 512 x 9,
      16 x 1024 x 9) and level at 32 x 64 x 9 (39.5 vs 39.4 ms). Not re-measured on the new code.
    * ``"cpu"``: measured on a 2-core CPU (``benchmarks/crf_speed.py --rule``). Each ``K x K``
      block product costs ``K`` times the sequential step's arithmetic, so the scan wins only
      where the sequential loop is pure dispatch: a handful of sequences (``B * K^3`` of a few
      thousand) over many steps. Decode 1 x 256 x 9: scan 0.82 ms vs 3.48 ms; 4 x 128 x 9: 1.21
      vs 1.85; 32 x 64 x 9: 3.84 vs 1.12 (loses); NLL 1 x 256 x 9: 2.82 vs 3.37; 4 x 128 x 9:
      3.45 vs 2.49 (loses).
    """
    if device_type != "cpu":
        return decode or steps >= 128
    width = batch * num_tags ** 3
    if decode:
        return steps >= 16 and width <= 5000
    return steps >= 128 and width <= 1024


def step_blocks(emissions: Tensor, lengths: Tensor, trans: Tensor, fill: float) -> Tensor:
    """``(B, n, K, K)`` blocks ``M_t`` for ``t = 1 .. L-1`` padded with identity blocks to a
    power of two ``n``; identity (``0`` on the diagonal, ``fill`` elsewhere) past each length.

    Args:
        emissions: ``(B, L, K)`` packed. trans: ``(K, K)`` (or ``(B, 1, K, K)``, one per row) with
            forbidden entries at ``fill`` (log 0 of the semiring).
    """
    batch, steps, num_tags = emissions.shape
    n = 1  # the power of two >= steps - 1 (>= 1); not int.bit_length, which torch 2.4 cannot compile
    while n < steps - 1:
        n *= 2
    eye = torch.full((num_tags, num_tags), fill, dtype=emissions.dtype, device=emissions.device)
    eye.fill_diagonal_(0.0)
    blocks = trans + emissions[:, 1:].unsqueeze(2)  # shape: (B, L-1, K, K)
    pos = torch.arange(1, n + 1, device=lengths.device)  # shape: (n,)
    live = (pos.unsqueeze(0) < lengths.unsqueeze(1)).view(batch, n, 1, 1)  # shape: (B, n, 1, 1)
    if n > steps - 1:
        pad = eye.expand(batch, n - (steps - 1), num_tags, num_tags)
        blocks = torch.cat([blocks, pad], dim=1)  # shape: (B, n, K, K)
    return torch.where(live, blocks, eye)


def _product(a: Tensor, b: Tensor, reduce) -> Tensor:
    """Semiring product ``C[i, j] = reduce_m a[i, m] + b[m, j]`` of ``(B, m, K, K)`` blocks
    (``reduce``: max or log-sum-exp over a dim), in chunks of the block dimension so that the
    ``(..., K, K, K)`` temporary stays below ``_CHUNK`` elements."""
    size = a.shape[-1] ** 3 * a.shape[0]
    chunk = max(1, _CHUNK // max(size, 1))
    if a.shape[1] <= chunk:
        return reduce(a.unsqueeze(-1) + b.unsqueeze(-3), -2)
    parts = [reduce(a[:, s : s + chunk].unsqueeze(-1) + b[:, s : s + chunk].unsqueeze(-3), -2)
             for s in range(0, a.shape[1], chunk)]
    return torch.cat(parts, dim=1)


def prefix_scores(alpha0: Tensor, blocks: Tensor, reduce) -> Tensor:
    """Scores at every position, ``(B, n + 1, K)``, of ``alpha0 (B, K)`` pushed through
    ``blocks (B, n, K, K)`` in the semiring whose sum is ``reduce`` (max: Viterbi scores;
    log-sum-exp: forward scores): an up-sweep of block products, then a down-sweep that pushes
    each span's entry scores through its left half."""
    levels: List[Tensor] = [blocks]
    while levels[-1].shape[1] > 1:
        top = levels[-1]
        levels.append(_product(top[:, 0::2], top[:, 1::2], reduce))  # shape: (B, n/2^l, K, K)
    entry = alpha0.unsqueeze(1)  # shape: (B, 1, K): scores before the one top span
    for level in reversed(levels[:-1]):
        left = level[:, 0::2]  # shape: (B, m, K, K): the left child of each span
        mid = reduce(entry.unsqueeze(3) + left, 2)  # shape: (B, m, K): scores at the middle
        entry = torch.stack([entry, mid], dim=2).flatten(1, 2)  # shape: (B, 2m, K)
    last = reduce(entry[:, -1:].unsqueeze(3) + blocks[:, -1:], 2)  # shape: (B, 1, K)
    return torch.cat([entry, last], dim=1)  # shape: (B, n + 1, K)


def viterbi_scan(emissions: Tensor, lengths: Tensor, start_m: Tensor, trans_m: Tensor, end_m: Tensor):
    """1-best Viterbi of packed sequences in ``O(log L)`` dependent steps.

    Args:
        emissions: ``(B, L, K)``; ``start_m (K,)``, ``trans_m (K, K)``, ``end_m (K,)`` with
        forbidden entries at ``-inf``.

    Returns:
        ``(paths (B, 1, L) long, scores (B, 1))``, like ``mcrf.crf.viterbi.viterbi_kbest`` with
        ``k=1`` (entries past a length are meaningless; ``-inf`` score: no legal path).
    """
    batch, steps, num_tags = emissions.shape
    alpha0 = start_m + emissions[:, 0]  # shape: (B, K)
    if steps == 1:
        alphas = alpha0.unsqueeze(1)  # shape: (B, 1, K)
    else:
        blocks = step_blocks(emissions, lengths, trans_m, float("-inf"))  # shape: (B, n, K, K)
        alphas = prefix_scores(alpha0, blocks, _amax)[:, :steps]  # shape: (B, L, K)
    last = (lengths - 1).clamp(min=0)  # shape: (B,)
    final = alphas.gather(1, last.view(-1, 1, 1).expand(-1, 1, num_tags)).squeeze(1)  # shape: (B, K)
    score, best_last = (final + end_m).max(dim=1)  # shape: (B,), (B,)
    if steps == 1:
        return best_last.view(batch, 1, 1), score.unsqueeze(1)
    # back-pointers with the sequential rule: the first best predecessor of each tag
    pointers = (alphas[:, :-1].unsqueeze(3) + trans_m).max(dim=2).indices  # shape: (B, L-1, K)
    ident = torch.arange(num_tags, device=emissions.device).expand(batch, steps - 1, num_tags)
    live = (torch.arange(1, steps, device=lengths.device).unsqueeze(0) < lengths.unsqueeze(1)).unsqueeze(2)
    pointers = torch.where(live, pointers, ident)  # shape: (B, L-1, K): identity past each length
    tags = compose_suffixes(pointers, ident[:, :1]).gather(2, best_last.view(-1, 1, 1).expand(-1, steps, 1))
    return tags.squeeze(2).unsqueeze(1), score.unsqueeze(1)


def compose_suffixes(pointers: Tensor, ident: Tensor) -> Tensor:
    """``out[:, t] = pointers[:, t] o pointers[:, t+1] o ... o pointers[:, -1]`` for every ``t``
    (functions on tags as index vectors), by pointer jumping; ``(B, L-1, K)`` -> ``(B, L, K)``
    with the identity appended for the last position."""
    comp = torch.cat([pointers, ident], dim=1)  # shape: (B, L, K)
    span = 1
    while span < comp.shape[1]:
        later = torch.cat([comp[:, span:], ident.expand(-1, span, -1)], dim=1)  # shape: (B, L, K)
        comp = comp.gather(2, later)  # x -> comp_t(comp_{t+span}(x))
        span *= 2
    return comp
