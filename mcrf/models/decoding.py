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
from typing import List, Mapping, Sequence, Tuple

from torch import Tensor

from mcrf.data.types import Sentence
from mcrf.errors import ConfigError
from mcrf.models.config import POSTPROCESS

__all__ = ["Decoded", "Prediction", "postprocess", "make_decoded"]

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
        rule: ``"retain"`` (``mcrf.crf.schemes.repair``) or ``"discard"`` (``mcrf.crf.schemes.discard``).

    Returns:
        ``(legal_tags, was_illegal)``; a legal input is returned unchanged.

    Raises:
        ConfigError: for an unknown rule.
    """
    from mcrf.crf import schemes

    if rule not in POSTPROCESS:
        raise ConfigError(f"expected postprocess rule in {POSTPROCESS}, got {rule!r}")
    tags = list(tags)
    if schemes.is_legal(tags, scheme):
        return tags, False
    fixed = schemes.repair(tags, scheme) if rule == "retain" else schemes.discard(tags, scheme)
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
    from mcrf.crf.schemes import get_spans

    tags, illegal = postprocess(raw_tags, scheme, rule)
    rows = probabilities.detach().float().cpu()  # shape: (n, K)
    # retain: a repaired word is scored by the tag the decoder chose (see the module docstring)
    scored = raw_tags if rule == "retain" else tags
    confidence = [float(rows[t, label_index[tag]]) for t, tag in enumerate(scored)]
    spans = [
        (span.label, span.start, span.end, min(confidence[span.start : span.end]))
        for span in get_spans(tags, scheme)
    ]
    return Decoded(tags=tags, raw_illegal=illegal, token_confidence=confidence, spans=spans)
