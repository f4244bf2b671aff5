"""predict_stream (bounded read-ahead, input order, empty lines), input readers and output formats."""

from __future__ import annotations

import io
import itertools
import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mcrf.data.types import Sentence
from mcrf.errors import ConfigError, DataError, InputNotFound
from mcrf.predict.formats import sentence_text, to_record, emit_conll, emit_jsonl, emit_text, writer
from mcrf.models import Decoded, Tagger, TaggerConfig
from mcrf.predict.stream import PredictConfig, Prediction, predict_stream, read_input
from mcrf.crf.spans import get_spans

import tiny_models as tm


class CapitalTagger:
    """Deterministic stand-in: capitalised words are PER entities; records every predict call."""

    def __init__(self):
        self.calls = []

    def predict(self, sentences, batch_size=32, max_words=None):
        self.calls.append(len(sentences))
        out = []
        for s in sentences:
            tags, inside = [], False
            for token in s.tokens:
                cap = token[:1].isupper()
                tags.append(("I-PER" if inside else "B-PER") if cap else "O")
                inside = cap
            conf = [0.5 + 0.01 * (i % 7) for i in range(len(tags))]
            spans = [(sp.label, sp.start, sp.end, min(conf[sp.start:sp.end])) for sp in get_spans(tags, "BIO")]
            out.append(Decoded(tags=tags, token_confidence=conf, spans=spans))
        return out


def test_stream_keeps_input_order_and_empty_lines_across_chunks():
    lines = [f"Line {i} by Ann Lee" if i % 5 else "" for i in range(53)]
    sentences = read_input(io.BytesIO("\n".join(lines).encode()), "text")
    tagger = CapitalTagger()
    out = list(predict_stream(tagger, sentences, batch_size=4, chunk_batches=2))
    assert [p.sentence.text for p in out] == lines
    assert all(len(p.decoded.tags) == len(p.sentence.tokens) for p in out)
    assert [p.decoded.tags for p in out if not p.sentence.text] == [[]] * 11
    assert tagger.calls == [8] * 6 + [5]


def test_stream_reads_a_bounded_chunk_ahead_of_an_endless_input():
    consumed = itertools.count()

    def endless():
        for i in consumed:
            yield Sentence(("Word", str(i)))

    stream = predict_stream(CapitalTagger(), endless(), batch_size=3, chunk_batches=2)
    first = list(itertools.islice(stream, 7))
    assert [p.sentence.tokens[1] for p in first] == [str(i) for i in range(7)]
    assert next(consumed) <= 12 + 1  # two chunks of 6 read, nothing more


def test_stream_with_a_real_tagger_matches_predict():
    torch.manual_seed(0)
    data = tm.toy_sentences(12)
    tagger = Tagger.build(TaggerConfig(encoder="bilstm", labels=tm.TOY_LABELS,
                                       encoder_options=dict(word_dim=8, char_dim=4, char_filters=4, lstm_hidden=8)), data)
    inputs = data[:5] + [Sentence(())] + data[5:]
    streamed = [p.decoded for p in predict_stream(tagger, iter(inputs), batch_size=2, chunk_batches=2)]
    direct = tagger.predict(inputs, batch_size=64)
    assert [d.tags for d in streamed] == [d.tags for d in direct]
    assert streamed[5].tags == [] and all(len(d.tags) == len(s.tokens) for d, s in zip(streamed, inputs))


def test_stream_predicts_in_inference_mode_but_never_yields_inside_it():
    modes = []

    class ModeTagger(CapitalTagger):
        def predict(self, sentences, batch_size=32, max_words=None):
            modes.append(torch.is_inference_mode_enabled())
            return super().predict(sentences, batch_size)

    seen = [torch.is_inference_mode_enabled()
            for _ in predict_stream(ModeTagger(), (Sentence(("Ann", str(i))) for i in range(9)), batch_size=2,
                                    chunk_batches=2)]
    assert modes == [True, True, True] and seen == [False] * 9


def test_stream_with_a_real_tagger_runs_the_crf_marginals_in_inference_mode():
    """Extreme CRF scores send the marginals to their exact fallback, which must work without autograd."""
    torch.manual_seed(0)
    data = tm.toy_sentences(6)
    tagger = Tagger.build(TaggerConfig(encoder="bilstm", labels=tm.TOY_LABELS, decoder="mcrf",
                                       encoder_options=dict(word_dim=8, char_dim=4, char_filters=4, lstm_hidden=8)), data)
    with torch.no_grad():
        tagger.crf.transitions.mul_(1e4)  # extreme scores: the marginals take their exact fallback
    out = list(predict_stream(tagger, iter(data), batch_size=3))
    for prediction in out:
        assert all(0.0 <= c <= 1.0 for c in prediction.decoded.token_confidence)
        assert len(prediction.decoded.tags) == len(prediction.sentence.tokens)


def test_issue17_long_sentences_are_split_into_several_forward_passes_by_a_word_budget():
    """20 lines of 5,000 words went through one forward pass (batch size 32) and peaked at 1.15 GB."""
    torch.manual_seed(0)
    data = tm.toy_sentences(12)
    tagger = Tagger.build(TaggerConfig(encoder="bilstm", labels=tm.TOY_LABELS,
                                       encoder_options=dict(word_dim=8, char_dim=4, char_filters=4, lstm_hidden=8)), data)
    passes = []
    decode = tagger.decode

    def counted(batch, validate=True):
        passes.append(tuple(batch["word_mask"].shape))
        return decode(batch, validate)

    tagger.decode = counted
    long_lines = [Sentence(tuple(tm.FILLER) * 150) for _ in range(20)]  # 20 x 2,100 words
    out = list(predict_stream(tagger, iter(long_lines), batch_size=32))  # the default budget: 4,096 words
    assert len(out) == 20 and all(len(p.decoded.tags) == 2100 for p in out)
    assert len(passes) == 20 and all(rows * width <= 4096 for rows, width in passes), passes
    passes.clear()
    short = data + [Sentence(tuple(tm.FILLER) * 10)] * 3  # 140 words each: two fit in 300 padded words
    list(predict_stream(tagger, iter(short), batch_size=32, batch_words=300))
    assert all(rows * width <= 300 for rows, width in passes) and sum(rows for rows, _ in passes) == 15
    assert [rows for rows, width in passes if width == 140] == [2, 1]
    with pytest.raises(ValueError, match="batch_words"):
        PredictConfig(batch_words=0)


@pytest.mark.parametrize("bad", [0, -1, True, 1.5])
def test_stream_rejects_bad_sizes(bad):
    with pytest.raises(ValueError, match="positive integer"):
        list(predict_stream(CapitalTagger(), [], batch_size=bad))
    with pytest.raises(ValueError, match="positive integer"):
        PredictConfig(chunk_batches=bad)
    with pytest.raises(ValueError, match="mmap_threshold"):
        PredictConfig(mmap_threshold=bad)


def test_mmap_threshold_applies_on_linux():
    import sys

    from mcrf.predict.stream import set_mmap_threshold

    assert set_mmap_threshold(PredictConfig().mmap_threshold) is sys.platform.startswith("linux")


def test_predict_config_rejects_unknown_formats():
    with pytest.raises(ValueError, match="conll, jsonl, text"):
        PredictConfig(output_format="xml")
    with pytest.raises(ValueError, match="text, pretokenized, conll"):
        PredictConfig(input_format="csv")
    with pytest.raises(ValueError, match="expected one of"):
        writer("xml")
    with pytest.raises(ConfigError, match="expected a text encoding, got 'utf8x'; pass one .* utf-16"):
        PredictConfig(encoding="utf8x")
    with pytest.raises(ConfigError, match="expected a text encoding, got 'hex'"):
        PredictConfig(encoding="hex")
    assert PredictConfig(encoding="latin-1").encoding == "latin-1"


def test_read_input_formats(tmp_path):
    conll = tmp_path / "in.conll"
    conll.write_text("-DOCSTART- -X- O O\n\nEU NNP B-ORG\nrejects VBZ O\n\n\nPeter NNP B-PER\n", encoding="utf-8")
    got = list(read_input(str(conll), "conll"))
    assert [s.tokens for s in got] == [("EU", "rejects"), ("Peter",)]
    assert got[0].source == f"{conll}:3" and got[0].tags is None
    pre = list(read_input(io.BytesIO(b"a  b\tc\r\n\nd\n"), "pretokenized"))
    assert [s.tokens for s in pre] == [("a", "b", "c"), (), ("d",)]
    assert pre[0].offsets == ((0, 1), (3, 4), (5, 6))
    text = list(read_input(io.BytesIO("\ufeffSão Paulo, hi.\n".encode()), "text"))
    assert text[0].tokens == ("São", "Paulo", ",", "hi", ".")


def test_read_input_errors(tmp_path):
    with pytest.raises(DataError, match=r"<stream>:2: expected utf-8 text, got byte 0xff .* not valid utf-8"):
        list(read_input(io.BytesIO(b"fine\nbad \xff here\n"), "text"))
    with pytest.raises(InputNotFound, match="does not exist"):
        list(read_input(str(tmp_path / "missing.txt")))
    with pytest.raises(TypeError, match="binary stream"):
        list(read_input(io.StringIO("text")))
    with pytest.raises(ValueError, match="unknown input format"):
        list(read_input(io.BytesIO(b""), "xml"))
    assert list(read_input(io.BytesIO(b""), "text")) == []


def test_conll_input_is_read_by_read_columns(tmp_path):
    got = list(read_input(io.BytesIO(b"EU NNP\nrejects VBZ\n\nPeter NNP\n"), "conll"))
    assert [(s.tokens, s.source) for s in got] == [(("EU", "rejects"), "<stream>:1"), (("Peter",), "<stream>:4")]
    ragged = tmp_path / "ragged.conll"
    ragged.write_text("EU NNP B-ORG\nrejects VBZ\n", encoding="utf-8")
    with pytest.raises(DataError, match=rf"{ragged}:2: expected 3 columns \(like line 1\), got 2"):
        list(read_input(ragged, "conll"))
    with pytest.raises(DataError, match=r"<stream>:2: expected utf-8 text, got byte 0xe9 .* not valid utf-8; .*--encoding"):
        list(read_input(io.BytesIO(b"ok O\ncaf\xe9 O\n"), "conll"))
    assert [s.tokens for s in read_input(io.BytesIO("café O\n".encode("latin-1")), "conll", "latin-1")] == \
        [("café",)]
    assert list(read_input(io.BytesIO(b""), "conll")) == [] and list(read_input(io.BytesIO(b"\n\n"), "conll")) == []


@pytest.mark.parametrize("input_format, expected", [("text", [("a", "b", "."), ()]), ("conll", [("a", "b")])])
def test_read_input_from_a_named_pipe(tmp_path, input_format, expected):
    import os
    import threading

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    payload = b"a b.\n\n" if input_format == "text" else b"a O\nb O\n"

    def feed():
        with open(fifo, "wb") as handle:
            handle.write(payload)

    writer_thread = threading.Thread(target=feed)
    writer_thread.start()
    try:
        assert [s.tokens for s in read_input(str(fifo), input_format)] == expected
    finally:
        writer_thread.join(timeout=10)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.sampled_from(["a", "São", "it's", ".", " ", "  ", "\t", "\u00a0", "\u3000", "x\u0301"]),
                max_size=12))
def test_read_input_uses_the_data_layers_line_tokenizers(pieces):
    from mcrf.data.text import pretokenized_line, tokenize_line

    line = "".join(pieces).strip("\r\n")
    data = (line + "\n").encode("utf-8")
    for input_format, tokenize in (("text", tokenize_line), ("pretokenized", pretokenized_line)):
        (sentence,) = read_input(io.BytesIO(data), input_format)
        assert sentence == tokenize(line, "<stream>:1")


def _predict_one(line: str):
    (prediction,) = predict_stream(CapitalTagger(), read_input(io.BytesIO((line + "\n").encode()), "text"))
    return prediction


def _parse_markup(markup: str):
    """(plain text, [(label, start, end)]) of ``[words]{LABEL}`` markup."""
    import re

    plain, spans, pos = [], [], 0
    for m in re.finditer(r"\[([^\[\]]*)\]\{(\w+)\}", markup):
        plain.append(markup[pos:m.start()])
        start = sum(map(len, plain))
        plain.append(m.group(1))
        spans.append((m.group(2), start, start + len(m.group(1))))
        pos = m.end()
    plain.append(markup[pos:])
    return "".join(plain), spans


WORDS = st.sampled_from(["John", "Smith", "flew", "to", "Paris", "São", "Ünal", "x", "it's", "Acme", "Corp", "."])
SPACES = st.sampled_from([" ", "  ", "\t", " \u00a0 "])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(WORDS, SPACES), max_size=12), SPACES)
def test_formats_round_trip_to_the_original_line(pieces, lead):
    line = lead + "".join(w + s for w, s in pieces) if pieces else ""
    prediction = _predict_one(line)
    record = json.loads(_render(emit_jsonl, prediction))
    assert record["text"] == line
    assert len(record["tags"]) == len(record["tokens"]) == len(record["token_confidences"])
    for span in record["spans"]:
        assert line[span["char_start"]:span["char_end"]] == span["text"]
        assert span["text"].startswith(record["tokens"][span["start"]])
        assert span["text"].endswith(record["tokens"][span["end"] - 1])
    plain, marked = _parse_markup(_render(emit_text, prediction).rstrip("\n"))
    assert plain == line
    assert marked == [(s["label"], s["char_start"], s["char_end"]) for s in record["spans"]]
    conll = _render(emit_conll, prediction)
    assert conll.endswith("\n\n") or conll == "\n"
    rows = [row.split("\t") for row in conll.splitlines() if row]
    assert [r[0] for r in rows] == record["tokens"] and [r[1] for r in rows] == record["tags"]


def _render(write, prediction) -> str:
    out = io.StringIO()
    write(prediction, out)
    return out.getvalue()


def test_jsonl_record_fields():
    record = to_record(_predict_one("John Smith flew to Paris ."))
    assert record["tokens"] == ["John", "Smith", "flew", "to", "Paris", "."]
    assert record["spans"][0] == {"label": "PER", "start": 0, "end": 2, "char_start": 0, "char_end": 10,
                                  "text": "John Smith", "confidence": 0.5}
    assert record["spans"][1]["text"] == "Paris" and record["spans"][1]["char_start"] == 19


def test_text_and_conll_of_an_empty_line():
    prediction = _predict_one("")
    assert _render(emit_text, prediction) == "\n"
    assert _render(emit_conll, prediction) == "\n"
    assert json.loads(_render(emit_jsonl, prediction)) == {"text": "", "tokens": [], "tags": [], "spans": [],
                                                             "token_confidences": []}


def test_conll_input_without_text_gets_space_joined_offsets():
    sentence = Sentence(("New", "York", "rocks"))
    text, offsets = sentence_text(sentence.tokens, None, None)
    assert text == "New York rocks" and [text[a:b] for a, b in offsets] == ["New", "York", "rocks"]
    decoded = Decoded(tags=["B-LOC", "I-LOC", "O"], token_confidence=[0.9, 0.8, 1.0],
                      spans=[("LOC", 0, 2, 0.8)])
    assert _render(emit_text, Prediction(sentence, decoded)) == "[New York]{LOC} rocks\n"


def test_the_device_field_is_written_once_and_inherited():
    """Issue 18: evaluate, predict and serve each restated the same device field."""
    import dataclasses

    from mcrf.evaluation import EvaluateConfig
    from mcrf.predict.stream import PredictConfig
    from mcrf.serve.config import ServeConfig

    fields = [{f.name: f for f in dataclasses.fields(cls)}["device"] for cls in (EvaluateConfig, PredictConfig,
                                                                                ServeConfig)]
    assert all(f.metadata["check"] is fields[0].metadata["check"] for f in fields)
    assert all(f.metadata["help"] == fields[0].metadata["help"] and f.default is None for f in fields)
