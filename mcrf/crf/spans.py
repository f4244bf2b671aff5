"""Entities as spans of a tag sequence: reading them, writing them in a scheme, repair and conversion.

Reading is strict (:func:`get_spans`: only what the scheme itself writes) or lenient, with conlleval
semantics (:func:`repair`, :func:`convert`: every non-O tag belongs to some entity). The schemes
themselves are the tables of ``mcrf.crf.schemes``.

Depends on the standard library only.
"""

from __future__ import annotations

from typing import Iterable, List, NamedTuple, Sequence

from mcrf.crf.schemes import SCHEMES, tag_role, canonical_scheme

__all__ = ["Span", "get_spans", "spans_to_tags", "repair", "discard", "convert"]


class Span(NamedTuple):
    """An entity: its type ``label`` and token range ``[start, end)``."""

    label: str
    start: int
    end: int


def _chunks(tags: Sequence[str], scheme: str) -> List[Span]:
    """Lenient (conlleval) chunking: every non-O tag belongs to some entity.

    A new entity starts at a non-O tag when it is the first tag, or the previous tag is O,
    ends an entity (E, S), has another type, or the tag itself begins one (B, S).
    """
    spans: List[Span] = []
    prev_role, prev_type, start = "O", "", -1
    for i, tag in enumerate(tags):
        role, etype = tag_role(tag, scheme, i)
        if role == "O":
            if start >= 0:
                spans.append(Span(prev_type, start, i))
            start = -1
        elif start < 0 or prev_role in ("E", "S") or role in ("B", "S") or etype != prev_type:
            if start >= 0:
                spans.append(Span(prev_type, start, i))
            start = i
        prev_role, prev_type = role, etype
    if start >= 0:
        spans.append(Span(prev_type, start, len(tags)))
    return spans


def _encode(spans: Sequence[Span], length: int, scheme: str) -> List[str]:
    spec = SCHEMES[scheme]
    tags = ["O"] * length
    for j, (label, start, end) in enumerate(spans):
        suffix = f"-{label}" if label else ""
        if end - start == 1:
            tags[start] = spec.single + suffix
        else:
            tags[start] = spec.first + suffix
            for i in range(start + 1, end - 1):
                tags[i] = spec.inside + suffix
            tags[end - 1] = spec.last + suffix
        if spec.after_same and j > 0 and spans[j - 1].end == start and spans[j - 1].label == label:
            tags[start] = spec.after_same + suffix
        if spec.before_same and j + 1 < len(spans) and spans[j + 1].start == end and spans[j + 1].label == label:
            tags[end - 1] = spec.before_same + suffix
    return tags


def spans_to_tags(spans: Iterable[Span], length: int, scheme: str) -> List[str]:
    """Write non-overlapping spans as a legal tag sequence of ``length`` tags.

    An empty label gives bare prefixes (``"B"``, ``"E"`` ...).

    >>> spans_to_tags([Span("PER", 0, 2), Span("PER", 2, 3)], 4, "IOB1")
    ['I-PER', 'I-PER', 'B-PER', 'O']
    >>> spans_to_tags([("", 0, 3), ("", 3, 4)], 4, "BMES")
    ['B', 'M', 'E', 'S']
    """
    scheme = canonical_scheme(scheme)
    ordered = sorted((Span(*s) for s in spans), key=lambda s: s.start)
    for j, s in enumerate(ordered):
        if not (0 <= s.start < s.end <= length):
            raise ValueError(f"span {tuple(s)} is outside [0, {length}) or empty; expected 0 <= start < end <= length")
        if j and ordered[j - 1].end > s.start:
            raise ValueError(f"spans {tuple(ordered[j - 1])} and {tuple(s)} overlap; expected disjoint spans")
    return _encode(ordered, length, scheme)


def get_spans(tags: Sequence[str], scheme: str) -> List[Span]:
    """Strict span extraction: entities whose tags are exactly what ``scheme`` writes for them.

    Illegal fragments (an orphan ``I-X`` in BIO, an unclosed ``B-X`` in BIOES ...) are not spans.

    >>> get_spans(["B-PER", "I-PER", "O", "I-LOC", "B-ORG"], "BIO")
    [Span(label='PER', start=0, end=2), Span(label='ORG', start=4, end=5)]
    >>> get_spans(["B-PER", "E-PER", "B-LOC", "O"], "BIOES")
    [Span(label='PER', start=0, end=2)]
    """
    scheme = canonical_scheme(scheme)
    chunks = _chunks(tags, scheme)
    canonical = _encode(chunks, len(tags), scheme)
    return [c for c in chunks if all(canonical[i] == tags[i] for i in range(c.start, c.end))]


def repair(tags: Sequence[str], scheme: str) -> List[str]:
    """Make ``tags`` legal with conlleval semantics: every non-O tag stays in an entity, an
    orphan continuation (``I-X`` after ``O``) starts a new one, an unclosed entity is closed.

    >>> repair(["O", "I-PER", "I-PER", "I-LOC"], "BIO")
    ['O', 'B-PER', 'I-PER', 'B-LOC']
    >>> repair(["B-PER", "I-PER", "O"], "BIOES")
    ['B-PER', 'E-PER', 'O']
    """
    scheme = canonical_scheme(scheme)
    return _encode(_chunks(tags, scheme), len(tags), scheme)


def discard(tags: Sequence[str], scheme: str) -> List[str]:
    """Make ``tags`` legal by turning every illegal fragment into ``O`` (strict spans are kept).

    >>> discard(["O", "I-PER", "I-PER", "B-LOC"], "BIO")
    ['O', 'O', 'O', 'B-LOC']
    """
    scheme = canonical_scheme(scheme)
    return _encode(get_spans(tags, scheme), len(tags), scheme)


def convert(tags: Sequence[str], source: str, target: str) -> List[str]:
    """Convert a tag sequence between any two schemes, preserving its entities.

    Illegal input is read with conlleval semantics (as :func:`repair` does) before conversion.

    >>> convert(["I-ORG", "I-ORG", "B-ORG", "O", "I-PER"], "IOB1", "BIO")
    ['B-ORG', 'I-ORG', 'B-ORG', 'O', 'B-PER']
    >>> convert(["B-PER", "I-PER", "I-PER", "B-LOC"], "BIO", "BIOES")
    ['B-PER', 'I-PER', 'E-PER', 'S-LOC']
    >>> convert(["B-PER", "M-PER", "E-PER", "S-LOC"], "BMES", "BILOU")
    ['B-PER', 'I-PER', 'L-PER', 'U-LOC']
    """
    source, target = canonical_scheme(source), canonical_scheme(target)
    if source == target:
        return repair(tags, source)
    return _encode(_chunks(tags, source), len(tags), target)
