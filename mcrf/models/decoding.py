"""Turning decoder output into predictions: post-processing and confidences.

``crf`` and ``softmax`` decoders can output tag sequences that violate the scheme
(an ``I-PER`` after ``O``). As in the paper they are then fixed by one of two
rules (``mcrf.crf.schemes``): ``retain`` (conlleval semantics: the orphan starts an
entity) or ``discard`` (the orphan segment becomes ``O``). ``Decoded.raw_illegal``
records whether the decoder's own output was illegal BEFORE that fix — the
illegal path rate of the paper. The masked decoders never produce illegal output.

Confidences: ``token_confidence[t]`` is the posterior probability of the final tag
at word ``t`` — the CRF marginal ``P(y_t = tag | x)`` from ``MaskedCRF.marginals``
(over legal paths for the masked decoders) or the softmax probability for the
softmax decoder. A span's confidence is the MINIMUM of its words' token
confidences: an upper bound on the probability that all its words carry exactly
these tags (the joint can never exceed its least likely part).

Exception, ``retain`` post-processing: a word whose tag the repair changed (an orphan
``I-PER`` that became ``B-PER``) gets the probability of the RAW decoded tag. The repaired
tag is a relabelling of the decoder's choice, not the decoder's belief: a plain CRF that puts
0.95 on the orphan ``I-PER`` may put 0.01 on ``B-PER`` there, and reporting that would make
a confident entity look like noise. Under ``discard`` the changed words become ``O`` and
keep the probability of ``O`` (the model's belief in the tag that is output).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, List, Mapping, Optional, Sequence, Tuple

import torch
from torch import Tensor

from mcrf.data.types import Sentence
from mcrf.errors import ConfigError
from mcrf.models.config import POSTPROCESS

__all__ = ["Decoded", "Prediction", "postprocess", "make_decoded", "host_table", "decode_rows"]

SpanWithConfidence = Tuple[str, int, int, float]


@dataclass
class Decoded:
    """Prediction for one sentence.

    Attributes:
        tags: one tag per word (legal under the tagger's scheme).
        raw_illegal: the decoder's own output violated the scheme before post-processing.
        token_confidence: per word, the posterior probability of its tag in ``tags`` (of the
            raw decoded tag where ``retain`` changed it; see the module docstring).
        spans: ``(label, start, end, confidence)`` per entity, ``end`` exclusive, confidence =
            minimum token confidence over the span.
    """

    tags: List[str] = field(default_factory=list)
    raw_illegal: bool = False
    token_confidence: List[float] = field(default_factory=list)
    spans: List[SpanWithConfidence] = field(default_factory=list)


@dataclass(frozen=True)
class Prediction:
    """One input sentence and its prediction (what ``mcrf.predict.stream`` yields and ``mcrf.predict.formats`` writes)."""

    sentence: Sentence
    decoded: Decoded


def postprocess(tags: Sequence[str], scheme: str, rule: str) -> Tuple[List[str], bool]:
    """Make a predicted tag sequence legal.

    Args:
        tags: predicted tags of one sentence.
        scheme: canonical scheme name.
        rule: ``"retain"`` (``mcrf.crf.spans.repair``) or ``"discard"`` (``mcrf.crf.spans.discard``).

    Returns:
        ``(legal_tags, was_illegal)``; a legal input is returned unchanged.

    Raises:
        ConfigError: for an unknown rule.
    """
    from mcrf.crf import schemes, spans

    if rule not in POSTPROCESS:
        raise ConfigError(f"expected postprocess rule in {POSTPROCESS}, got {rule!r}")
    tags = list(tags)
    if schemes.is_legal(tags, scheme):
        return tags, False
    fixed = spans.repair(tags, scheme) if rule == "retain" else spans.discard(tags, scheme)
    return list(fixed), True


def make_decoded(
    raw_tags: Sequence[str],
    probabilities: Tensor,
    label_index: Mapping[str, int],
    scheme: str,
    rule: str,
) -> Decoded:
    """Assemble a ``Decoded`` from raw decoder tags and per-word tag probabilities.

    Args:
        raw_tags: the decoder's tags for the ``n`` words of one sentence.
        probabilities: posterior probabilities, shape (n, K) (CRF marginals or softmax).
        label_index: tag string to its column in ``probabilities``.
        scheme: canonical scheme name.
        rule: post-processing rule for illegal output (``TaggerConfig.postprocess``, see ``postprocess``).

    Returns:
        Final tags, raw-illegal flag, token confidences and spans with confidence.
    """
    rows = probabilities.detach().float().cpu()  # shape: (n, K)
    raw = rows.gather(1, torch.tensor([label_index[t] for t in raw_tags], dtype=torch.long).view(-1, 1))
    return assemble(raw_tags, raw.view(-1).tolist(), scheme, rule, lambda t, tag: float(rows[t, label_index[tag]]))


def assemble(
    raw_tags: Sequence[str],
    raw_confidence: Sequence[float],
    scheme: str,
    rule: str,
    confidence_of: Callable[[int, str], float],
) -> Decoded:
    """A ``Decoded`` from raw tags and the probability of each raw tag; ``confidence_of(t, tag)``
    gives the probability of another tag at word ``t`` (asked only where ``discard`` changed a
    word, see the module docstring)."""
    from mcrf.crf.spans import get_spans

    tags, illegal = postprocess(raw_tags, scheme, rule)
    confidence = list(raw_confidence)
    if illegal and rule != "retain":  # retain: a repaired word is scored by the tag the decoder chose
        for t, (tag, raw) in enumerate(zip(tags, raw_tags)):
            if tag != raw:
                confidence[t] = confidence_of(t, tag)
    spans = [
        (span.label, span.start, span.end, min(confidence[span.start : span.end]))
        for span in get_spans(tags, scheme)
    ]
    return Decoded(tags=tags, raw_illegal=illegal, token_confidence=confidence, spans=spans)


def host_table(paths: Tensor, probabilities: Tensor, mask: Tensor, found: Tensor, other: Optional[int]) -> Tensor:
    """Everything a batch's ``Decoded`` needs from the device, as one tensor to copy once.

    Args:
        paths: ``(B, W)`` long, the decoded tag of each word (any value at masked words).
        probabilities: ``(B, W, K)`` posterior tag probabilities.
        mask: ``(B, W)`` bool, the real words (any pattern: they are moved to the front).
        found: ``(B,)`` bool, the sequence has a decoded path.
        other: the column of ``O`` (what ``discard`` writes), or None.

    Returns:
        ``(B, 1 + W, 3)`` float32 (tag indices and lengths are exact below 2^24): row ``[b, 0]``
        holds ``(number of words, found, 0)``, row ``[b, 1 + i]`` the ``i``-th real word's
        ``(tag, P(tag), P(O))``.
    """
    from mcrf.crf.packing import gather_time, pack

    order, lengths = pack(mask)  # shape: (B, W), (B,)
    tags = gather_time(paths, order).clamp(min=0)  # shape: (B, W)
    probabilities = gather_time(probabilities.float(), order)  # shape: (B, W, K)
    chosen = probabilities.gather(2, tags.unsqueeze(2)).squeeze(2)  # shape: (B, W)
    o_prob = probabilities[..., other] if other is not None else torch.zeros_like(chosen)  # shape: (B, W)
    words = torch.stack([tags.float(), chosen, o_prob], dim=2)  # shape: (B, W, 3)
    head = torch.stack([lengths.float(), found.float(), torch.zeros_like(chosen[:, 0])], dim=1)  # shape: (B, 3)
    return torch.cat([head.unsqueeze(1), words], dim=1)  # shape: (B, 1 + W, 3)


def decode_rows(
    table: List[List[List[float]]], labels: Sequence[str], scheme: str, rule: str,
    confidence_of: Callable[[int, int, str], float],
) -> List[Decoded]:
    """``Decoded`` per row of :func:`host_table`'s result (as nested lists);
    ``confidence_of(b, i, tag)`` as in :func:`assemble` for word ``i`` of row ``b``.

    Raises:
        ValueError: a sequence had no decoded path (no legal tag path under the constraints).
    """
    out = []
    for b, row in enumerate(table):
        n, found = int(row[0][0]), row[0][1]
        if n == 0:
            out.append(Decoded())
            continue
        if not found:
            raise ValueError(f"sequence at batch index {b} has no legal tag path under the constraints; "
                             "check allowed_start/allowed_transitions/allowed_end")
        words = row[1 : 1 + n]
        raw = [labels[int(w[0])] for w in words]
        out.append(assemble(raw, [w[1] for w in words], scheme, rule,
                            lambda t, tag, b=b, words=words: words[t][2] if tag == "O" else confidence_of(b, t, tag)))
    return out
