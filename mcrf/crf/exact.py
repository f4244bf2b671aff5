"""The exact log-space forward-backward: log Z, its gradient and the marginals at any scale.

Every sum runs as a log-sum-exp with its own maximum (``mcrf.crf.numerics.logsumexp``), with
forbidden entries at ``NEG`` (finite log 0), so no term underflows unnoticed, whatever the
scores' range: there is no range check and nothing to recompute. Two algorithms give the
forward scores ``alpha`` and the emission-inclusive backward scores ``beta_e`` of every packed
position:

* sequential: ``alpha_t = logsumexp_i(alpha_{t-1}(i) + trans[i, :]) + emission_t``, the forward
  and the backward recursion as the two slices of one loop of ``L`` steps;
* scan: the same scores from the log-depth tree of ``mcrf.crf.scan.prefix_scores``.

``log_partition`` is a ``torch.autograd.Function`` whose backward is the forward-backward
identity: ``d logZ / d emissions`` = the marginals, ``d logZ / d trans`` = the expected
transition counts, ``d logZ / d start|end`` = the first|last marginals. Autograd stores no
per-step graph. This is what ``validate=False`` runs (no host read, nothing computed twice) and
what the checked fast path (``mcrf.crf.ops``) falls back to for rows beyond its exp range.
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor

from mcrf.crf import scan as crf_scan
from mcrf.crf.numerics import EXP_FLOOR, NEG, exp_floor, log_zero_to_inf, logsumexp_
from mcrf.crf.packing import Chain, gather_time, last, reverse_index, valid_positions

#: Elements of one ``(B, c, K, K)`` temporary of the transition gradient, at most.
_CHUNK = 1 << 24


def _masked(chain: Chain) -> Tuple[Tensor, Tensor, Tensor]:
    """Start, transition and end scores with ``NEG`` where forbidden."""
    return (
        torch.where(chain.allowed_start, chain.start, NEG),  # shape: (K,)
        torch.where(chain.allowed_trans, chain.trans, NEG),  # shape: (K, K)
        torch.where(chain.allowed_end, chain.end, NEG),  # shape: (K,)
    )


def _sequential(emissions: Tensor, start: Tensor, trans: Tensor) -> Tensor:
    """Forward scores of ``D`` independent chains at once: ``emissions (D, B, L, K)``,
    ``start (D, K)``, ``trans (D, K, K)`` (``NEG`` where forbidden) -> ``(D, B, L, K)``."""
    emit = emissions.unbind(2)  # L x (D, B, K)
    trans = trans.unsqueeze(1)  # shape: (D, 1, K, K)
    alpha = start.unsqueeze(1) + emit[0]  # shape: (D, B, K)
    out = [alpha]
    for t in range(1, len(emit)):
        alpha = logsumexp_(alpha.unsqueeze(3) + trans, dim=2).add_(emit[t])  # shape: (D, B, K)
        out.append(alpha)
    return torch.stack(out, dim=2)


def _tree(emissions: Tensor, lengths: Tensor, start: Tensor, trans: Tensor) -> Tensor:
    """:func:`_sequential`'s result by the log-depth scan (the ``D`` chains share one tree)."""
    slices, batch, steps, num_tags = emissions.shape
    alpha0 = (start.unsqueeze(1) + emissions[:, :, 0]).flatten(0, 1)  # shape: (D*B, K)
    if steps == 1:
        return alpha0.view(slices, batch, 1, num_tags)
    per_row = trans.repeat_interleave(batch, dim=0).unsqueeze(1)  # shape: (D*B, 1, K, K)
    blocks = crf_scan.step_blocks(emissions.flatten(0, 1), lengths.repeat(slices), per_row, NEG)
    alphas = crf_scan.prefix_scores(alpha0, blocks, logsumexp_)[:, :steps]  # shape: (D*B, L, K)
    return alphas.view(slices, batch, steps, num_tags)


def scores(
    emissions: Tensor, lengths: Tensor, chain: Chain, scan: bool = False, backward: bool = True
) -> Tuple[Tensor, Optional[Tensor], Tensor]:
    """Forward scores, emission-inclusive backward scores and log Z of packed sequences.

    Args:
        emissions: ``(B, L, K)`` packed, ``L >= 1``. lengths: ``(B,)``.
        chain: scores and rules. scan: the log-depth algorithm instead of the sequential one.
        backward: also compute ``beta_e`` (else ``None``).

    Returns:
        ``(alphas (B, L, K), beta_e (B, L, K) or None, log_z (B,))``: ``alphas[b, t, j]`` is log
        of the summed score of the legal prefixes ``0 .. t`` ending in ``j``, ``beta_e`` that of
        the legal suffixes ``t .. end`` starting in ``j`` (emission at ``t`` included in both);
        about ``NEG`` for unreachable tags. ``log_z`` is 0 for empty sequences and ``-inf`` for
        sequences without a legal path.
    """
    start, trans, end = _masked(chain)
    run = _tree if scan else (lambda em, _lengths, s, t: _sequential(em, s, t))
    if backward:
        rev = reverse_index(lengths, emissions.shape[1])  # shape: (B, L)
        both = run(torch.stack([emissions, gather_time(emissions, rev)]), lengths,
                   torch.stack([start, end]), torch.stack([trans, trans.t()]))  # shape: (2, B, L, K)
        alphas, beta_e = both[0], gather_time(both[1], rev)
    else:
        alphas, beta_e = run(emissions[None], lengths, start[None], trans[None])[0], None
    log_z = log_zero_to_inf(logsumexp_(last(alphas, lengths) + end, dim=1))  # shape: (B,)
    return alphas, beta_e, torch.where(lengths > 0, log_z, torch.zeros_like(log_z))


def posteriors(emissions: Tensor, alphas: Tensor, beta_e: Tensor, log_z: Tensor) -> Tensor:
    """Marginals ``exp(alpha + beta_e - emission - log Z)``, ``(B, L, K)`` (entries past a length
    are meaningless; 0 for rows without a legal path)."""
    log_z = torch.where(torch.isfinite(log_z), log_z, NEG).view(-1, 1, 1)
    return exp_floor(alphas + beta_e - emissions - log_z)


class _LogPartition(torch.autograd.Function):
    """log Z with the forward-backward identity as its backward (no per-step autograd graph)."""

    @staticmethod
    def forward(ctx, emissions, lengths, scan, *chain):
        chain = Chain(*chain)
        alphas, beta_e, log_z = scores(emissions, lengths, chain, scan, backward=any(ctx.needs_input_grad))
        ctx.save_for_backward(emissions, lengths, chain.trans, chain.allowed_trans, alphas, beta_e, log_z)
        return log_z

    @staticmethod
    def backward(ctx, grad_log_z):
        emissions, lengths, trans, allowed_trans, alphas, beta_e, log_z = ctx.saved_tensors
        batch, steps, num_tags = emissions.shape
        live = (lengths > 0) & torch.isfinite(log_z)  # shape: (B,)
        weight = torch.where(live, grad_log_z, 0.0).unsqueeze(1) * valid_positions(lengths, steps)  # shape: (B, L)
        # where, not a product alone: past a length the scores are meaningless and may be inf
        marg = posteriors(emissions, alphas, beta_e, log_z)  # shape: (B, L, K)
        grad_emissions = torch.where(weight.unsqueeze(2) != 0, marg * weight.unsqueeze(2), 0.0)
        grad_start = grad_emissions[:, 0].sum(dim=0)  # shape: (K,)
        grad_end = last(grad_emissions, lengths).sum(dim=0)  # shape: (K,)
        # expected transition counts: sum over b, t of exp(alpha_{t-1}(i) + trans[i, j] + beta_e_t(j) - log Z);
        # each term is a probability (<= 1: the clamp only removes rounding above it, and meaningless
        # scores past a length, whose weight is 0); terms below exp(EXP_FLOOR) count as that, which is
        # below float resolution against the sum, and forbidden entries are zeroed at the end
        trans_m = torch.where(allowed_trans, trans, NEG)
        log_z_ = torch.where(live, log_z, 0.0).view(-1, 1, 1)
        grad_trans = torch.zeros_like(trans)
        chunk = max(1, _CHUNK // max(batch * num_tags * num_tags, 1))
        for s in range(1, steps, chunk):
            e = min(steps, s + chunk)
            prev = alphas[:, s - 1 : e - 1] - log_z_  # shape: (B, c, K)
            pair = (prev.unsqueeze(3) + beta_e[:, s:e].unsqueeze(2)).add_(trans_m)  # shape: (B, c, K, K)
            pair.clamp_(min=EXP_FLOOR, max=0.0).exp_()
            grad_trans = grad_trans + torch.einsum("bcij,bc->ij", pair, weight[:, s:e])
        grad_trans = torch.where(allowed_trans, grad_trans, 0.0)
        return grad_emissions, None, None, grad_start, grad_trans, grad_end, None, None, None


def log_partition(emissions: Tensor, lengths: Tensor, chain: Chain, scan: bool = False) -> Tensor:
    """Exact log Z over legal paths of packed sequences, ``(B,)`` (0 when empty, ``-inf`` without
    a legal path), differentiable in the emissions and all chain scores.

    Args:
        emissions: ``(B, L, K)`` packed, ``L >= 1``. lengths: ``(B,)``. chain: scores and rules.
        scan: the log-depth algorithm (same numbers up to float rounding).
    """
    return _LogPartition.apply(emissions, lengths, scan, *chain)


def marginals(emissions: Tensor, lengths: Tensor, chain: Chain, scan: bool = False) -> Tensor:
    """Exact posterior tag probabilities of packed sequences, ``(B, L, K)``, 0 past each length
    (no autograd: works under ``torch.inference_mode``)."""
    alphas, beta_e, log_z = scores(emissions, lengths, chain, scan)
    marg = posteriors(emissions, alphas, beta_e, log_z)
    return torch.where(valid_positions(lengths, emissions.shape[1]).unsqueeze(2), marg, 0.0)
