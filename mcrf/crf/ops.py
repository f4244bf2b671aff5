"""The fast exp-space CRF recursions behind :class:`mcrf.MaskedCRF`, and gold-path scores
(torch only, batch-first, on packed sequences: ``mcrf.crf.packing``).

Constraints are boolean tables: ``allowed_start (K,)``, ``allowed_trans (K, K)`` indexed
``[from, to]`` and ``allowed_end (K,)``. Forbidden transitions are excluded *exactly*.

Two ways to log Z, the marginals and the gradient, both exact:

* the fast scan (``validate=True``, the CPU default): each step is a matmul in exp space where
  forbidden transitions are exact zeros (no ``(B, K, K)`` tensor per step) while the running
  scores stay in log space with a per-step shift; a hand-written backward gives the gradient.
  float32 ``exp`` spans ~87 nats, so rows whose scores within one step spread wider than
  ``SAFE_GAP`` are flagged, read back once, and recomputed by ``mcrf.crf.exact``;
* ``mcrf.crf.exact`` directly (``validate=False``, and the scan algorithm): log-sum-exp at every
  step, exact at any scale, no flag, no read, nothing computed twice.

Viterbi (``mcrf.crf.viterbi``) never takes a forbidden transition as a candidate.
"""

from __future__ import annotations

from typing import Tuple

import torch
from torch import Tensor

from mcrf.crf import exact as crf_exact
from mcrf.crf.numerics import FORBIDDEN_SCORE, MAX_EXP, SAFE_GAP
from mcrf.crf.packing import Chain, gather_time, last, pack, reverse_index, unpack, valid_positions

__all__ = [
    "FORBIDDEN_SCORE", "Chain", "pack", "gather_time", "unpack", "valid_positions", "tracing",
    "log_partition", "marginals", "path_score", "first_violation",
]


def _row_scale(trans: Tensor, allowed_trans: Tensor) -> Tuple[Tensor, Tensor]:
    """Per-source-tag rescaling of the transition weights.

    Returns ``(row_max (K,), weights (K, K))`` with ``weights = exp(trans - row_max[:, None])``
    on allowed entries (each row's best allowed entry is exactly 1) and exact zeros on
    forbidden ones; a row without allowed entries gets ``row_max = 0``.
    """
    masked = torch.where(allowed_trans, trans, float("-inf"))  # shape: (..., K, K)
    row_max = masked.amax(dim=-1)  # shape: (..., K)
    row_max = torch.where(torch.isfinite(row_max), row_max, torch.zeros_like(row_max))
    return row_max, torch.exp(masked - row_max.unsqueeze(-1))


def _scan_log(
    emissions: Tensor, start: Tensor, trans: Tensor, allowed_start: Tensor, allowed_trans: Tensor
) -> Tensor:
    """Forward (alpha) scores of every packed position, for D independent scans at once.

    ``alpha[d, b, t, j]`` is log of the summed score of all legal prefixes of length ``t + 1``
    ending in tag ``j`` (emission at ``t`` included). Positions past a sequence's length hold
    values that callers ignore. The forward and the backward pass run as the two ``D``
    slices of one loop (the backward pass is a forward pass over reversed sequences with
    transposed rules), halving the number of sequential steps.

    Each step is ``log(exp(a - shift) @ W) + shift + emission`` where ``W`` holds the
    row-rescaled transition weights (exact zeros where forbidden) and ``a`` carries the row
    scale, so the best prefix always reaches its best successor with weight exactly 1.

    Args:
        emissions: ``(D, B, L, K)`` float packed emissions.
        start: ``(D, K)`` start scores. trans: ``(D, K, K)`` ``[from, to]`` scores.
        allowed_start: ``(D, K)`` bool. allowed_trans: ``(D, K, K)`` bool.

    Returns:
        ``(D, B, L, K)`` alphas (``-inf`` for tags no legal prefix reaches).
    """
    steps = emissions.shape[2]
    row_max, weights = _row_scale(trans, allowed_trans)  # shape: (D, K), (D, K, K)
    row_max = row_max.unsqueeze(1)  # shape: (D, 1, K)
    # Carry a = alpha + row_max: the row scale is folded into the emissions once.
    emit = (emissions + row_max.unsqueeze(2)).unbind(2)  # L x (D, B, K)
    a = torch.where(allowed_start, start, float("-inf")).unsqueeze(1) + emit[0]  # shape: (D, B, K)
    scaled = [a]
    for t in range(1, steps):
        shift = a.amax(dim=2, keepdim=True)  # shape: (D, B, 1)
        a = torch.log(torch.bmm(torch.exp(a - shift), weights)) + shift + emit[t]  # shape: (D, B, K)
        scaled.append(a)
    return torch.stack(scaled, dim=2) - row_max.unsqueeze(2)  # shape: (D, B, L, K)


def _final_log(alpha_last: Tensor, end: Tensor, allowed_end: Tensor) -> Tensor:
    """log-sum-exp of ``alpha_last (B, K) + end`` over allowed end tags -> ``(B,)``."""
    closing = torch.where(allowed_end, alpha_last + end, float("-inf"))  # shape: (B, K)
    shift = closing.amax(dim=1, keepdim=True)  # shape: (B, 1)
    shift = torch.where(torch.isfinite(shift), shift, torch.zeros_like(shift))
    return torch.log(torch.exp(closing - shift).sum(dim=1)) + shift.squeeze(1)


def tracing() -> bool:
    """True under torch.compile / torch.export, where data-dependent branches are skipped."""
    compiler = getattr(torch, "compiler", None)
    if compiler is None:
        return False
    exporting = getattr(compiler, "is_exporting", lambda: False)
    return bool(compiler.is_compiling() or exporting())


def _spread_risk(scans: Tensor, lengths: Tensor) -> Tensor:
    """``(B,)`` bool: at some real position a finite score lies more than ``SAFE_GAP`` below
    the best one, so the exp-space step may have dropped (underflowed) a term.

    Args:
        scans: ``(D, B, L, K)`` scan outputs in packed coordinates (``-inf`` = unreachable).
    """
    top = scans.amax(dim=3, keepdim=True)  # shape: (D, B, L, 1)
    far = (scans < top - SAFE_GAP) & (scans > float("-inf"))  # shape: (D, B, L, K)
    far = far.any(dim=3) & valid_positions(lengths, scans.shape[2])  # shape: (D, B, L)
    return far.any(dim=2).any(dim=0)


def _both_scans(emissions: Tensor, lengths: Tensor, chain: Chain, backward: bool = True):
    """Alphas, emission-inclusive betas (``None`` unless ``backward``), log Z, and the rows
    whose fast scan may be inexact (a ``(B,)`` bool tensor: computing it reads nothing back
    to the host)."""
    steps = emissions.shape[1]
    if backward:
        rev = reverse_index(lengths, steps)  # shape: (B, L)
        scans = _scan_log(
            torch.stack([emissions, gather_time(emissions, rev)]),
            *(torch.stack(pair) for pair in zip(_scan_args(chain), _scan_args(chain.reversed()))),
        )  # shape: (2, B, L, K)
        alphas, beta_e = scans[0], gather_time(scans[1], rev)  # shape: (B, L, K) each
    else:
        scans = _scan_log(emissions[None], *(x[None] for x in _scan_args(chain)))  # shape: (1, B, L, K)
        alphas, beta_e = scans[0], None
    log_z = _final_log(last(alphas, lengths), chain.end, chain.allowed_end)  # shape: (B,)
    log_z = torch.where(lengths > 0, log_z, torch.zeros_like(log_z))
    risky = _spread_risk(scans, lengths) | ~torch.isfinite(log_z)
    weights = _row_scale(chain.trans, chain.allowed_trans)[1]
    # allowed transition scores that themselves span > 88 nats make every row inexact
    risky = risky | (chain.allowed_trans & (weights == 0)).any()
    return alphas, beta_e, log_z, risky


def _scan_args(chain: Chain) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    return chain.start, chain.trans, chain.allowed_start, chain.allowed_trans


class _LogPartition(torch.autograd.Function):
    """log Z with an analytic backward: gradients are the (pairwise) marginals."""

    @staticmethod
    def forward(ctx, emissions, lengths, *chain):
        chain = Chain(*chain)
        # The backward scores are needed only for gradients: compute them in the same loop.
        alphas, beta_e, log_z, risky = _both_scans(emissions, lengths, chain, backward=any(ctx.needs_input_grad))
        ctx.save_for_backward(emissions, lengths, chain.trans, chain.allowed_trans, alphas, beta_e, log_z)
        ctx.mark_non_differentiable(risky)
        return log_z, risky

    @staticmethod
    def backward(ctx, grad_log_z, _grad_risky):
        emissions, lengths, trans, allowed_trans, alphas, beta_e, log_z = ctx.saved_tensors
        steps = emissions.shape[1]
        valid = valid_positions(lengths, steps)  # shape: (B, L)
        weight = (grad_log_z * (lengths > 0)).unsqueeze(1) * valid  # shape: (B, L)
        log_z_ = torch.where(torch.isfinite(log_z), log_z, 0.0).view(-1, 1, 1)
        marg = torch.exp(alphas + beta_e - emissions - log_z_)  # shape: (B, L, K)
        # where, not multiply: rows recomputed exactly (weight 0) may hold inf here.
        grad_emissions = torch.where(weight.unsqueeze(2) != 0, marg * weight.unsqueeze(2), 0.0)
        grad_start = grad_emissions[:, 0].sum(dim=0)  # shape: (K,)
        grad_end = last(grad_emissions, lengths).sum(dim=0)  # shape: (K,)
        grad_trans = torch.zeros_like(trans)
        if steps > 1:
            # xi_t(i, j) = exp(alpha_{t-1}(i) + trans[i, j] + beta_e_t(j) - log Z), summed over b, t,
            # factored as u_t(i) v_t(j) W[i, j] (W: the row-rescaled weights of the forward scan).
            row_max, weights = _row_scale(trans, allowed_trans)
            prev = alphas[:, :-1] + row_max  # shape: (B, L-1, K)
            shift = prev.amax(dim=2, keepdim=True)  # shape: (B, L-1, 1)
            shift = torch.where(torch.isfinite(shift), shift, torch.zeros_like(shift))
            u = torch.where(weight[:, 1:].unsqueeze(2) != 0, torch.exp(prev - shift), 0.0)
            u = u * weight[:, 1:].unsqueeze(2)  # shape: (B, L-1, K)
            v = torch.exp((beta_e[:, 1:] + shift - log_z_).clamp(max=MAX_EXP))  # shape: (B, L-1, K)
            grad_trans = torch.einsum("bti,btj->ij", u, v) * weights  # shape: (K, K)
        return grad_emissions, None, grad_start, grad_trans, grad_end, None, None, None


def log_partition(
    emissions: Tensor, lengths: Tensor, chain: Chain, sync_free: bool = False, scan: bool = False
) -> Tensor:
    """log Z over legal paths of packed sequences, ``(B,)``; 0 for empty sequences.

    Differentiable with respect to ``emissions``, ``start``, ``trans`` and ``end``; every way
    has a hand-written backward (no per-step autograd graph) and is exact at any score scale.

    Args:
        sync_free: read nothing back to the host: run the exact log-space recursion
            (``mcrf.crf.exact``) for every row, once (also what tracing runs). Otherwise the
            fast exp-space scan, one host read of its range flags, and the exact recursion for
            the flagged rows only (the faster way on CPU, where a read waits for nothing).
        scan: the log-depth tree (always the exact log-space products: no flags, no read).
    """
    if scan or sync_free or tracing():
        return crf_exact.log_partition(emissions, lengths, chain, scan=scan)
    log_z, risky = _LogPartition.apply(emissions, lengths, *chain)
    if bool(risky.any()):
        rows = risky.nonzero().squeeze(1)
        exact = crf_exact.log_partition(emissions[rows], lengths[rows], chain)
        log_z = log_z.index_put((rows,), exact)
    return log_z


def marginals(
    emissions: Tensor, lengths: Tensor, chain: Chain, sync_free: bool = False, scan: bool = False
) -> Tensor:
    """Posterior tag probabilities of packed sequences over legal paths, ``(B, L, K)`` (0 past
    each length), by forward-backward; ``sync_free`` and ``scan`` as in :func:`log_partition`
    (no autograd either way: works under ``torch.inference_mode``)."""
    if scan or sync_free or tracing():
        marg = crf_exact.marginals(emissions, lengths, chain, scan=scan)
    else:
        alphas, beta_e, log_z, risky = _both_scans(emissions, lengths, chain)
        marg = torch.exp(alphas + beta_e - emissions - log_z.view(-1, 1, 1))  # shape: (B, L, K)
        if bool(risky.any()):
            rows = risky.nonzero().squeeze(1)
            marg = marg.index_put((rows,), crf_exact.marginals(emissions[rows], lengths[rows], chain))
    # float32 rounding at large score magnitudes can overshoot 1 by ~1e-4: probabilities stay in [0, 1]
    marg = marg.clamp(min=0.0, max=1.0)
    return torch.where(valid_positions(lengths, emissions.shape[1]).unsqueeze(2), marg, 0.0)


def path_score(emissions: Tensor, tags: Tensor, lengths: Tensor, chain: Chain) -> Tensor:
    """Score of given packed tag sequences, ``(B,)`` (0 for empty sequences).

    Args:
        emissions: ``(B, L, K)``; tags: ``(B, L)`` long, any value in range past each length.
    """
    steps = emissions.shape[1]
    valid = valid_positions(lengths, steps)  # shape: (B, L)
    emit = emissions.gather(2, tags.unsqueeze(2)).squeeze(2) * valid  # shape: (B, L)
    score = emit.sum(dim=1) + chain.start[tags[:, 0]] * (lengths > 0)  # shape: (B,)
    if steps > 1:
        step = chain.trans[tags[:, :-1], tags[:, 1:]] * valid[:, 1:]  # shape: (B, L-1)
        score = score + step.sum(dim=1)
    last = tags.gather(1, (lengths - 1).clamp(min=0).unsqueeze(1)).squeeze(1)  # shape: (B,)
    return score + chain.end[last] * (lengths > 0)


def first_violation(tags: Tensor, lengths: Tensor, chain: Chain) -> Tensor:
    """``(B, L)`` bool: packed position ``s`` breaks a rule (start at 0, transition into
    ``s`` from ``s - 1``, or end at ``lengths - 1``)."""
    steps = tags.shape[1]
    valid = valid_positions(lengths, steps)
    bad = torch.zeros_like(valid)
    bad[:, 0] = ~chain.allowed_start[tags[:, 0]]
    if steps > 1:
        bad[:, 1:] = ~chain.allowed_trans[tags[:, :-1], tags[:, 1:]]
    is_last = torch.arange(steps, device=tags.device).unsqueeze(0) == (lengths - 1).unsqueeze(1)
    bad = bad | (is_last & ~chain.allowed_end[tags])
    return bad & valid
