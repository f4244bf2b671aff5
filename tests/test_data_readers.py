"""Readers: column files, line-aligned pairs, JSON lines, hub folders; every error names file:line."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mcrf.data.readers import read_columns, read_jsonl, read_line_pairs
from mcrf.errors import DataError, InputNotFound

from extras import extra


def _write(path, text, encoding="utf-8"):
    path.write_bytes(text.encode(encoding) if isinstance(text, str) else text)
    return path


CONLL03 = """-DOCSTART- -X- O O

EU NNP I-NP I-ORG
rejects VBZ I-VP O
German JJ I-NP I-MISC

Peter NNP I-NP I-PER
Blackburn NNP I-NP I-PER

-DOCSTART- -X- O O

BRUSSELS NNP I-NP I-LOC
"""


def test_columns_conll2003_docstart_lines_dropped(tmp_path):
    path = _write(tmp_path / "eng.train", CONLL03)
    sents = list(read_columns(path, tag_column=3))
    assert [s.tokens for s in sents] == [("EU", "rejects", "German"), ("Peter", "Blackburn"), ("BRUSSELS",)]
    assert sents[0].tags == ("I-ORG", "O", "I-MISC")
    assert [s.source for s in sents] == [f"{path}:3", f"{path}:7", f"{path}:12"]
    chunks = list(read_columns(path, tag_column=2))
    assert chunks[0].tags == ("I-NP", "I-VP", "I-NP")


def test_columns_docstart_inside_sentence_conll2002_dutch(tmp_path):
    text = "-DOCSTART- -DOCSTART- O\nDe Art O\nrechter N O\n\nZe Pron O\n-DOCSTART- -DOCSTART- O\nHet Art O\n"
    path = _write(tmp_path / "ned.train", text)
    sents = list(read_columns(path))
    assert [s.tokens for s in sents] == [("De", "rechter"), ("Ze",), ("Het",)]
    assert sents[0].source == f"{path}:2"


def test_columns_crlf_bom_tabs_and_unicode_tokens(tmp_path):
    text = "\ufeffJohn\tB-PER\r\nLives\tO\r\n\r\n\u3000\tO\r\nS\u00e3o\tB-LOC\r\n"
    path = _write(tmp_path / "x.tsv", text)
    sents = list(read_columns(path))
    assert sents[0].tokens == ("John", "Lives") and sents[0].tags == ("B-PER", "O")
    assert sents[1].tokens == ("\u3000", "S\u00e3o")


def test_columns_unlabelled_and_explicit_separator(tmp_path):
    path = _write(tmp_path / "x.txt", "New York|B-LOC\nis|O\n")
    sents = list(read_columns(path, separator="|"))
    assert sents[0].tokens == ("New York", "is")
    assert list(read_columns(path, separator="|", tag_column=None))[0].tags is None


def test_columns_latin1(tmp_path):
    path = _write(tmp_path / "esp.train", "Espa\u00f1a B-LOC\n", encoding="latin-1")
    with pytest.raises(DataError, match=r"esp.train:1: expected utf-8 text, got byte 0xf1 at column 5 that is not "
                                        r"valid utf-8; re-encode .* or pass its encoding \(--encoding\)"):
        list(read_columns(path))
    assert list(read_columns(path, encoding="latin-1"))[0].tokens == ("Espa\u00f1a",)


def test_columns_wrong_column_count(tmp_path):
    path = _write(tmp_path / "bad.txt", "EU NNP I-NP I-ORG\nrejects VBZ I-VP O\nGerman I-MISC\n")
    with pytest.raises(DataError, match=r"bad.txt:3: expected 4 columns \(like line 1\), got 2: 'German I-MISC'; "
                                        r"fix the line"):
        list(read_columns(path, tag_column=3))


def test_columns_missing_tag_column(tmp_path):
    path = _write(tmp_path / "two.txt", "EU I-ORG\n")
    with pytest.raises(DataError, match=r"two.txt:1: expected a tag column 3, got a line of 2 columns; pass "
                                        r"--tag-column between -2 and 1"):
        list(read_columns(path, tag_column=3))


@pytest.mark.parametrize("text", ["", "\n\n  \n", "-DOCSTART- -X- O O\n\n"])
def test_columns_empty_file(tmp_path, text):
    path = _write(tmp_path / "empty.txt", text)
    with pytest.raises(DataError, match=r"empty.txt: expected token lines separated by blank lines, got no sentence"):
        list(read_columns(path))


def test_bad_bytes_name_file_and_line(tmp_path):
    path = _write(tmp_path / "bytes.txt", b"ok O\n\nfine O\nbad\xff O\n")
    with pytest.raises(DataError, match=r"bytes.txt:4: expected utf-8 text, got byte 0xff at column 4"):
        list(read_columns(path))


def test_missing_file(tmp_path):
    with pytest.raises(InputNotFound, match="nope.txt: expected a data file, found nothing"):
        list(read_columns(tmp_path / "nope.txt"))


def test_line_pairs(tmp_path):
    seq_in = _write(tmp_path / "seq.in", "i want to fly to boston\r\nshow flights\n")
    seq_out = _write(tmp_path / "seq.out", "O O O O O B-toloc.city_name\r\nO O\n")
    sents = list(read_line_pairs(seq_in, seq_out))
    assert sents[0].tags[-1] == "B-toloc.city_name" and sents[1].tokens == ("show", "flights")
    assert sents[1].source == f"{seq_in}:2"


def test_line_pairs_token_count_mismatch(tmp_path):
    seq_in = _write(tmp_path / "seq.in", "a b\nc d e\n")
    seq_out = _write(tmp_path / "seq.out", "O O\nO O\n")
    with pytest.raises(DataError, match=r"seq.out:2: expected 3 tags to match the 3 tokens at .*seq.in:2, got 2"):
        list(read_line_pairs(seq_in, seq_out))


@pytest.mark.parametrize("ins,outs,message", [
    ("a\nb\n", "O\n", r"seq.in:2: expected .*seq.out to have a tag line 2 for this token line, got the end of "
                     r".*seq.out after 1 lines"),
    ("a\n", "O\nO\n", r"seq.out:2: expected .*seq.out to end with .*seq.in after 1 lines, got this extra tag line"),
])
def test_line_pairs_line_count_mismatch(tmp_path, ins, outs, message):
    seq_in, seq_out = _write(tmp_path / "seq.in", ins), _write(tmp_path / "seq.out", outs)
    with pytest.raises(DataError, match=message):
        list(read_line_pairs(seq_in, seq_out))


def test_jsonl(tmp_path):
    path = _write(tmp_path / "train.jsonl", '{"tokens": ["a", "b"], "tags": ["B-X", "I-X"]}\n\n{"tokens": ["c"], "tags": ["O"]}\n')
    sents = list(read_jsonl(path))
    assert [s.tokens for s in sents] == [("a", "b"), ("c",)] and sents[1].source == f"{path}:3"


@pytest.mark.parametrize("line,message", [
    ('{"tokens": ["a"], "tags": ["O"]', "bad.jsonl:1: expected a JSON object, got invalid JSON"),
    ('["a"]', "bad.jsonl:1: expected a JSON object with 'tokens', got list"),
    ('{"tokens": ["a"]}', r"bad.jsonl:1: expected a key 'tags', got keys \['tokens'\]"),
    ('{"tokens": "a b", "tags": ["O"]}', "bad.jsonl:1: expected 'tokens' to be a list of strings"),
    ('{"tokens": ["a", "b"], "tags": ["O"]}', r"bad.jsonl:1: expected 2 tags \(one per token\), got 1"),
])
def test_jsonl_errors(tmp_path, line, message):
    path = _write(tmp_path / "bad.jsonl", line + "\n")
    with pytest.raises(DataError, match=message):
        list(read_jsonl(path))


TOKEN = st.text(st.characters(blacklist_characters=" \t\r\n\ufeff", blacklist_categories=("Cs",)), min_size=1, max_size=6)
TAG = st.sampled_from(["O", "B-PER", "I-PER", "B-LOC", "I-creative-work"])
SENTS = st.lists(st.lists(st.tuples(TOKEN, TAG), min_size=1, max_size=6), min_size=1, max_size=5)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sents=SENTS, crlf=st.booleans())
def test_write_read_round_trip_all_formats(tmp_path, sents, crlf):
    sents = [s for s in sents if all(tok != "-DOCSTART-" for tok, _ in s)]
    eol = "\r\n" if crlf else "\n"
    col = _write(tmp_path / "c.txt", eol.join(eol.join(f"{t}\t{g}" for t, g in s) + eol for s in sents))
    seq_in = _write(tmp_path / "seq.in", "".join(" ".join(t for t, _ in s) + eol for s in sents))
    seq_out = _write(tmp_path / "seq.out", "".join(" ".join(g for _, g in s) + eol for s in sents))
    jl = _write(tmp_path / "d.jsonl", "".join(
        json.dumps({"tokens": [t for t, _ in s], "tags": [g for _, g in s]}) + eol for s in sents))
    expected = [(tuple(t for t, _ in s), tuple(g for _, g in s)) for s in sents]
    if not expected:
        return
    assert [(s.tokens, s.tags) for s in read_columns(col)] == expected
    assert [(s.tokens, s.tags) for s in read_line_pairs(seq_in, seq_out)] == expected
    assert [(s.tokens, s.tags) for s in read_jsonl(jl)] == expected


def _save_hub_folder(path, string_tags=False, classlabel=True):
    datasets = extra("datasets", "pip install mcrf (a dependency)")
    names = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    tokens = [["John", "Smith", "visited", "Paris"], ["Hi"]]
    ids = [[1, 2, 0, 3], [0]]
    if string_tags:
        feature = datasets.Sequence(datasets.Value("string"))
        tags = [[names[i] for i in row] for row in ids]
    else:
        feature = datasets.Sequence(datasets.ClassLabel(names=names) if classlabel else datasets.Value("int64"))
        tags = ids
    features = datasets.Features({"id": datasets.Value("string"), "tokens": datasets.Sequence(datasets.Value("string")),
                                  "ner_tags": feature})
    ds = datasets.Dataset.from_dict({"id": ["0", "1"], "tokens": tokens, "ner_tags": tags}, features=features)
    datasets.DatasetDict({"train": ds, "validation": ds.select([0]), "test": ds}).save_to_disk(str(path))
    return path


def test_hub_local_folder_classlabel(tmp_path):
    from mcrf.data.hub import read_hub_dataset

    path = _save_hub_folder(tmp_path / "hubds")
    splits = read_hub_dataset(str(path))
    assert sorted(splits) == ["dev", "test", "train"]
    assert splits["train"][0].tags == ("B-PER", "I-PER", "O", "B-LOC")
    assert splits["train"][1].source.endswith("[train]:2")


def test_hub_local_folder_string_tags(tmp_path):
    from mcrf.data.hub import read_hub_dataset

    splits = read_hub_dataset(str(_save_hub_folder(tmp_path / "s", string_tags=True)))
    assert splits["dev"][0].tags == ("B-PER", "I-PER", "O", "B-LOC")


def test_hub_errors(tmp_path):
    from mcrf.data.hub import read_hub_dataset

    path = _save_hub_folder(tmp_path / "ints", classlabel=False)
    with pytest.raises(DataError, match="sequence of ClassLabel or of strings"):
        read_hub_dataset(str(path))
    with pytest.raises(DataError, match=r"\[train\]: expected a tag column 'chunk_tags', got"):
        read_hub_dataset(str(_save_hub_folder(tmp_path / "ok")), tag_column="chunk_tags")
    (tmp_path / "plain").mkdir()
    with pytest.raises(DataError, match="plain: expected a `datasets` folder"):
        read_hub_dataset(str(tmp_path / "plain"))


def test_a_hub_dataset_that_is_a_loading_script_is_a_data_error(tmp_path, monkeypatch):
    """`datasets` no longer runs loading scripts and says so with a RuntimeError; for a hub id that is the user's
    choice of dataset, so one line naming it, not an internal error. Any other RuntimeError stays a bug."""
    import datasets

    from mcrf.data.hub import read_hub_dataset

    script = tmp_path / "myds"
    script.mkdir()
    (script / "myds.py").write_text("raise SystemExit('never run')\n")
    real = datasets.load_dataset
    # the hub is unreachable here: the id is answered by the real loader on a local script folder, which raises
    # what the hub's script datasets raise
    monkeypatch.setattr(datasets, "load_dataset", lambda *args, **kwargs: real(str(script)))
    with pytest.raises(DataError, match=r"^owner/scripted: expected a hub dataset stored as data files, got one "
                                        r"that is a loading script"):
        read_hub_dataset("owner/scripted")

    def broken(*args, **kwargs):
        raise RuntimeError("something else")

    monkeypatch.setattr(datasets, "load_dataset", broken)
    with pytest.raises(RuntimeError, match="something else"):
        read_hub_dataset("owner/scripted")
