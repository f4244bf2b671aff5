"""Evaluation: strict span scores per scheme (checked against mcrf.crf.schemes spans), illegal path rate."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import List

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mcrf.data.types import Sentence
from mcrf.evaluation import EvalResult, evaluate, format_table, score_predictions
from mcrf.crf.schemes import scheme_labels
from mcrf.crf.spans import Span, convert, get_spans, spans_to_tags

SCHEMES = ["BIO", "IOB1", "IOE1", "IOE2", "BIOES", "BILOU", "BMES"]


def _reference(gold, pred, scheme):
    """Span matching by hand: a predicted span counts when (type, start, end) equals a gold span."""
    tp = n_gold = n_pred = 0
    for g, p in zip(gold, pred):
        gs, ps = set(get_spans(g, scheme)), set(get_spans(p, scheme))
        tp, n_gold, n_pred = tp + len(gs & ps), n_gold + len(gs), n_pred + len(ps)
    precision = tp / n_pred if n_pred else 0.0
    recall = tp / n_gold if n_gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1, n_gold


@st.composite
def span_sequences(draw, types=("PER", "LOC")):
    """A tag-free span layout: non-overlapping typed spans over a sentence of some length."""
    length = draw(st.integers(1, 12))
    spans, pos = [], 0
    while pos < length:
        if draw(st.booleans()):
            end = draw(st.integers(pos + 1, length))
            spans.append(Span(draw(st.sampled_from(types)), pos, end))
            pos = end
        else:
            pos += 1
    return spans, length


@settings(max_examples=60, deadline=None)
@given(scheme=st.sampled_from(SCHEMES), pairs=st.lists(st.tuples(span_sequences(), span_sequences()),
                                                      min_size=1, max_size=6))
def test_scores_match_hand_span_matching_for_every_scheme(scheme, pairs):
    gold, pred = [], []
    for (g_spans, length), (p_spans, _) in pairs:
        p_spans = [s for s in p_spans if s.end <= length]
        gold.append(spans_to_tags(g_spans, length, scheme))
        pred.append(spans_to_tags(p_spans, length, scheme))
    result = score_predictions(gold, pred, scheme)
    precision, recall, f1, n_gold = _reference(gold, pred, scheme)
    assert result.precision == pytest.approx(precision)
    assert result.recall == pytest.approx(recall)
    assert result.f1 == pytest.approx(f1)
    assert result.num_gold_spans == n_gold


def test_strict_mode_ignores_an_illegal_fragment_and_types_are_separate():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["O", "B-ORG", "I-ORG"]]
    pred = [["B-PER", "I-PER", "O", "I-LOC"], ["O", "B-ORG", "I-ORG"]]  # orphan I-LOC: no span in strict BIO
    result = score_predictions(gold, pred, "IOB2")
    assert result.scheme == "BIO"
    assert result.precision == pytest.approx(1.0)
    assert result.recall == pytest.approx(2 / 3)
    assert result.per_type["LOC"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert result.per_type["PER"]["f1"] == pytest.approx(1.0)
    assert result.macro_f1 == pytest.approx((1 + 1 + 0) / 3)


def test_boundary_error_is_a_miss_and_a_false_positive():
    result = score_predictions([["B-PER", "I-PER", "O"]], [["B-PER", "O", "O"]], "BIO")
    assert (result.precision, result.recall, result.f1) == (0.0, 0.0, 0.0)


def test_iob1_and_bmes_are_converted_before_scoring():
    gold = [["I-PER", "I-PER", "B-PER", "O"]]  # IOB1: two adjacent PER entities
    assert score_predictions(gold, [["I-PER", "I-PER", "B-PER", "O"]], "IOB1").f1 == pytest.approx(1.0)
    assert score_predictions(gold, [["I-PER", "I-PER", "I-PER", "O"]], "IOB1").f1 == pytest.approx(0.0)
    bmes = [["B", "M", "E", "S"]]  # bare word-segmentation tags
    assert score_predictions(bmes, bmes, "BMES").f1 == pytest.approx(1.0)
    assert convert(bmes[0], "BMES", "BIOES")  # the conversion the evaluation relies on exists


def test_illegal_path_rate_and_speed():
    gold = [["O", "B-PER"], ["B-LOC"], ["O"], []]
    result = score_predictions(gold, gold, "BIO", raw_illegal=[True, False, True, False], seconds=2.0)
    assert result.illegal_paths == 2
    assert result.illegal_path_rate == pytest.approx(0.5)
    assert result.sentences_per_second == pytest.approx(2.0)
    assert result.num_sentences == 4
    assert score_predictions(gold, gold, "BIO").illegal_path_rate is None


def test_no_spans_anywhere_scores_zero_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # seqeval averages over no types: numpy's empty-mean warnings stay inside
        result = score_predictions([["O", "O"], []], [["O", "O"], []], "BIO")
    assert (result.f1, result.macro_f1, result.num_gold_spans, result.per_type) == (0.0, 0.0, 0, {})


def test_other_warnings_of_seqeval_are_not_silenced(monkeypatch):
    """Issue 18: evaluation silenced every warning seqeval raised, so a real problem could not be seen."""
    import seqeval.metrics

    real = seqeval.metrics.classification_report

    def warning_report(*args, **kwargs):
        warnings.warn("something seqeval wants you to know", UserWarning)
        return real(*args, **kwargs)

    monkeypatch.setattr(seqeval.metrics, "classification_report", warning_report)
    with pytest.warns(UserWarning, match="something seqeval wants you to know"):
        result = score_predictions([["B-PER", "O"]], [["B-PER", "O"]], "BIO")
    assert result.f1 == 1.0


@pytest.mark.parametrize(
    "gold, pred, raw, match",
    [
        ([["O"]], [], None, "as many predicted"),
        ([["O", "O"]], [["O"]], None, "sentence 0"),
        ([["O"]], [["O"]], [True, False], "raw_illegal"),
    ],
)
def test_mismatches_are_clear_errors(gold, pred, raw, match):
    with pytest.raises(ValueError, match=match):
        score_predictions(gold, pred, "BIO", raw_illegal=raw)


def test_unknown_scheme_is_a_clear_error():
    with pytest.raises(ValueError, match="BIOES"):
        score_predictions([["O"]], [["O"]], "XYZ")


@dataclass
class _Decoded:
    tags: List[str]
    raw_illegal: bool


class _FixedTagger:
    """Stands in for a Tagger: predicts stored tags (the evaluation only needs predict + config.scheme)."""

    class config:  # noqa: N801 - mimics the TaggerConfig attribute
        scheme = "BIO"

    def __init__(self, outputs):
        self.outputs = outputs

    def predict(self, sentences, batch_size=32):
        return [_Decoded(list(self.outputs[s.tokens]), s.tokens[0] == "odd") for s in sentences]


def test_evaluate_runs_the_tagger_and_reports_everything():
    sentences = [Sentence(("odd", "man"), ("B-PER", "I-PER")), Sentence(("in", "rome"), ("O", "B-LOC"))]
    tagger = _FixedTagger({("odd", "man"): ("B-PER", "I-PER"), ("in", "rome"): ("O", "O")})
    result = evaluate(tagger, sentences, batch_size=1)
    assert isinstance(result, EvalResult)
    assert result.precision == 1.0 and result.recall == 0.5
    assert result.illegal_paths == 1 and result.illegal_path_rate == 0.5
    assert result.sentences_per_second > 0
    assert result.to_dict()["per_type"]["LOC"]["support"] == 1
    table = format_table(result)
    for text in ("LOC", "PER", "micro avg", "macro avg", "illegal paths: 1 (50.00%)", "sentences/s"):
        assert text in table


def test_evaluate_needs_gold_tags():
    with pytest.raises(ValueError, match="file.txt:3"):
        evaluate(_FixedTagger({}), [Sentence(("a",), None, source="file.txt:3")])


def test_scheme_labels_are_all_scorable():
    """Every legal single-tag sentence of every scheme scores perfectly against itself."""
    from mcrf.crf.schemes import is_legal

    for scheme in SCHEMES:
        scored = 0
        for tag in scheme_labels(["PER"], scheme):
            tags = [tag]
            if not is_legal(tags, scheme):
                continue
            result = score_predictions([tags], [tags], scheme)
            if get_spans(tags, scheme):
                assert result.f1 == 1.0 and result.num_gold_spans == 1, (scheme, tag, result)
                scored += 1
            else:
                assert result.num_gold_spans == 0, (scheme, tag, result)
        assert scored >= 1, f"no single-tag entity is legal in {scheme}"
