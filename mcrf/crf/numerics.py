"""The numerical conventions of the CRF core, in one place (torch only).

How "forbidden" (log 0) is written depends on the arithmetic it enters, and each form is
defined here once:

* ``NEG = -1e30`` in **sums** (log Z, marginals, their gradients): finite, so ``x - max`` is
  never ``inf - inf`` and no NaN can reach a gradient; every ``exp`` of it goes through
  :func:`exp_floor`, which never hands ``torch.exp`` an argument whose result would underflow
  (that takes a slow path: about 10-30x slower per element on CPU).
* ``-inf`` in **maxima** (Viterbi, which has no gradient): no finite score, however large,
  outweighs it, so a path with a finite score is legal whatever the scores.
* ``FORBIDDEN_SCORE = -1e4`` only for **export** (``MaskedCRF.masked_transitions``), for
  decoders that take one score matrix; nothing in the layer's own arithmetic adds it.
"""

from __future__ import annotations

import torch
from torch import Tensor

#: The score ``MaskedCRF.masked_transitions`` reports for a forbidden entry (export only).
FORBIDDEN_SCORE = -10000.0
#: log 0 in log-space sums: finite (see the module docstring).
NEG = -1e30
#: Scores above this are real; below it they are (sums of) ``NEG``, i.e. log 0.
FINITE = -1e29
#: ``exp`` arguments are clamped here: ``exp(-80)`` is a normal float32 (~1.8e-35); below float32's
#: normal range (``exp(-87.3)``) ``torch.exp`` takes its slow path.
EXP_FLOOR = -80.0
#: Scores further apart than this within one exp-space step may underflow (float32 ``exp`` spans
#: ~87 nats): the fast exp-space scan flags such rows for the exact log-space recursion.
SAFE_GAP = 60.0
#: ``exp`` arguments above this are clamped in the fast scan's backward (float32 overflows at ~88.7).
MAX_EXP = 80.0


def exp_floor(x: Tensor) -> Tensor:
    """``exp(x)`` with exact zeros where ``x < EXP_FLOOR`` (``torch.exp`` never sees those)."""
    return torch.exp(x.clamp(min=EXP_FLOOR)) * (x >= EXP_FLOOR)


def logsumexp_(x: Tensor, dim: int) -> Tensor:
    """log-sum-exp over ``dim`` of scores that hold ``NEG`` for log 0 (no ``-inf``), computed in
    place: ``x`` must be a temporary (it is overwritten; no autograd runs through it).

    Terms more than ``-EXP_FLOOR`` nats below the maximum count as ``exp(EXP_FLOOR)`` instead of
    their (smaller) value: at most ``K * 1.8e-35`` relative to a sum that is at least 1, below
    float32's and float64's resolution, so the result is the exact one. A slice of only ``NEG``
    terms gives about ``NEG`` (log 0), never NaN.
    """
    top = x.amax(dim=dim, keepdim=True)  # shape: x with dim of size 1
    return x.sub_(top).clamp_(min=EXP_FLOOR).exp_().sum(dim=dim).log_().add_(top.squeeze(dim))


def log_zero_to_inf(x: Tensor) -> Tensor:
    """Scores at or below ``FINITE`` (log 0 carried as ``NEG``) become ``-inf``."""
    return torch.where(x > FINITE, x, float("-inf"))
