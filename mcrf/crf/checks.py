"""Input and parameter checks of :class:`mcrf.MaskedCRF` (torch only).

Checks of types and shapes cost nothing and always run. Checks of values (finite emissions
and CRF parameters, tags in range, 0/1 integer masks, legal gold sequences) read a value back
to the host, which is a device synchronisation on a GPU: they run only when the layer's
``validate`` is on. Messages start with pytorch-crf's text where pytorch-crf raises the same
error (code may match on it), followed by what was expected and the fix.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from mcrf.crf import ops as crf_ops

# The functions take the ``MaskedCRF`` as ``nn.Module`` (``crf.py`` imports this module, not the reverse).


def check_parameters(crf: torch.nn.Module) -> None:
    """Raise a ``ValueError`` naming the first CRF parameter that holds NaN or infinity.

    Runs on every call when ``validate=True``; with ``validate=False`` call it from the
    training loop (e.g. once per evaluation): it reads one value back to the host.
    """
    params = (crf.start_transitions, crf.transitions, crf.end_transitions)
    finite = torch.stack([torch.isfinite(p.detach()).all() for p in params])  # shape: (3,)
    if bool(finite.all()):
        return
    name = ("start_transitions", "transitions", "end_transitions")[int((~finite).nonzero()[0])]
    raise ValueError(
        f"the CRF parameter {name} holds non-finite values (NaN or inf); expected finite scores. "
        "Training diverged (lower the learning rate) or a state_dict with broken values was loaded"
    )


def prepare(crf: torch.nn.Module, emissions: Tensor, tags: Optional[Tensor], mask: Optional[Tensor], checking: bool):
    """Validate and convert to batch-first float32 emissions, long tags, bool mask.

    Types and shapes are always checked (no host read); the value checks (0/1 integer mask,
    finite emissions and parameters, tags in range) only when ``checking``.

    Returns:
        ``(emissions (B, T, K), tags (B, T) long or None, mask (B, T) bool)``, batch-first.
    """
    if not isinstance(emissions, Tensor):
        raise TypeError(f"emissions must be a torch.Tensor, got {type(emissions).__name__}")
    if emissions.dim() != 3:
        raise ValueError(
            f"emissions must have dimension of 3, got {emissions.dim()}; "
            "expected (batch, seq, num_tags) with batch_first=True, else (seq, batch, num_tags)"
        )
    if not emissions.is_floating_point():
        raise TypeError(f"emissions must be a floating point tensor, got dtype {emissions.dtype}")
    if emissions.size(2) != crf.num_tags:
        raise ValueError(
            f"expected last dimension of emissions is {crf.num_tags}, got {emissions.size(2)}; "
            "the last dimension holds one score per tag (num_tags)"
        )
    lead = tuple(emissions.shape[:2])
    if tags is not None:
        _check_lead("tags", tags, lead, "tags hold one tag index per position")
        if tags.is_floating_point() or tags.dtype == torch.bool or tags.is_complex():
            raise TypeError(f"tags must be an integer tensor (torch.long), got dtype {tags.dtype}")
    if mask is None:
        mask = torch.ones(lead, dtype=torch.bool, device=emissions.device)
    else:
        _check_lead("mask", mask, lead, "the mask holds one flag per position")
        if mask.dtype != torch.bool:
            if mask.is_floating_point() or mask.is_complex():
                raise TypeError(
                    f"mask must be bool (or an integer tensor of 0/1), got dtype {mask.dtype}; "
                    "use mask.bool() if it holds 0.0/1.0"
                )
            if checking and mask.numel() and not ((mask == 0) | (mask == 1)).all():
                bad = mask[(mask != 0) & (mask != 1)][0].item()
                raise ValueError(f"an integer mask must hold only 0 and 1, got value {bad}")
            mask = mask != 0
    if not crf.batch_first:
        emissions = emissions.transpose(0, 1)
        mask = mask.transpose(0, 1)
        tags = tags.transpose(0, 1) if tags is not None else None
    # float32 at least (fp16/bf16 are upcast); float64 stays float64 (gradcheck).
    emissions = emissions.to(torch.promote_types(emissions.dtype, torch.float32))
    if checking:
        check_parameters(crf)
        # One cheap reduction first; the exact check only when the sum is not finite.
        if not torch.isfinite(emissions.sum()) and not torch.isfinite(emissions).all():
            kind = "NaN" if torch.isnan(emissions).any() else "infinite"
            raise ValueError(f"emissions contain {kind} values; expected finite scores")
        if tags is not None:
            out = mask & ((tags < 0) | (tags >= crf.num_tags))
            if out.any():
                b, t = out.nonzero()[0].tolist()
                raise ValueError(
                    f"tags must be in [0, {crf.num_tags}) at unmasked positions, got "
                    f"{tags[b, t].item()} at batch index {b}, position {t}"
                )
    return emissions, (tags.long() if tags is not None else None), mask


def _check_lead(name: str, value, lead: tuple, what: str) -> None:
    """``value`` is a tensor whose shape is the emissions' first two dimensions ``lead``."""
    if not isinstance(value, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if tuple(value.shape) != lead:
        # pytorch-crf's message first, then ours
        raise ValueError(
            f"the first two dimensions of emissions and {name} must match, "
            f"got {lead} and {tuple(value.shape)}; {what}"
        )


def check_gold(crf: torch.nn.Module, tags: Tensor, lengths: Tensor, order: Tensor, chain: crf_ops.Chain) -> None:
    """Raise a ``ValueError`` naming the first gold tag sequence the constraints forbid.

    Args:
        tags: ``(B, L)`` packed gold tags; ``order``: ``(B, L)`` their input positions.
    """
    bad = crf_ops.first_violation(tags, lengths, chain)
    if not bad.any():
        return
    b, s = bad.nonzero()[0].tolist()
    name = (lambda i: crf.labels[i]) if crf.labels else (lambda i: str(i))
    pos = int(order[b, s])
    if s == 0 and not bool(chain.allowed_start[tags[b, 0]]):
        what = f"sequence starts with {name(int(tags[b, 0]))!r}"
    elif s > 0 and not bool(chain.allowed_trans[tags[b, s - 1], tags[b, s]]):
        what = f"transition {name(int(tags[b, s - 1]))!r} -> {name(int(tags[b, s]))!r}"
    else:
        what = f"sequence ends with {name(int(tags[b, s]))!r}"
    raise ValueError(
        f"illegal gold tag sequence at batch index {b}, position {pos}: {what} is forbidden "
        f"by the {crf.scheme or 'given'} constraints (its likelihood is zero under mode='mcrf'); "
        "repair the data (e.g. mcrf.crf.spans.repair) or use mode='mcrf-decoding'"
    )
