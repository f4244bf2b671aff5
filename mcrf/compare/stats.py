"""Statistics of a comparison: mean ± std over seeds, per-sentence span counts, paired tests.

The paired tests work on per-sentence strict-span counts ``(tp, predicted, gold)`` of two
variants on the same test sentences, one row per seed. The statistic is the mean over seeds of
the micro F1 difference ``F1(a) - F1(b)`` (in F1 points), so seed noise and sentence noise both
enter:

- **approximate randomization** (Noreen 1989; Riezler & Maxwell 2005): under the null hypothesis
  the two variants' outputs are exchangeable per sentence, so each sentence's outputs are swapped
  with probability 1/2 (independently per seed); the two-sided p-value is
  ``(1 + #{|Δ*| >= |Δ|}) / (1 + R)``;
- **paired bootstrap** (Koehn 2004; Berg-Kirkpatrick et al. 2012): the test sentences are
  resampled with replacement (the same draw for every seed) and the 2.5/97.5 percentiles of Δ*
  give a 95% confidence interval.

Everything is vectorised in torch (float64) in chunks of resamples, seeded, so reruns agree.
"""

from __future__ import annotations

import math
from typing import Dict, List, Sequence, Tuple

import torch
from torch import Tensor

__all__ = ["sentence_counts", "f1_points", "mean_std", "paired_test"]

_CHUNK = 500  # resamples per vectorised block (bounds memory: chunk x sentences float64)


def sentence_counts(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]],
                    scheme: str) -> List[List[int]]:
    """Per sentence ``[tp, predicted spans, gold spans]`` under strict span matching.

    Args:
        gold: gold tags, one sequence per sentence (legal under ``scheme``).
        pred: predicted tags, aligned with ``gold``.
        scheme: their tag scheme (``mcrf.crf.schemes`` name).

    Returns:
        One ``[tp, pred, gold]`` triple per sentence; summed, they give the micro F1 that
        ``mcrf.evaluation.score_predictions`` reports for legal sequences.
    """
    from mcrf.crf.spans import get_spans

    rows = []
    for g, p in zip(gold, pred):
        g_spans, p_spans = set(get_spans(list(g), scheme)), set(get_spans(list(p), scheme))
        rows.append([len(g_spans & p_spans), len(p_spans), len(g_spans)])
    return rows


def f1_points(tp: Tensor, pred: Tensor, gold: Tensor) -> Tensor:
    """Micro F1 in points (0-100) from summed counts; 0 where there are no spans at all."""
    denominator = pred + gold
    return torch.where(denominator > 0, 200.0 * tp / denominator.clamp(min=1), torch.zeros_like(denominator))


def mean_std(values: Sequence[float]) -> Tuple[float, float]:
    """Mean and sample standard deviation (n - 1; 0.0 for a single value)."""
    n = len(values)
    if n == 0:
        return float("nan"), float("nan")
    mean = sum(values) / n
    if n == 1:
        return mean, 0.0
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))


def _counts(rows: Sequence[Sequence[Sequence[int]]]) -> Tensor:
    """Per-seed per-sentence counts as a float64 tensor of shape (S, N, 3)."""
    tensor = torch.tensor(rows, dtype=torch.float64)  # shape: (S, N, 3)
    if tensor.dim() != 3 or tensor.shape[-1] != 3:
        raise ValueError(f"expected counts shaped (seeds, sentences, 3), got {tuple(tensor.shape)}")
    return tensor


def paired_test(a: Sequence[Sequence[Sequence[int]]], b: Sequence[Sequence[Sequence[int]]],
                resamples: int = 10000, seed: int = 0) -> Dict[str, float]:
    """Paired approximate randomization p-value and bootstrap 95% CI of ``F1(a) - F1(b)``.

    Args:
        a: per seed, per test sentence ``[tp, pred, gold]`` of variant a, shape (S, N, 3).
        b: the same for variant b (same seeds, same sentences, same gold counts).
        resamples: number of randomizations and of bootstrap draws.
        seed: seed of the resampling generator.

    Returns:
        ``{"delta", "p_value", "ci_low", "ci_high", "resamples"}`` with Δ, CI in F1 points.

    Raises:
        ValueError: shapes differ or the gold counts differ (not the same sentences).
    """
    ca, cb = _counts(a), _counts(b)
    if ca.shape != cb.shape or not torch.equal(ca[..., 2], cb[..., 2]):
        raise ValueError(f"expected the two variants' counts on the same sentences, got shapes "
                         f"{tuple(ca.shape)} and {tuple(cb.shape)} (or different gold span counts)")
    seeds, n, _ = ca.shape
    ta, tb = ca.sum(dim=1), cb.sum(dim=1)  # shape: (S, 3)
    observed = float((f1_points(ta[:, 0], ta[:, 1], ta[:, 2]) - f1_points(tb[:, 0], tb[:, 1], tb[:, 2])).mean())
    gen = torch.Generator().manual_seed(seed)
    diff = ca[..., :2] - cb[..., :2]  # shape: (S, N, 2) per-sentence (tp, pred) differences
    extreme, boot = 0, []
    for start in range(0, resamples, _CHUNK):
        r = min(_CHUNK, resamples - start)
        # approximate randomization: swap a sentence's two outputs with probability 1/2
        delta = torch.zeros(r, dtype=torch.float64)  # shape: (r,)
        for s in range(seeds):
            swap = torch.randint(0, 2, (r, n), generator=gen).to(torch.float64)  # shape: (r, N)
            moved = swap @ diff[s]  # shape: (r, 2)
            pa, pb = ta[s, :2] - moved, tb[s, :2] + moved  # shape: (r, 2)
            delta += f1_points(pa[:, 0], pa[:, 1], ta[s, 2]) - f1_points(pb[:, 0], pb[:, 1], tb[s, 2])
        extreme += int(((delta / seeds).abs() >= abs(observed) - 1e-9).sum())
        # paired bootstrap: the same resampled sentences for every seed
        picks = torch.randint(0, n, (r, n), generator=gen)  # shape: (r, N)
        weights = torch.zeros(r, n, dtype=torch.float64).scatter_add_(
            1, picks, torch.ones(r, n, dtype=torch.float64))  # shape: (r, N)
        sa, sb = weights @ ca, weights @ cb  # shape: (S, r, 3)
        boot.append((f1_points(sa[..., 0], sa[..., 1], sa[..., 2])
                     - f1_points(sb[..., 0], sb[..., 1], sb[..., 2])).mean(dim=0))
    draws = torch.cat(boot)  # shape: (resamples,)
    low, high = torch.quantile(draws, torch.tensor([0.025, 0.975], dtype=torch.float64)).tolist()
    return {"delta": observed, "p_value": (1 + extreme) / (1 + resamples), "ci_low": low, "ci_high": high,
            "resamples": resamples}
