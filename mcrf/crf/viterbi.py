"""Batched k-best Viterbi over packed sequences (torch only, batch-first).

Forbidden transitions are never candidates: they are ``-inf`` in this max-product
recursion, which has no gradient, so a returned finite-score path is legal whatever the
scores. There is no Python loop over the batch: the backtrace is one batched gather (or
argmax) per time step.
"""

from __future__ import annotations

from typing import Tuple

import torch
from torch import Tensor

from mcrf.crf.ops import Chain
from mcrf.crf.scan import viterbi_scan


def viterbi_kbest(
    emissions: Tensor, lengths: Tensor, chain: Chain, k: int = 1, scan: bool = False
) -> Tuple[Tensor, Tensor]:
    """The ``k`` best legal paths of packed sequences (``scan``: the 1-best by the log-depth
    :func:`mcrf.crf.scan.viterbi_scan`, same paths as the sequential recursion).

    Forbidden transitions are never candidates (they are ``-inf`` in this max-product
    recursion, which has no gradient), so a returned finite-score path is legal whatever
    the scores.

    Returns:
        ``(paths, scores)``: ``paths (B, k, L)`` long in packed positions (entries past a
        length are meaningless); ``scores (B, k)``, ``-inf`` where fewer than ``k`` legal
        paths exist. An empty sequence has one (empty) path of score 0.
    """
    neg_inf = torch.tensor(float("-inf"), device=emissions.device, dtype=emissions.dtype)
    trans_m = torch.where(chain.allowed_trans, chain.trans, neg_inf)  # shape: (K_from, K_to)
    start_m = torch.where(chain.allowed_start, chain.start, neg_inf)  # shape: (K,)
    end_m = torch.where(chain.allowed_end, chain.end, neg_inf)  # shape: (K,)
    if k == 1 and scan:
        paths, score = viterbi_scan(emissions, lengths, start_m, trans_m, end_m)
    elif k == 1:
        paths, score = _viterbi_best(emissions, lengths, start_m, trans_m, end_m)
    else:
        paths, score = _viterbi_k(emissions, lengths, start_m, trans_m, end_m, k)
    empty_seq = (lengths == 0).unsqueeze(1)
    rank0 = torch.arange(k, device=score.device).unsqueeze(0) == 0
    score = torch.where(empty_seq, torch.where(rank0, 0.0, float("-inf")), score)
    return paths, score


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
