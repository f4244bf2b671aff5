"""Pure tensor functions behind :class:`mcrf.MaskedCRF` (torch only, batch-first).

Every function works on *packed* sequences: the unmasked positions of each sequence moved
to the front in their original order (``pack``), so sequence ``b`` occupies positions
``0 .. lengths[b] - 1``. This single trick makes right padding, left padding, a masked
first position (``[CLS]``) and holes (first-sub-word masks) one case.

Constraints are boolean tables: ``allowed_start (K,)``, ``allowed_trans (K, K)`` indexed
``[from, to]`` and ``allowed_end (K,)``. Forbidden transitions are excluded *exactly*:

* the partition function runs its step as a matmul in exp space where forbidden
  transitions are exact zeros (fast: no ``(B, K, K)`` tensor per step, no slow ``exp`` of
  very negative numbers) while the running scores stay in log space with a per-step
  rescaling. A tag that no legal prefix reaches has score ``log 0``; the hand-written
  backward never subtracts two such values, so gradients stay finite. The forward and
  backward passes are the two slices of one loop.
* float32 ``exp`` spans ~87 nats: a sequence whose scores within one step spread wider
  than ``_SAFE_GAP`` is detected and recomputed by an exact log-space recursion, so no
  probability mass is silently lost at extreme scales;
* Viterbi (``mcrf.crf.viterbi``) never takes a forbidden transition as a candidate.
"""

from __future__ import annotations

from typing import NamedTuple, Tuple

import torch
from torch import Tensor

from mcrf.crf import scan as crf_scan

#: The score the layer reports for a forbidden transition (see ``MaskedCRF.masked_transitions``).
#: A finite constant: the likelihood itself never adds it (forbidden transitions are exact
#: zeros in exp space), so no ``-inf`` arithmetic can produce NaN gradients.
FORBIDDEN_SCORE = -10000.0

# exp() arguments above this are clamped in the backward pass (float32 overflows at ~88.7).
_MAX_EXP = 80.0
# Scores further apart than this within one step may underflow in exp space (float32: ~87).
_SAFE_GAP = 60.0


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
    neg_inf = torch.tensor(float("-inf"), dtype=alpha_last.dtype, device=alpha_last.device)
    closing = torch.where(allowed_end, alpha_last + end, neg_inf)  # shape: (B, K)
    shift = closing.amax(dim=1, keepdim=True)  # shape: (B, 1)
    shift = torch.where(torch.isfinite(shift), shift, torch.zeros_like(shift))
    return torch.log(torch.exp(closing - shift).sum(dim=1)) + shift.squeeze(1)


def _reverse_index(lengths: Tensor, steps: int) -> Tensor:
    """``(B, L)`` index that reverses each packed sequence within its length."""
    pos = torch.arange(steps, device=lengths.device).unsqueeze(0)  # shape: (1, L)
    rev = lengths.unsqueeze(1) - 1 - pos  # shape: (B, L)
    return torch.where(rev >= 0, rev, pos)


def _last(x: Tensor, lengths: Tensor) -> Tensor:
    """``x (B, L, K)`` at position ``lengths - 1`` (position 0 for empty sequences) -> ``(B, K)``."""
    idx = (lengths - 1).clamp(min=0).view(-1, 1, 1).expand(-1, 1, x.shape[2])
    return x.gather(1, idx).squeeze(1)


def tracing() -> bool:
    """True under torch.compile / torch.export, where data-dependent branches are skipped."""
    compiler = getattr(torch, "compiler", None)
    if compiler is None:
        return False
    exporting = getattr(compiler, "is_exporting", lambda: False)
    return bool(compiler.is_compiling() or exporting())


def _spread_risk(scans: Tensor, lengths: Tensor) -> Tensor:
    """``(B,)`` bool: at some real position a finite score lies more than ``_SAFE_GAP`` below
    the best one, so the exp-space step may have dropped (underflowed) a term.

    Args:
        scans: ``(D, B, L, K)`` scan outputs in packed coordinates (``-inf`` = unreachable).
    """
    top = scans.amax(dim=3, keepdim=True)  # shape: (D, B, L, 1)
    far = (scans < top - _SAFE_GAP) & (scans > float("-inf"))  # shape: (D, B, L, K)
    far = far.any(dim=3) & valid_positions(lengths, scans.shape[2])  # shape: (D, B, L)
    return far.any(dim=2).any(dim=0)


def _both_scans(emissions: Tensor, lengths: Tensor, chain: Chain, backward: bool = True):
    """Alphas, emission-inclusive betas (``None`` unless ``backward``), log Z, and the rows
    whose fast scan may be inexact (a ``(B,)`` bool tensor: computing it reads nothing back
    to the host)."""
    steps = emissions.shape[1]
    if backward:
        rev = _reverse_index(lengths, steps)  # shape: (B, L)
        scans = _scan_log(
            torch.stack([emissions, gather_time(emissions, rev)]),
            *(torch.stack(pair) for pair in zip(_scan_args(chain), _scan_args(chain.reversed()))),
        )  # shape: (2, B, L, K)
        alphas, beta_e = scans[0], gather_time(scans[1], rev)  # shape: (B, L, K) each
    else:
        scans = _scan_log(emissions[None], *(x[None] for x in _scan_args(chain)))  # shape: (1, B, L, K)
        alphas, beta_e = scans[0], None
    log_z = _final_log(_last(alphas, lengths), chain.end, chain.allowed_end)  # shape: (B,)
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
        grad_end = _last(grad_emissions, lengths).sum(dim=0)  # shape: (K,)
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
            v = torch.exp((beta_e[:, 1:] + shift - log_z_).clamp(max=_MAX_EXP))  # shape: (B, L-1, K)
            grad_trans = torch.einsum("bti,btj->ij", u, v) * weights  # shape: (K, K)
        return grad_emissions, None, grad_start, grad_trans, grad_end, None, None, None


def log_partition_exact(emissions: Tensor, lengths: Tensor, chain: Chain) -> Tensor:
    """log Z by a plain log-space recursion (autograd, ``(B, K, K)`` per step): the slow,
    range-proof reference used for rows whose scores exceed the fast scan's exp range.

    Forbidden entries get ``FORBIDDEN_SCORE``: at the score ranges that need this path their
    weight ``exp(-1e4)`` is exactly 0 in float32, and no ``-inf`` can reach a gradient.
    """
    steps = emissions.shape[1]
    start_m = torch.where(chain.allowed_start, chain.start, FORBIDDEN_SCORE)
    trans_m = torch.where(chain.allowed_trans, chain.trans, FORBIDDEN_SCORE)
    end_m = torch.where(chain.allowed_end, chain.end, FORBIDDEN_SCORE)
    valid = valid_positions(lengths, steps)
    alpha = start_m + emissions[:, 0]  # shape: (B, K)
    for t in range(1, steps):
        step = torch.logsumexp(alpha.unsqueeze(2) + trans_m, dim=1) + emissions[:, t]  # shape: (B, K)
        alpha = torch.where(valid[:, t : t + 1], step, alpha)
    log_z = torch.logsumexp(alpha + end_m, dim=1)
    return torch.where(lengths > 0, log_z, torch.zeros_like(log_z))


def log_partition(
    emissions: Tensor, lengths: Tensor, chain: Chain, sync_free: bool = False, scan: bool = False
) -> Tensor:
    """log Z over legal paths of packed sequences, ``(B,)``; 0 for empty sequences.

    Differentiable with respect to ``emissions``, ``start``, ``trans`` and ``end``. The fast
    scan has a hand-written backward (no per-step autograd graph); rows whose scores span
    more than float32's exp range (``_SAFE_GAP`` nats within one step) are recomputed with
    :func:`log_partition_exact`, so the result never silently loses mass or turns NaN.

    Args:
        sync_free: decide the recompute without reading anything back to the host: the exact
            recursion runs for every row and ``torch.where`` keeps it for the flagged rows
            (more arithmetic, no device->host synchronisation; what tracing uses too).
            Otherwise one host read of the flags and the exact recursion for those rows only.
        scan: run the log-depth tree (:mod:`mcrf.crf.scan`) instead of the sequential scan.
    """
    if scan:
        log_z, risky = crf_scan.log_partition_scan(emissions, lengths, chain)
    else:
        log_z, risky = _LogPartition.apply(emissions, lengths, *chain)
    if sync_free or tracing():
        return torch.where(risky, log_partition_exact(emissions, lengths, chain), log_z)
    if bool(risky.any()):
        rows = risky.nonzero().squeeze(1)
        exact = log_partition_exact(emissions[rows], lengths[rows], chain)
        log_z = log_z.index_put((rows,), exact)
    return log_z


def marginals(
    emissions: Tensor, lengths: Tensor, chain: Chain, sync_free: bool = False, scan: bool = False
) -> Tensor:
    """Posterior tag probabilities of packed sequences over legal paths, ``(B, L, K)``
    (0 past each length), by forward-backward (or, with ``scan``, as the gradient of the
    log-depth log Z). Rows outside the fast path's range are recomputed with an exact
    log-space forward-backward (no autograd: works under ``torch.inference_mode``);
    ``sync_free`` as in :func:`log_partition`."""
    if scan:
        marg, risky = crf_scan.marginals_scan(emissions, lengths, chain)
    else:
        alphas, beta_e, log_z, risky = _both_scans(emissions, lengths, chain)
        marg = torch.exp(alphas + beta_e - emissions - log_z.view(-1, 1, 1))  # shape: (B, L, K)
    if sync_free or tracing():
        marg = torch.where(risky.view(-1, 1, 1), _marginals_exact(emissions, lengths, chain), marg)
    elif bool(risky.any()):
        rows = risky.nonzero().squeeze(1)
        marg = marg.index_put((rows,), _marginals_exact(emissions[rows], lengths[rows], chain))
    # float32 rounding at large score magnitudes can overshoot 1 by ~1e-4: probabilities stay in [0, 1]
    marg = marg.clamp(min=0.0, max=1.0)
    return torch.where(valid_positions(lengths, emissions.shape[1]).unsqueeze(2), marg, 0.0)


def _marginals_exact(emissions: Tensor, lengths: Tensor, chain: Chain) -> Tensor:
    alphas, beta_e, log_z = _both_scans_exact(emissions, lengths, chain)
    return torch.exp(alphas + beta_e - emissions - log_z.view(-1, 1, 1))  # shape: (B, L, K)


def _both_scans_exact(emissions: Tensor, lengths: Tensor, chain: Chain):
    """Alphas, emission-inclusive betas and log Z by plain log-space recursions (for scores
    beyond the fast scan's range; ``-inf`` marks unreachable tags, no gradients involved)."""
    steps = emissions.shape[1]
    rev = _reverse_index(lengths, steps)

    def scan(em: Tensor, rules: Chain) -> Tensor:
        scores = torch.where(rules.allowed_trans, rules.trans, float("-inf"))  # shape: (K, K)
        alpha = torch.where(rules.allowed_start, rules.start, float("-inf")) + em[:, 0]  # shape: (B, K)
        out = [alpha]
        for t in range(1, steps):
            alpha = torch.logsumexp(alpha.unsqueeze(2) + scores, dim=1) + em[:, t]  # shape: (B, K)
            out.append(alpha)
        return torch.stack(out, dim=1)  # shape: (B, L, K)

    alphas = scan(emissions, chain)
    beta_e = gather_time(scan(gather_time(emissions, rev), chain.reversed()), rev)
    closing = torch.where(chain.allowed_end, _last(alphas, lengths) + chain.end, float("-inf"))
    log_z = torch.logsumexp(closing, dim=1)
    return alphas, beta_e, torch.where(lengths > 0, log_z, torch.zeros_like(log_z))


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
