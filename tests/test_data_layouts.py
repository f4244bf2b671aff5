"""Column layouts of real releases (issue 10 item 1), with small fixtures written here.

- CoNLL-2002 Spanish as NLTK and most mirrors ship it: latin-1, three columns ``token POS NER``
  (``Melbourne NP B-LOC``), where the registry describes the two-column original;
- the two-column original;
- CoNLL-2002 Dutch, whose ``-DOCSTART-`` lines sit inside the first sentence of each article
  with no blank line after.

Every registered column corpus reads its tags from the last column unless the user says
otherwise, and says so once (``mcrf inspect``, the training header) when the files have more
columns than the registry describes.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from mcrf.cli.app import main
from mcrf.data import load_corpus
from mcrf.data.registry import REGISTRY
from mcrf.errors import DataError

# (token, POS, NER) per sentence; latin-1 characters on purpose
ES_TRAIN = [
    [("Melbourne", "NP", "B-LOC"), ("(", "Fpa", "O"), ("Australia", "NP", "B-LOC"), (")", "Fpt", "O"),
     (",", "Fc", "O"), ("25", "Z", "O"), ("may", "NC", "O"), ("(", "Fpa", "O"), ("EFE", "NC", "B-ORG"),
     (")", "Fpt", "O"), (".", "Fp", "O")],
    [("-", "Fg", "O")],
    [("El", "DA", "O"), ("Abogado", "NC", "B-PER"), ("General", "AQ", "I-PER"), ("del", "SP", "I-PER"),
     ("Estado", "NC", "I-PER"), (",", "Fc", "O"), ("Daryl", "VMI", "B-PER"), ("Williams", "NC", "I-PER"),
     ("van", "VAN", "O"), ("a", "SP", "O"), ("España", "NP", "B-LOC"), (".", "Fs", "O")],
]
ES_TESTA = [
    [("Sao", "NC", "B-LOC"), ("Paulo", "VMI", "I-LOC"), ("(", "Fpa", "O"), ("Brasil", "NC", "B-LOC"),
     (")", "Fpt", "O"), (".", "Fp", "O")],
    [("La", "DA", "O"), ("Peña", "NP", "B-ORG"), ("Bética", "NP", "I-ORG"), ("ganó", "VMI", "O")],
]
ES_TESTB = [
    [("Madrid", "NP", "B-LOC"), ("y", "CC", "O"), ("Lisboa", "NP", "B-LOC")],
    [("Juan", "NP", "B-PER"), ("Pérez", "NP", "I-PER"), ("de", "SP", "O"), ("la", "DA", "O"),
     ("ONU", "NP", "B-ORG"), ("habló", "VMI", "O"), (".", "Fp", "O")],
]
# Dutch: each article starts with a -DOCSTART- line directly followed by its first sentence,
# and the second article's DOCSTART line follows the previous sentence without a blank line.
NED_TRAIN = """-DOCSTART- -DOCSTART- O
De Art O
tekst N O
van Prep O
het Art O
arrest N O
is V O
nog Adv O
niet Adv O
beschikbaar Adj O
. Punc O

Het Art O
Hof N B-ORG
van Prep I-ORG
Cassatie N I-ORG
oordeelde V O
één Num O
keer N O
-DOCSTART- -DOCSTART- O
Dat Conj O
zei V O
Jan N B-PER
Peeters N I-PER
in Prep O
Gent N B-LOC

"""
NED_TESTA = "-DOCSTART- -DOCSTART- O\nBrussel N B-LOC\nzwijgt V O\n\nDe Art O\nEU N B-ORG\n"
NED_TESTB = "-DOCSTART- -DOCSTART- O\nAntwerpen N B-LOC\n"


def _conll(sentences, columns) -> str:
    return "".join("".join(" ".join(row[:1] + row[3 - columns + 1:] if columns == 2 else row) + "\n"
                           for row in sentence) + "\n" for sentence in sentences)


def _spanish(root: Path, columns: int) -> Path:
    folder = root / "conll2002"
    folder.mkdir(parents=True, exist_ok=True)
    for name, sentences in (("esp.train", ES_TRAIN), ("esp.testa", ES_TESTA), ("esp.testb", ES_TESTB)):
        (folder / name).write_bytes(_conll(sentences, columns).encode("latin-1"))
    return root


def _dutch(root: Path) -> Path:
    folder = root / "conll2002"
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in (("ned.train", NED_TRAIN), ("ned.testa", NED_TESTA), ("ned.testb", NED_TESTB)):
        (folder / name).write_bytes(text.encode("latin-1"))
    return root


def _inspect(capsys, *argv):
    code = main(["inspect", *map(str, argv)])
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


def test_every_registered_column_corpus_reads_the_last_column():
    columns = [entry for entry in REGISTRY.values() if entry.format == "columns"]
    assert {entry.name for entry in columns} >= {"conll2003", "conll2000", "conll2002-es", "conll2002-nl",
                                                 "wnut17", "resume", "resume-bmes", "sample"}
    assert not any(hasattr(entry, "tag_column") for entry in columns)  # no per-entry tag index to go stale
    assert REGISTRY["conll2002-es"].columns == ("token", "NER")
    assert REGISTRY["conll2003"].columns[-1] == "NER" and REGISTRY["conll2000"].columns[-1] == "chunk"


@pytest.mark.parametrize("columns", [3, 2], ids=["nltk-three-columns", "original-two-columns"])
def test_spanish_exact_counts_in_either_layout(tmp_path, capsys, columns):
    root = _spanish(tmp_path, columns)
    info = json.loads(_inspect(capsys, "conll2002-es", "--data-dir", root, "--json"))
    counts = {split: (s["sentences"], s["tokens"]) for split, s in info["splits"].items()}
    assert counts == {"train": (3, 24), "dev": (2, 10), "test": (2, 10)}
    assert info["splits"]["train"]["entities"] == {"LOC": 3, "ORG": 1, "PER": 2}
    assert info["scheme"] == "BIO" and "Fs" not in info["labels"]
    if columns == 3:
        [note] = info["notes"]
        assert note.startswith(f"conll2002-es: {root / 'conll2002' / 'esp.train'}:1 has 3 columns where the "
                               "registry describes 2 (`token NER`); tags are read from the last column (2")
        assert "--tag-column" in note
    else:
        assert info["notes"] == []
    table = _inspect(capsys, "conll2002-es", "--data-dir", root)
    assert table.count("note: ") == (1 if columns == 3 else 0)  # said once, not per file
    rows = [line.split() for line in table.splitlines() if line.startswith(("train ", "dev ", "test "))]
    assert [row[:4] for row in rows[:3]] == [["train", "3", "24", "6"], ["dev", "2", "10", "3"],
                                             ["test", "2", "10", "4"]]  # sentences, tokens, entities


def test_spanish_tokens_and_tags_round_trip_latin1(tmp_path):
    corpus = load_corpus("conll2002-es", data_dir=str(_spanish(tmp_path, 3)))
    assert corpus.splits["train"][2].tokens[-2] == "España" and corpus.splits["train"][2].tags[-2] == "B-LOC"
    assert corpus.splits["dev"][1].tokens == ("La", "Peña", "Bética", "ganó")
    assert corpus.splits["train"][0].tags == tuple(row[2] for row in ES_TRAIN[0])


def test_user_tag_column_wins_and_no_note_is_printed(tmp_path):
    root = _spanish(tmp_path, 3)
    with pytest.raises(DataError, match=rf"{tmp_path / 'conll2002' / 'esp.train'}:1: label 'NP' is not a tag"):
        load_corpus("conll2002-es", data_dir=str(root), tag_column=1)  # the POS column, on purpose
    corpus = load_corpus("conll2002-es", data_dir=str(root), tag_column=-1)
    assert corpus.notes == [] and corpus.splits["train"][0].tags[0] == "B-LOC"


def test_dutch_docstart_inside_the_first_sentence(tmp_path, capsys):
    corpus = load_corpus("conll2002-nl", data_dir=str(_dutch(tmp_path)))
    train = corpus.splits["train"]
    assert [s.tokens[0] for s in train] == ["De", "Het", "Dat"]
    assert [len(s.tokens) for s in train] == [10, 7, 6]
    assert not any("-DOCSTART-" in s.tokens for split in corpus.splits.values() for s in split)
    assert train[1].tokens[-2] == "één" and train[2].source.endswith("ned.train:21")
    assert corpus.notes == []  # three columns, as the registry describes
    info = json.loads(_inspect(capsys, "conll2002-nl", "--data-dir", tmp_path, "--json"))
    assert {k: (v["sentences"], v["tokens"]) for k, v in info["splits"].items()} == \
        {"train": (3, 23), "dev": (2, 4), "test": (1, 1)}


def test_training_header_says_it_once(tmp_path, caplog):
    from mcrf.training import TrainConfig, train

    root = _spanish(tmp_path, 3)
    config = TrainConfig.for_dataset("conll2002-es", data_dir=str(root), encoder="bilstm", max_steps=1,
                                     batch_size=4, output_dir=str(tmp_path / "run"), patience=None)
    with caplog.at_level(logging.INFO, logger="mcrf"):
        train(config)
    mentions = [r.getMessage() for r in caplog.records if "tags are read from the last column" in r.getMessage()]
    assert len(mentions) == 1, mentions
    assert "  data  " in mentions[0] and "total steps" in mentions[0]  # a line of the header
