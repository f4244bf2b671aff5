"""Batched k-best Viterbi over packed sequences (torch only, batch-first).

Forbidden transitions are never candidates: they are ``-inf`` in this max-product
recursion, which has no gradient, so a returned finite-score path is legal whatever the
scores. There is no Python loop over the batch: the backtrace is one batched gather (or
argmax) per time step.
"""

from __future__ import annotations

import math
from typing import Tuple

import torch
from torch import Tensor

from mcrf.crf.ops import Chain
from mcrf.crf.scan import viterbi_scan


def viterbi_kbest(
    emissions: Tensor, lengths: Tensor, chain: Chain, k: int = 1, scan: bool = False, sync_free: bool = True
) -> Tuple[Tensor, Tensor]:
    """The ``k`` best legal paths of packed sequences (``scan``: the 1-best by the log-depth
    :func:`mcrf.crf.scan.viterbi_scan`, same paths as the sequential recursion).

    Forbidden transitions are never candidates (they are ``-inf`` in this max-product
    recursion, which has no gradient), so a returned finite-score path is legal whatever
    the scores.

    Returns:
        ``(paths, scores)``: ``paths (B, k, L)`` long in packed positions (entries past a
        length are meaningless); ``scores (B, k)``, ``-inf`` where fewer than ``k`` legal
        paths exist. An empty sequence has one (empty) path of score 0. Scores whose sums
        could leave the dtype's range are scaled by a power of two first (exact; same paths),
        and a reported score beyond the range saturates at the dtype's largest finite value.

    Args:
        sync_free: decide that scaling without a host read (always multiply by the scale, 1 for
            ordinary scores); otherwise read the bound once and scale only when needed.
    """
    bounds = _bounds(emissions, chain)  # shape: (4,)
    scale = _overflow_scale(bounds, emissions.shape[1], emissions.dtype, read=not sync_free)
    if not isinstance(scale, float) or scale != 1.0:  # ordinary scores on the checked path: no arithmetic
        emissions = emissions * scale
        chain = Chain(chain.start * scale, chain.trans * scale, chain.end * scale,  # not _replace: torch 2.4
                      chain.allowed_start, chain.allowed_trans, chain.allowed_end)  # cannot compile it
    trans_m = torch.where(chain.allowed_trans, chain.trans, float("-inf"))  # shape: (K_from, K_to)
    start_m = torch.where(chain.allowed_start, chain.start, float("-inf"))  # shape: (K,)
    end_m = torch.where(chain.allowed_end, chain.end, float("-inf"))  # shape: (K,)
    if k == 1 and scan:
        paths, score = viterbi_scan(emissions, lengths, start_m, trans_m, end_m)
    elif k == 1:
        paths, score = _viterbi_best(emissions, lengths, start_m, trans_m, end_m)
    else:
        paths, score = _viterbi_k(emissions, lengths, start_m, trans_m, end_m, k)
    # legality is read off the scaled score (finite: a legal path); the reported score saturates
    big = torch.finfo(score.dtype).max
    score = torch.where(torch.isfinite(score), (score / scale).clamp(min=-big, max=big), float("-inf"))
    empty_seq = (lengths == 0).unsqueeze(1)
    rank0 = torch.arange(k, device=score.device).unsqueeze(0) == 0
    score = torch.where(empty_seq, torch.where(rank0, 0.0, float("-inf")), score)
    return paths, score


#: log2 of the largest |path score| each dtype holds with a bit to spare.
_HEADROOM = {torch.float32: 126, torch.float64: 1022, torch.float16: 14, torch.bfloat16: 126}


def _bounds(emissions: Tensor, chain: Chain) -> Tensor:
    """``(4,)``: the min and max of the emissions, then of the chain's scores (0 for no emissions)."""
    scores = torch.cat([chain.start, chain.trans.flatten(), chain.end])  # shape: (K * K + 2 * K,)
    seen = emissions if emissions.numel() else scores.new_zeros(1)
    return torch.stack([*torch.aminmax(seen), *torch.aminmax(scores)])


def _overflow_scale(bounds: Tensor, steps: int, dtype: torch.dtype, read: bool):
    """A power of two that keeps every path score of ``steps`` positions within ``dtype``'s range,
    given the score ``bounds`` (:func:`_bounds`): 1 for ordinary scores. A path sums ``steps``
    emissions and ``steps + 1`` transition scores, so scores near the float32 limit (``5e37``)
    overflow to ``inf`` within a few steps; scaling by a power of two is exact and leaves every
    comparison, hence the path, unchanged.

    Returns:
        With ``read``: a Python float (one host read of the four bounds). Without: a 0-dim tensor
        computed on the device (no host read).
    """
    terms = math.ceil(math.log2(2 * steps + 1))
    if read:
        biggest = max(abs(x) for x in bounds.tolist())
        if biggest == 0 or not math.isfinite(biggest):
            return 1.0
        return 2.0 ** -max(math.ceil(math.log2(biggest)) + terms - _HEADROOM[dtype], 0)
    biggest = bounds.abs().amax()  # shape: ()
    return torch.exp2(-(torch.ceil(torch.log2(biggest)) + terms - _HEADROOM[dtype]).clamp(min=0.0))


def _viterbi_best(emissions, lengths, start_m, trans_m, end_m) -> Tuple[Tensor, Tensor]:
    """1-best Viterbi in a batch-innermost ``(K, B)`` layout (fast broadcasting and ``amax``).

    Back-pointers are not stored: the backtrace recomputes each step's argmax for the one
    chosen tag, a ``(K, B)`` operation instead of a ``(K, K, B)`` one.
    """
    steps = emissions.shape[1]
    emit = emissions.permute(1, 2, 0).contiguous()  # shape: (L, K, B)
    trans_3 = trans_m.unsqueeze(2)  # shape: (K_from, K_to, 1)
    stacked = torch.empty_like(emit)  # shape: (L, K, B); written step by step, no final stack
    rows = stacked.unbind(0)
    torch.add(start_m.unsqueeze(1), emit[0], out=rows[0])
    for t in range(1, steps):
        torch.amax(rows[t - 1].unsqueeze(1) + trans_3, dim=0, out=rows[t])  # shape: (K, B)
        rows[t].add_(emit[t])
    last = (lengths - 1).clamp(min=0)  # shape: (B,)
    final = stacked.gather(0, last.view(1, 1, -1).expand(1, stacked.shape[1], -1)).squeeze(0)
    score, best_last = (final + end_m.unsqueeze(1)).max(dim=0)  # shape: (B,), (B,)
    is_last = torch.arange(steps, device=lengths.device).unsqueeze(1) == last.unsqueeze(0)  # shape: (L, B)
    cur = best_last
    tags = [cur]
    for t in range(steps - 1, 0, -1):
        # max(0) on (K, B) is several times faster than argmax over the same dim
        prev = (rows[t - 1] + trans_m.index_select(1, cur)).max(dim=0).indices  # shape: (B,)
        # A sequence ending at t - 1 starts its backtrace there.
        cur = torch.where(is_last[t - 1], best_last, prev)
        tags.append(cur)
    paths = torch.stack(tags[::-1], dim=1).unsqueeze(1)  # shape: (B, 1, L)
    return paths, score.unsqueeze(1)


def _viterbi_k(emissions, lengths, start_m, trans_m, end_m, k: int) -> Tuple[Tensor, Tensor]:
    """k-best Viterbi: each tag keeps its ``k`` best prefixes; slots are ``rank * K + tag``."""
    batch, steps, num_tags = emissions.shape
    width = k * num_tags
    emit = emissions.unbind(1)
    first = start_m + emit[0]  # shape: (B, K)
    empty = first.new_full((batch, k - 1, num_tags), float("-inf"))
    alpha = torch.cat([first.unsqueeze(1), empty], dim=1)  # shape: (B, k, K)
    alphas, pointers = [alpha.reshape(batch, width)], []
    for t in range(1, steps):
        cand = alpha.unsqueeze(3) + trans_m  # shape: (B, k, K_from, K_to)
        cand = cand.permute(0, 3, 1, 2).reshape(batch, num_tags, width)  # shape: (B, K_to, k*K_from)
        best, ptr = cand.topk(k, dim=2)  # shape: (B, K_to, k); ptr = rank * K + prev tag
        alpha = best.transpose(1, 2) + emit[t].unsqueeze(1)  # shape: (B, k, K)
        alphas.append(alpha.reshape(batch, width))
        pointers.append(ptr.transpose(1, 2).reshape(batch, width))
    stacked = torch.stack(alphas, dim=1)  # shape: (B, L, k*K)
    last = (lengths - 1).clamp(min=0)
    final = stacked.gather(1, last.view(-1, 1, 1).expand(-1, 1, width)).squeeze(1)  # shape: (B, k*K)
    score, best_last = (final + end_m.repeat(k)).topk(k, dim=1)  # shape: (B, k)
    is_last = torch.arange(steps, device=lengths.device).unsqueeze(0) == last.unsqueeze(1)  # shape: (B, L)
    cur = best_last
    slots = [cur]
    for t in range(steps - 1, 0, -1):
        prev = pointers[t - 1].gather(1, cur)  # shape: (B, k)
        cur = torch.where(is_last[:, t - 1 : t], best_last, prev)
        slots.append(cur)
    paths = torch.stack(slots[::-1], dim=2) % num_tags  # shape: (B, k, L)
    return paths, score
