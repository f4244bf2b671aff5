"""Tag schemes: allowed transitions, legality, and detecting a scheme from labels.

Seven schemes are described as data tables (in the style of seqeval): which prefix a
tag carries in each *role* of an entity (the single token of a one-token entity, the
first, an inside and the last token of a longer one). The allowed-transition rules
are one pure function over roles (in the style of AllenNLP's ``allowed_transitions``).

Every tag is ``"O"``, ``"<prefix>-<type>"`` or a bare prefix (``"B"``, ``"M"`` ... as in
Chinese word segmentation, entity type ``""``). Roles are ``B`` (begins), ``I``
(inside), ``E`` (ends), ``S`` (single) and ``O``; ``START``/``END`` stand for the
sequence borders. Entities as spans, repair and conversion between schemes are in
``mcrf.crf.spans``.

Depends on torch and the standard library only.
"""

from __future__ import annotations

from typing import Dict, Iterable, List, NamedTuple, Optional, Sequence, Tuple

import torch

__all__ = [
    "SCHEMES", "Constraints", "canonical_scheme", "allowed_transitions", "check_labels", "detect_scheme",
    "detect_corpus_scheme", "first_illegal", "is_legal", "entity_types", "scheme_labels", "tag_role",
]


class SchemeSpec(NamedTuple):
    """One tag scheme as data.

    ``roles`` maps each prefix to its role; ``single``/``first``/``inside``/``last`` are
    the prefixes written when encoding an entity; ``after_same`` (IOB1) is the prefix
    of the first token of an entity that directly follows one of the same type, and
    ``before_same`` (IOE1) the prefix of the last token of an entity directly followed
    by one of the same type.
    """

    roles: Dict[str, str]
    single: str
    first: str
    inside: str
    last: str
    after_same: Optional[str] = None
    before_same: Optional[str] = None


SCHEMES: Dict[str, SchemeSpec] = {
    "IOB1": SchemeSpec({"I": "I", "B": "B"}, "I", "I", "I", "I", after_same="B"),
    "BIO": SchemeSpec({"B": "B", "I": "I"}, "B", "B", "I", "I"),
    "IOE1": SchemeSpec({"I": "I", "E": "E"}, "I", "I", "I", "I", before_same="E"),
    "IOE2": SchemeSpec({"I": "I", "E": "E"}, "E", "I", "I", "E"),
    "BIOES": SchemeSpec({"B": "B", "I": "I", "E": "E", "S": "S"}, "S", "B", "I", "E"),
    "BILOU": SchemeSpec({"B": "B", "I": "I", "L": "E", "U": "S"}, "U", "B", "I", "L"),
    "BMES": SchemeSpec({"B": "B", "M": "I", "E": "E", "S": "S"}, "S", "B", "M", "E"),
}
_ALIASES = {"IOB2": "BIO", "IOBES": "BIOES", "BIOUL": "BILOU"}
_ALL_PREFIXES = frozenset("BIESLUM")


class Constraints(NamedTuple):
    """Allowed-transition tables: ``start (K,)``, ``transitions (K, K)[from, to]``, ``end (K,)`` (bool)."""

    start: torch.Tensor
    transitions: torch.Tensor
    end: torch.Tensor


def canonical_scheme(name: str) -> str:
    """Return the canonical name of a tag scheme (case-insensitive, aliases resolved).

    >>> canonical_scheme("iob2"), canonical_scheme("IOBES"), canonical_scheme("bioul")
    ('BIO', 'BIOES', 'BILOU')
    """
    if not isinstance(name, str):
        raise TypeError(f"expected a scheme name (str), got {type(name).__name__}")
    upper = name.strip().upper()
    upper = _ALIASES.get(upper, upper)
    if upper not in SCHEMES:
        valid = ", ".join(list(SCHEMES) + list(_ALIASES))
        raise ValueError(f"unknown tag scheme {name!r}; expected one of {valid}")
    return upper


def _split_tag(tag: str) -> Tuple[str, str]:
    """Split a tag into ``(prefix, type)``; ``"O"`` gives ``("O", "")``."""
    if tag == "O":
        return "O", ""
    prefix, sep, etype = tag.partition("-")
    if sep and not etype:
        raise ValueError(f"tag {tag!r} has an empty entity type; expected e.g. '{prefix}-PER'")
    return prefix, etype


def tag_role(tag: str, scheme: str, position: Optional[int] = None) -> Tuple[str, str]:
    """The ``(role, type)`` of ``tag`` under the canonical ``scheme``, or a ValueError naming the prefix.

    >>> tag_role("I-PER", "BIO"), tag_role("O", "BIO"), tag_role("M", "BMES")
    (('I', 'PER'), ('O', ''), ('I', ''))
    """
    prefix, etype = _split_tag(tag)
    if prefix == "O":
        return "O", ""
    role = SCHEMES[scheme].roles.get(prefix)
    if role is None:
        where = f" at position {position}" if position is not None else ""
        valid = ", ".join(f"{p}-TYPE" for p in SCHEMES[scheme].roles)
        raise ValueError(
            f"unknown tag prefix in {tag!r}{where} for scheme {scheme}: expected O, {valid} "
            f"(or a bare prefix); pass the scheme the data is written in"
        )
    return role, etype


def _allowed(scheme: str, from_role: str, from_type: str, to_role: str, to_type: str) -> bool:
    """Whether ``to`` may follow ``from`` under ``scheme`` (roles; START/END are the borders)."""
    same = from_type == to_type
    from_entity = from_role not in ("START", "O")
    if scheme == "IOB1":
        # B-X marks an entity that directly follows another X entity, so it may only come
        # after an X tag (B-X or I-X); I-X may start an entity anywhere, O and END anywhere.
        if to_role == "B":
            return from_entity and same
        return True
    if scheme == "BIO":
        # I-X continues an X entity: only after B-X or I-X. Everything else is free.
        if to_role == "I":
            return from_entity and same
        return True
    if scheme == "IOE1":
        # E-X ends an entity that is directly followed by another X entity, so after E-X
        # only I-X or E-X may come (not O, another type, or the end of the sequence).
        if from_role == "E":
            return to_role in ("I", "E") and same
        return True
    if scheme == "IOE2":
        # Every entity ends with E-X, so I-X must be followed by I-X or E-X.
        if from_role == "I":
            return to_role in ("I", "E") and same
        return True
    # BIOES / BILOU / BMES: after B-X or I-X (M-X) the entity must go on with I-X or close with
    # E-X; after O, E, S or at the start an entity can only open with B or S (or O / END).
    if from_role in ("B", "I"):
        return to_role in ("I", "E") and same
    return to_role not in ("I", "E")


def allowed_transitions(labels: Sequence[str], scheme: str) -> Constraints:
    """Build the allowed start ``(K,)``, transition ``(K, K)[from, to]`` and end ``(K,)`` tables.

    Args:
        labels: the tag strings, index ``k`` is tag id ``k``.
        scheme: a scheme name (aliases accepted).

    >>> c = allowed_transitions(["O", "B-PER", "I-PER"], "BIO")
    >>> c.start.tolist(), c.transitions[0].tolist(), c.end.tolist()
    ([True, True, False], [True, True, False], [True, True, True])
    """
    start, trans, end = _allowed_lists(labels, canonical_scheme(scheme))
    k = len(start)
    return Constraints(torch.tensor(start, dtype=torch.bool),  # shape: (K,)
                       torch.tensor(trans, dtype=torch.bool).reshape(k, k),  # shape: (K, K) [from, to]
                       torch.tensor(end, dtype=torch.bool))  # shape: (K,)


def _allowed_lists(labels: Sequence[str], scheme: str) -> Tuple[List[bool], List[List[bool]], List[bool]]:
    """The three tables of ``allowed_transitions`` as Python lists (``scheme`` canonical)."""
    parsed = [tag_role(tag, scheme, i) for i, tag in enumerate(labels)]
    start = [_allowed(scheme, "START", "", r, t) for r, t in parsed]
    end = [_allowed(scheme, r, t, "END", "") for r, t in parsed]
    trans = [[_allowed(scheme, fr, ft, tr, tt) for tr, tt in parsed] for fr, ft in parsed]
    return start, trans, end


def check_labels(labels: Sequence[str], scheme: str) -> Constraints:
    """``allowed_transitions(labels, scheme)`` after checking that the labels can tag every entity they name.

    Refused: a label given twice, and an entity type that no legal path can open and close
    (``["O", "B-PER", "I-PER"]`` under BIOES: nothing may follow ``B-PER``/``I-PER`` but ``I-PER``/``E-PER``,
    so every path would be all ``O``). A type is usable when some tag of it may start a sequence
    and a chain of its own tags leads from there to one that may end it.

    Args:
        labels: the tag strings, index ``k`` is tag id ``k``.
        scheme: a scheme name (aliases accepted).

    Raises:
        ValueError: duplicates, tags of another scheme, or a type that cannot be opened or closed,
            naming the labels to add.

    >>> check_labels(["O", "B-PER", "I-PER", "E-PER", "S-PER"], "BIOES").end.tolist()
    [True, False, False, True, True]
    >>> check_labels(["O", "B-PER", "I-PER"], "BIOES")
    Traceback (most recent call last):
    ...
    ValueError: labels ['O', 'B-PER', 'I-PER'] cannot tag a whole PER entity under BIOES (no legal path opens and closes one); add E-PER, S-PER, or pass the scheme the labels are written in
    """
    scheme = canonical_scheme(scheme)
    labels = list(labels)
    duplicates = sorted({label for label in labels if labels.count(label) > 1})
    if duplicates:
        raise ValueError(f"labels {labels} repeat {duplicates}; give each tag once")
    start, transitions, end = _allowed_lists(labels, scheme)  # lists: no tensor is read (a meta build works)
    unusable: List[str] = []
    missing: List[str] = []
    for etype in entity_types(labels):
        own = [k for k, label in enumerate(labels) if label != "O" and _split_tag(label)[1] == etype]
        reached = {k for k in own if start[k]}
        frontier = list(reached)
        while frontier:  # tags of this type reachable from an opening one through tags of this type
            k = frontier.pop()
            for j in own:
                if transitions[k][j] and j not in reached:
                    reached.add(j)
                    frontier.append(j)
        if not any(end[k] for k in reached):
            unusable.append(etype or "untyped")
            missing.extend(tag for tag in scheme_labels([etype], scheme) if tag not in labels)
    if unusable:
        raise ValueError(f"labels {labels} cannot tag a whole {', '.join(unusable)} entity under {scheme} (no legal "
                         f"path opens and closes one); add {', '.join(missing)}, or pass the scheme the labels are "
                         "written in")
    return allowed_transitions(labels, scheme)


def first_illegal(tags: Sequence[str], scheme: str) -> Optional[int]:
    """Index of the first tag that cannot follow the previous one (``len(tags)`` if the sequence
    cannot end there), or ``None`` for a legal sequence.

    >>> first_illegal(["O", "I-PER"], "BIO"), first_illegal(["B-PER", "I-PER"], "BIOES")
    (1, 2)
    >>> first_illegal(["I-PER", "B-PER"], "IOB1") is None
    True
    """
    scheme = canonical_scheme(scheme)
    prev_role, prev_type = "START", ""
    for i, tag in enumerate(tags):
        role, etype = tag_role(tag, scheme, i)
        if not _allowed(scheme, prev_role, prev_type, role, etype):
            return i
        prev_role, prev_type = role, etype
    if not _allowed(scheme, prev_role, prev_type, "END", ""):
        return len(tags)
    return None


def is_legal(tags: Sequence[str], scheme: str) -> bool:
    """Whether every transition of ``tags`` (start and end included) is allowed.

    >>> is_legal(["B-LOC", "I-LOC", "O"], "BIO"), is_legal(["I-LOC"], "BIO")
    (True, False)
    """
    return first_illegal(tags, scheme) is None


def entity_types(labels: Iterable[str]) -> List[str]:
    """Sorted entity types named in ``labels`` (bare prefixes give the type ``""``).

    >>> entity_types(["O", "B-PER", "I-PER", "B-LOC"])
    ['LOC', 'PER']
    """
    types = set()
    for label in labels:
        prefix, etype = _split_tag(label)
        if prefix == "O":
            continue
        if prefix not in _ALL_PREFIXES:
            raise ValueError(
                f"label {label!r} is not a tag: expected 'O', PREFIX-TYPE or a bare prefix with "
                f"PREFIX one of {', '.join(sorted(_ALL_PREFIXES))}"
            )
        types.add(etype)
    return sorted(types)


def scheme_labels(types: Iterable[str], scheme: str) -> List[str]:
    """The complete tag inventory of ``scheme`` for ``types``: ``"O"`` first, then sorted.

    >>> scheme_labels(["PER", "LOC"], "BIO")
    ['O', 'B-LOC', 'B-PER', 'I-LOC', 'I-PER']
    >>> scheme_labels([""], "BMES")
    ['O', 'B', 'E', 'M', 'S']
    """
    scheme = canonical_scheme(scheme)
    prefixes = SCHEMES[scheme].roles
    tags = {f"{p}-{t}" if t else p for t in set(types) for p in prefixes}
    return ["O"] + sorted(tags)


def _candidates(prefixes: set) -> List[str]:
    return [name for name, spec in SCHEMES.items() if prefixes <= set(spec.roles)]


def detect_scheme(labels: Iterable[str]) -> str:
    """Guess the scheme of a label list from its prefixes.

    ``B``/``I`` alone is ambiguous between IOB1 and BIO: label lists default to BIO (use
    :func:`detect_corpus_scheme` on sequences to tell them apart); likewise ``I``/``E``
    defaults to IOE2. Only ``I`` prefixes give IOB1 (IOB1 and IOE1 coincide then).

    >>> detect_scheme(["O", "B-PER", "I-PER"]), detect_scheme(["O", "B-X", "E-X", "S-X"])
    ('BIO', 'BIOES')
    >>> detect_scheme(["B", "M", "E", "S"]), detect_scheme(["O", "U-X", "L-X"])
    ('BMES', 'BILOU')
    """
    labels = list(labels)
    entity_types(labels)  # validates every label
    prefixes = {_split_tag(label)[0] for label in labels} - {"O"}
    if not prefixes:
        raise ValueError(f"cannot detect a tag scheme from {labels[:5]!r}: no entity tags; pass the scheme explicitly")
    if prefixes == {"I"}:  # BIO cannot write I-X without B-X; IOB1 (= IOE1 here) can
        return "IOB1"
    candidates = _candidates(prefixes)
    for preferred in ("BIO", "IOB1", "IOE2", "BIOES", "BILOU", "BMES"):
        if preferred in candidates:
            return preferred
    raise ValueError(
        f"labels with prefixes {sorted(prefixes)} fit no single scheme (candidates: IOB1, BIO, IOE1, IOE2, "
        f"BIOES, BILOU, BMES); fix the labels or pass the scheme explicitly"
    )


def detect_corpus_scheme(sequences: Iterable[Sequence[str]]) -> str:
    """Detect the scheme of tag sequences, telling IOB1 from BIO (and IOE1 from IOE2) by usage.

    Entities opened by ``I-X`` (after ``O``, another type or at the start) count for IOB1,
    entities opened by ``B-X`` there count for BIO; the majority wins (ties go to BIO), so a
    few annotation slips do not flip the verdict. IOE1/IOE2 are decided the same way at
    entity ends.

    >>> detect_corpus_scheme([["I-PER", "O", "I-LOC", "B-LOC"]])
    'IOB1'
    >>> detect_corpus_scheme([["B-PER", "I-PER", "O"], ["I-LOC"]])
    'BIO'
    """
    sequences = [list(s) for s in sequences]
    scheme = detect_scheme({tag for seq in sequences for tag in seq})
    if scheme not in ("BIO", "IOB1", "IOE2"):
        return scheme
    votes = {"IOB1": 0, "BIO": 0, "IOE1": 0, "IOE2": 0}
    for seq in sequences:
        parts = [_split_tag(t) for t in seq]
        for i, (prefix, etype) in enumerate(parts):
            if prefix == "O":
                continue
            prev, nxt = parts[i - 1] if i else ("O", ""), parts[i + 1] if i + 1 < len(parts) else ("O", "")
            if prev[0] == "O" or prev[1] != etype:
                votes["IOB1" if prefix == "I" else "BIO"] += prefix in ("I", "B")
            if nxt[0] == "O" or nxt[1] != etype:
                votes["IOE1" if prefix == "I" else "IOE2"] += prefix in ("I", "E")
    if scheme == "IOE2":
        return "IOE1" if votes["IOE1"] > votes["IOE2"] else "IOE2"
    return "IOB1" if votes["IOB1"] > votes["BIO"] else "BIO"
