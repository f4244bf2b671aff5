"""Log-depth CRF algorithms: parallel prefix scans over ``K x K`` semiring blocks (torch only).

A linear chain of ``L`` positions is the product ``alpha_0 (x) M_1 (x) ... (x) M_{L-1}`` of
step blocks ``M_t[i, j] = trans[i, j] + emission_t[j]`` (``(x)``: the log or max semiring's
matrix product). The sequential algorithms multiply left to right, ``L`` dependent steps of
a few tiny kernels each. Here neighbouring blocks are multiplied pairwise, all at once, so
the chain collapses in ``ceil(log2 L)`` levels of batched ``K x K`` products (pytorch-struct's
idea): more arithmetic (``K^3`` per block instead of ``K^2``) and far fewer dispatches. On a
2-core CPU that wins only for a few sequences at a time (:func:`use_scan` is the measured
rule); on a GPU, where each dispatch costs microseconds and arithmetic is nearly free, the
balance moves towards the scan (not measured here: force it with ``algorithm="scan"``).

Positions past a sequence's length get the identity block, so packed sequences of any length
share one tree. Forbidden transitions are ``NEG`` (log 0 for the products here).

* :func:`log_partition_scan`: log Z in the log semiring. Each product is computed in exp space
  (one ``bmm``) with a per-row shift and per-middle-tag scales, and returns a flag for rows
  whose scores spread beyond float32's exp range (``_SAFE_GAP``) for the exact fallback.
  Differentiable through autograd (``log2 L`` levels of graph, not ``L``).
* :func:`viterbi_scan`: max semiring. An up-sweep of block products and a down-sweep give the
  Viterbi scores ``alpha_t`` at every position; back-pointers follow with the sequential
  algorithm's rule (first best predecessor), and the backtrace composes them by pointer
  jumping (``log2 L`` gathers). The best path equals the sequential one whenever the two sum
  orders give the same ``alpha`` (always for exactly representable scores, so ties break the
  same way); scores agree to float rounding.
"""

from __future__ import annotations

from typing import List, Tuple

import torch
from torch import Tensor

#: "log 0" for the log-semiring products: finite, so no inf - inf can produce NaN anywhere.
NEG = -1e30
# Finite scores lie above this; anything below is an unreachable (log 0) entry.
_FINITE = -1e29
# exp() below this is 0 in float32 (normal range ends at exp(-87.3)).
_EXP_FLOOR = -87.0
# Scores further apart than this within one product may underflow in exp space (float32: ~87).
_SAFE_GAP = 60.0


def use_scan(batch: int, steps: int, num_tags: int, decode: bool) -> bool:
    """The measured rule for ``algorithm="auto"`` (CPU; ``benchmarks/crf_speed.py --rule``).

    On CPU each ``K x K`` block product costs ``K`` times the sequential step's arithmetic, so
    the scan wins only where the sequential loop is pure dispatch: a handful of sequences
    (``B * K^3`` of a few thousand) over many steps. Measured, 1 thread, CPU time: decode
    1 x 256 x 9: scan 0.82 ms vs 3.48 ms; 4 x 128 x 9: 1.21 vs 1.85; 32 x 64 x 9: 3.84 vs 1.12
    (loses); NLL 1 x 256 x 9: 2.82 vs 3.37; 4 x 128 x 9: 3.45 vs 2.49 (loses).
    """
    width = batch * num_tags ** 3
    if decode:
        return steps >= 16 and width <= 5000
    return steps >= 128 and width <= 1024


def _step_blocks(emissions: Tensor, lengths: Tensor, trans: Tensor, fill: float) -> Tensor:
    """``(B, n, K, K)`` blocks ``M_t`` for ``t = 1 .. L-1`` padded with identity blocks to a
    power of two ``n``; identity (``0`` on the diagonal, ``fill`` elsewhere) past each length.

    Args:
        emissions: ``(B, L, K)`` packed. trans: ``(K, K)`` with forbidden entries at ``fill``.
    """
    batch, steps, num_tags = emissions.shape
    n = 1 << max(steps - 2, 0).bit_length()  # power of two >= steps - 1 (>= 1)
    eye = torch.full((num_tags, num_tags), fill, dtype=emissions.dtype, device=emissions.device)
    eye.fill_diagonal_(0.0)
    blocks = trans + emissions[:, 1:].unsqueeze(2)  # shape: (B, L-1, K, K)
    pos = torch.arange(1, n + 1, device=lengths.device)  # shape: (n,)
    live = (pos.unsqueeze(0) < lengths.unsqueeze(1)).view(batch, n, 1, 1)  # shape: (B, n, 1, 1)
    if n > steps - 1:
        pad = eye.expand(batch, n - (steps - 1), num_tags, num_tags)
        blocks = torch.cat([blocks, pad], dim=1)  # shape: (B, n, K, K)
    return torch.where(live, blocks, eye)


def _log_product(a: Tensor, b: Tensor) -> Tuple[Tensor, Tensor]:
    """Log-semiring product ``C[i, j] = log sum_m exp(a[i, m] + b[m, j])`` of ``(..., K, K)``
    blocks, and a ``(...)`` flag: some finite term lay more than ``_SAFE_GAP`` below its row's
    best term (the exp-space product may have dropped it)."""
    col = b.amax(dim=-1, keepdim=True)  # shape: (..., K, 1): each middle tag's best continuation
    left = a + col.transpose(-1, -2)  # shape: (..., K, K)
    shift = left.amax(dim=-1, keepdim=True)  # shape: (..., K, 1)
    x = left - shift  # shape: (..., K, K), <= 0
    risky = ((x < -_SAFE_GAP) & (left > _FINITE)).flatten(-2).any(dim=-1)
    y = torch.matmul(_exp(x), _exp(b - col))  # shape: (..., K, K)
    positive = y > 0
    # double where: log never sees a 0, so no inf/NaN gradient reaches the unreachable entries
    out = torch.where(positive, torch.log(torch.where(positive, y, 1.0)) + shift, NEG)
    return out, risky


def marginals_scan(emissions: Tensor, lengths: Tensor, chain) -> Tuple[Tensor, Tensor]:
    """Posterior marginals ``(B, L, K)`` as the gradient of :func:`log_partition_scan` with respect
    to the emissions (autograd runs even under ``torch.inference_mode``: on detached copies),
    and the ``(B,)`` rows flagged for the exact fallback. Entries past a length are 0."""
    with torch.inference_mode(False), torch.enable_grad():
        em = emissions.detach().clone().requires_grad_(True)
        rules = type(chain)(*(x.detach().clone() for x in chain))
        log_z, risky = log_partition_scan(em, lengths.clone(), rules)
        (grad,) = torch.autograd.grad(log_z.sum(), em)
    return grad.detach().clone(), risky.detach().clone()


def _exp(x: Tensor) -> Tensor:
    """``exp(x)`` for ``x <= 0``, exactly 0 below float32's normal range: torch.exp of very
    negative arguments (log 0 is ``NEG``) takes a slow denormal path, so it never sees them."""
    return torch.exp(x.clamp(min=_EXP_FLOOR)) * (x > _EXP_FLOOR)


def log_partition_scan(emissions: Tensor, lengths: Tensor, chain) -> Tuple[Tensor, Tensor]:
    """log Z of packed sequences by a log-depth tree of log-semiring block products.

    Args:
        emissions: ``(B, L, K)`` packed emissions, ``L >= 1``. lengths: ``(B,)``.
        chain: a :class:`mcrf.crf.ops.Chain` (scores and the allowed tables).

    Returns:
        ``(log_z (B,), risky (B,) bool)``: 0 for empty sequences; ``risky`` marks rows the
        exp-space products may have computed inexactly (scores beyond float32's exp range,
        or no legal path at all), for :func:`mcrf.crf.ops.log_partition_exact`.
    """
    trans = torch.where(chain.allowed_trans, chain.trans, NEG)  # shape: (K, K)
    blocks = _step_blocks(emissions, lengths, trans, NEG)  # shape: (B, n, K, K)
    risky = torch.zeros(emissions.shape[0], dtype=torch.bool, device=emissions.device)
    while blocks.shape[1] > 1:
        blocks, flag = _log_product(blocks[:, 0::2], blocks[:, 1::2])  # shape: (B, n/2, K, K)
        risky = risky | flag.any(dim=1)
    alpha0 = torch.where(chain.allowed_start, chain.start, NEG) + emissions[:, 0]  # shape: (B, K)
    end = torch.where(chain.allowed_end, chain.end, NEG)  # shape: (K,)
    closing = alpha0.unsqueeze(2) + blocks[:, 0] + end  # shape: (B, K, K)
    log_z = torch.logsumexp(closing.flatten(1), dim=1)  # shape: (B,)
    # the closing logsumexp is exact in log space: only the products can lose mass
    risky = risky | (log_z < _FINITE)
    log_z = torch.where(lengths > 0, log_z, torch.zeros_like(log_z))
    return log_z, risky & (lengths > 0)


def _max_product(a: Tensor, b: Tensor) -> Tensor:
    """Max-semiring product ``C[i, j] = max_m a[i, m] + b[m, j]`` of ``(..., K, K)`` blocks."""
    return (a.unsqueeze(-1) + b.unsqueeze(-3)).amax(dim=-2)


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
        alphas = _all_alphas(alpha0, _step_blocks(emissions, lengths, trans_m, float("-inf")))[:, :steps]
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


def _all_alphas(alpha0: Tensor, blocks: Tensor) -> Tensor:
    """Viterbi scores at every position, ``(B, n + 1, K)``: an up-sweep of max-products, then a
    down-sweep that pushes each span's entry scores through its left half."""
    levels: List[Tensor] = [blocks]
    while levels[-1].shape[1] > 1:
        top = levels[-1]
        levels.append(_max_product(top[:, 0::2], top[:, 1::2]))  # shape: (B, n/2^l, K, K)
    entry = alpha0.unsqueeze(1)  # shape: (B, 1, K): scores before the one top span
    for level in reversed(levels[:-1]):
        left = level[:, 0::2]  # shape: (B, m, K, K): the left child of each span
        mid = (entry.unsqueeze(3) + left).amax(dim=2)  # shape: (B, m, K): scores at the middle
        entry = torch.stack([entry, mid], dim=2).flatten(1, 2)  # shape: (B, 2m, K)
    last = (entry[:, -1:].unsqueeze(3) + blocks[:, -1:]).amax(dim=2)  # shape: (B, 1, K)
    return torch.cat([entry, last], dim=1)  # shape: (B, n + 1, K)


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
