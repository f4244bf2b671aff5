"""Tests of mcrf.crf.schemes: brute-force legality against the transition tables, round trips, errors."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mcrf.crf import schemes
from mcrf.crf.schemes import (
    allowed_transitions, canonical_scheme, detect_corpus_scheme, detect_scheme, first_illegal, is_legal, scheme_labels,
)
from mcrf.crf.spans import Span, _chunks, convert, discard, get_spans, repair, spans_to_tags

ALL = list(schemes.SCHEMES)
TYPES = ["X", "Y"]


def _table_legal(tags, labels, cons) -> bool:
    """Legality according to the allowed tables only."""
    if not tags:
        return True
    ids = [labels.index(t) for t in tags]
    if not cons.start[ids[0]] or not cons.end[ids[-1]]:
        return False
    return all(bool(cons.transitions[a, b]) for a, b in zip(ids, ids[1:]))


@pytest.mark.parametrize("scheme", ALL)
def test_tables_accept_exactly_the_canonical_encodings(scheme):
    """A sequence passes the tables iff it is exactly how the scheme writes its own entities."""
    labels = scheme_labels(TYPES, scheme)
    cons = allowed_transitions(labels, scheme)
    checked = legal = 0
    for n in range(0, 5):
        for seq in itertools.product(labels, repeat=n):
            seq = list(seq)
            by_table = _table_legal(seq, labels, cons)
            canonical = repair(seq, scheme) == seq
            assert by_table == canonical == is_legal(seq, scheme), (scheme, seq)
            if by_table:
                assert get_spans(seq, scheme) == _chunks(seq, scheme)
                assert discard(seq, scheme) == seq
            else:
                assert first_illegal(seq, scheme) is not None
                assert is_legal(repair(seq, scheme), scheme)
                assert is_legal(discard(seq, scheme), scheme)
            checked += 1
            legal += by_table
    assert 0 < legal < checked


@pytest.mark.parametrize("scheme", ALL)
def test_first_illegal_points_at_the_first_bad_transition(scheme):
    labels = scheme_labels(TYPES, scheme)
    cons = allowed_transitions(labels, scheme)
    for seq in itertools.product(labels, repeat=3):
        pos = first_illegal(list(seq), scheme)
        if pos is None:
            continue
        # the prefix before pos is a legal start and the step into pos (or the end) fails
        ids = [labels.index(t) for t in seq]
        if pos == 0:
            assert not cons.start[ids[0]]
        elif pos == len(seq):
            assert not cons.end[ids[-1]]
        else:
            assert not cons.transitions[ids[pos - 1], ids[pos]]


@st.composite
def span_sets(draw, max_len=12, labels=("PER", "LOC", "ORG")):
    length = draw(st.integers(0, max_len))
    cuts = sorted(draw(st.sets(st.integers(0, length), max_size=8)))
    spans = []
    for a, b in zip(cuts, cuts[1:]):
        if draw(st.booleans()):
            spans.append(Span(draw(st.sampled_from(labels)), a, b))
    return spans, length


@pytest.mark.parametrize("scheme", ALL)
@settings(max_examples=60, deadline=None)
@given(data=span_sets())
def test_spans_tags_spans_round_trip(scheme, data):
    spans, length = data
    tags = spans_to_tags(spans, length, scheme)
    assert len(tags) == length
    assert is_legal(tags, scheme)
    assert get_spans(tags, scheme) == spans


@settings(max_examples=60, deadline=None)
@given(data=span_sets(), source=st.sampled_from(ALL), target=st.sampled_from(ALL))
def test_conversions_preserve_spans(data, source, target):
    spans, length = data
    tags = spans_to_tags(spans, length, source)
    out = convert(tags, source, target)
    assert is_legal(out, target)
    assert get_spans(out, target) == spans
    assert convert(out, target, source) == tags


def test_bare_bmes_round_trip():
    tags = ["B", "M", "E", "S", "S", "B", "E"]
    assert get_spans(tags, "BMES") == [Span("", 0, 3), Span("", 3, 4), Span("", 4, 5), Span("", 5, 7)]
    assert convert(tags, "BMES", "BIOES") == ["B", "I", "E", "S", "S", "B", "E"]
    assert convert(convert(tags, "BMES", "BIO"), "BIO", "BMES") == tags


def test_iob1_to_bio_examples():
    assert convert(["I-PER", "I-PER", "B-PER", "I-LOC", "O", "I-MISC"], "IOB1", "BIO") == [
        "B-PER", "I-PER", "B-PER", "B-LOC", "O", "B-MISC"]
    # the CoNLL-2003 quirk: B-MISC right after O is illegal IOB1, read as the start of an entity
    assert first_illegal(["O", "B-MISC"], "IOB1") == 1
    assert convert(["O", "B-MISC"], "IOB1", "BIO") == ["O", "B-MISC"]


def test_repair_and_discard_semantics():
    assert repair(["I-ORG", "I-ORG", "O"], "BIO") == ["B-ORG", "I-ORG", "O"]
    assert discard(["I-ORG", "I-ORG", "O"], "BIO") == ["O", "O", "O"]
    assert repair(["B-X", "I-X", "I-Y", "E-Y"], "BIOES") == ["B-X", "E-X", "B-Y", "E-Y"]
    assert discard(["B-X", "E-X", "I-Y", "E-Y"], "BIOES") == ["B-X", "E-X", "O", "O"]
    assert repair(["E-X", "O"], "IOE1") == ["I-X", "O"]


def test_allowed_tables_bio():
    labels = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    cons = allowed_transitions(labels, "IOB2")
    assert cons.start.tolist() == [True, True, False, True, False]
    assert cons.end.all()
    assert cons.transitions.shape == (5, 5) and cons.transitions.dtype.is_floating_point is False
    assert not cons.transitions[0, 2]  # O -> I-PER
    assert cons.transitions[1, 2] and cons.transitions[2, 2]  # B-PER/I-PER -> I-PER
    assert not cons.transitions[1, 4]  # B-PER -> I-LOC


def test_allowed_tables_iob1_and_bioes_ends():
    iob1 = allowed_transitions(["O", "B-PER", "I-PER", "I-LOC"], "IOB1")
    assert iob1.start.tolist() == [True, False, True, True]
    assert iob1.transitions[2, 1] and not iob1.transitions[0, 1] and not iob1.transitions[3, 1]
    bioes = allowed_transitions(scheme_labels(["A"], "BIOES"), "BIOES")
    labels = scheme_labels(["A"], "BIOES")
    assert [t for t, ok in zip(labels, bioes.end.tolist()) if ok] == ["O", "E-A", "S-A"]


def test_canonical_scheme_aliases_and_error():
    assert canonical_scheme("iobes") == "BIOES"
    assert canonical_scheme(" bioul ") == "BILOU"
    with pytest.raises(ValueError, match="unknown tag scheme 'BIOX'.*IOB1.*BMES"):
        canonical_scheme("BIOX")
    with pytest.raises(TypeError):
        canonical_scheme(3)


def test_detect_scheme():
    assert detect_scheme(["O", "B-A", "I-A"]) == "BIO"
    assert detect_scheme(["O", "I-A"]) == "IOB1"
    assert detect_scheme(["O", "I-A", "E-A"]) == "IOE2"
    assert detect_scheme(["O", "S-A", "B-A", "I-A", "E-A"]) == "BIOES"
    assert detect_scheme(["B", "M", "E", "S"]) == "BMES"
    with pytest.raises(ValueError, match="fit no single scheme"):
        detect_scheme(["O", "M-A", "L-A"])
    with pytest.raises(ValueError, match="no entity tags"):
        detect_scheme(["O"])
    with pytest.raises(ValueError, match="not a tag"):
        detect_scheme(["O", "PER"])


def test_detect_corpus_scheme_by_majority():
    iob1 = [["I-PER", "I-PER", "O", "I-LOC"], ["O", "B-MISC"], ["I-ORG", "B-ORG"]]
    assert detect_corpus_scheme(iob1) == "IOB1"
    bio = [["B-PER", "I-PER", "O", "B-LOC"], ["I-ORG", "O"]]
    assert detect_corpus_scheme(bio) == "BIO"
    assert detect_corpus_scheme([["I-A", "E-A", "I-A"]]) == "IOE1"
    assert detect_corpus_scheme([["I-A", "E-A", "O"]]) == "IOE2"
    assert detect_corpus_scheme([["B-A", "E-A", "S-B"]]) == "BIOES"


def test_unknown_prefix_errors():
    with pytest.raises(ValueError, match=r"unknown tag prefix in 'E-PER' at position 1 for scheme BIO"):
        first_illegal(["B-PER", "E-PER"], "BIO")
    with pytest.raises(ValueError, match="empty entity type"):
        is_legal(["B-"], "BIO")
    with pytest.raises(ValueError, match="unknown tag prefix"):
        allowed_transitions(["O", "S-PER"], "BIO")


def test_spans_to_tags_errors():
    with pytest.raises(ValueError, match="overlap"):
        spans_to_tags([Span("A", 0, 2), Span("A", 1, 3)], 4, "BIO")
    with pytest.raises(ValueError, match="outside"):
        spans_to_tags([Span("A", 2, 5)], 4, "BIO")


def test_scheme_labels_complete_inventory():
    assert scheme_labels(["A"], "BILOU") == ["O", "B-A", "I-A", "L-A", "U-A"]
    assert scheme_labels([], "BIO") == ["O"]
