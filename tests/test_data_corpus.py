"""load_corpus, the registry resolution and inspect_corpus on small inline corpora."""

from __future__ import annotations

import json

import pytest

from mcrf.crf import schemes
from mcrf.data import LoadConfig, format_inspection, inspect_corpus, load_corpus
from mcrf.data import hub as hub_module
from mcrf.data.registry import REGISTRY, find_split_files, split_of
from mcrf.errors import ConfigError, DataError, InputNotFound

from extras import extra


def _write_split(folder, name, sentences, columns=1):
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for sent in sentences:
        for token, tag in sent:
            lines.append(" ".join([token] + ["X"] * (columns - 2) + [tag]))
        lines.append("")
    (folder / name).write_text("\n".join(lines), encoding="utf-8")
    return folder / name


IOB1_TRAIN = [[("EU", "I-ORG"), ("rejects", "O"), ("German", "I-MISC")],
              [("Peter", "I-PER"), ("Blackburn", "I-PER"), ("Smith", "B-PER")],
              [("in", "O"), ("World", "B-MISC"), ("Cup", "I-MISC")]]  # B-MISC after O: illegal IOB1
IOB1_DEV = [[("Paris", "I-LOC"), ("and", "O"), ("Rome", "I-LOC")]]


@pytest.fixture
def iob1_dir(tmp_path):
    root = tmp_path / "mini"
    _write_split(root, "train.txt", IOB1_TRAIN, columns=4)
    _write_split(root, "valid.txt", IOB1_DEV, columns=4)
    _write_split(root, "test.txt", IOB1_DEV, columns=4)
    return root


def test_iob1_corpus_detected_repaired_and_converted_to_bio(iob1_dir):
    corpus = load_corpus(str(iob1_dir))
    assert corpus.scheme == "BIO"
    assert corpus.labels == schemes.scheme_labels(["LOC", "MISC", "ORG", "PER"], "BIO")
    train = corpus.splits["train"]
    assert train[1].tags == ("B-PER", "I-PER", "B-PER")
    assert train[2].tags == ("O", "B-MISC", "I-MISC")
    report = corpus.report["train"]
    assert report["illegal"] == 1 and report["repaired"] == 1 and report["source_scheme"] == "IOB1"
    assert report["illegal_at"] == [f"{iob1_dir / 'train.txt'}:10: O -> B-MISC"]
    assert corpus.report["dev"]["sentences"] == 1 and corpus.report["dev"]["tokens"] == 3


def test_labels_cover_tags_absent_from_train(iob1_dir):
    # dev has no B-LOC: the complete inventory has it anyway, in any target scheme
    corpus = load_corpus(str(iob1_dir), scheme="BIOES")
    assert corpus.scheme == "BIOES"
    assert {"B-LOC", "E-LOC", "S-LOC", "I-LOC"} <= set(corpus.labels)
    assert corpus.splits["dev"][0].tags == ("S-LOC", "O", "S-LOC")
    for split in corpus.splits.values():
        assert all(schemes.is_legal(s.tags, "BIOES") for s in split)


def test_policy_drop_and_error(iob1_dir):
    dropped = load_corpus(str(iob1_dir), policy="drop")
    assert len(dropped.splits["train"]) == 2 and dropped.report["train"]["dropped"] == 1
    with pytest.raises(DataError, match=r"train.txt:10: expected a legal IOB1 gold sequence, got 'O' -> 'B-MISC' "
                                        r"\(position 1 of the sentence at .*train.txt:9\); fix the tags or load "
                                        r"with --policy repair or drop"):
        load_corpus(str(iob1_dir), policy="error")


def test_bio_illegal_start_repaired(tmp_path):
    path = _write_split(tmp_path, "train.txt", [[("a", "B-X"), ("b", "I-X")], [("c", "I-X"), ("d", "O")],
                                                [("e", "B-X")], [("f", "O"), ("g", "B-X")]])
    corpus = load_corpus(str(path))
    assert corpus.scheme == "BIO" and corpus.splits["train"][1].tags == ("B-X", "O")
    assert corpus.report["train"]["illegal_at"] == [f"{path}:4: <start> -> I-X"]


def test_unknown_tag_prefix_names_file_line(tmp_path):
    path = _write_split(tmp_path, "train.txt", [[("a", "B-X"), ("b", "E-X")]])
    with pytest.raises(DataError, match=r"train.txt:2: unknown tag prefix in 'E-X' at position 1 for scheme BIO"):
        load_corpus(str(path), source_scheme="BIO")
    bad = _write_split(tmp_path / "b", "train.txt", [[("a", "PER")]])
    with pytest.raises(DataError, match=r"b/train.txt:1: label 'PER' is not a tag.*; fix the label, or pass "
                                        r"--tag-column"):
        load_corpus(str(bad))


def test_bmes_bare_tags_stay_bmes(tmp_path):
    path = _write_split(tmp_path, "train.bmes", [[("我", "S"), ("在", "S"), ("北", "B"), ("京", "M"), ("城", "E")]])
    corpus = load_corpus(str(path))
    assert corpus.scheme == "BMES" and corpus.labels == ["O", "B", "E", "M", "S"]
    assert load_corpus(str(path), scheme="BIO").splits["train"][0].tags == ("B", "B", "B", "I", "I")


def test_jsonl_and_pairs_folders(tmp_path):
    for split in ("train", "valid", "test"):
        folder = tmp_path / "slots" / split
        folder.mkdir(parents=True)
        (folder / "seq.in").write_text("fly to boston\n")
        (folder / "seq.out").write_text("O O B-city\n")
        (tmp_path / "js").mkdir(exist_ok=True)
        (tmp_path / "js" / f"{split}.jsonl").write_text(json.dumps({"tokens": ["a"], "tags": ["B-X"]}) + "\n")
    pairs = load_corpus(str(tmp_path / "slots"))
    assert sorted(pairs.splits) == ["dev", "test", "train"] and pairs.labels == ["O", "B-city", "I-city"]
    assert load_corpus(str(tmp_path / "js")).splits["dev"][0].tags == ("B-X",)


def test_hub_folder_through_load_corpus(tmp_path):
    datasets = extra("datasets", "pip install mcrf (a dependency)")
    names = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"]
    features = datasets.Features({"tokens": datasets.Sequence(datasets.Value("string")),
                                  "ner_tags": datasets.Sequence(datasets.ClassLabel(names=names))})
    ds = datasets.Dataset.from_dict({"tokens": [["Ann", "Lee", "in", "Oslo"]], "ner_tags": [[1, 2, 0, 3]]},
                                    features=features)
    datasets.DatasetDict({"train": ds, "validation": ds}).save_to_disk(str(tmp_path / "hf"))
    corpus = load_corpus(str(tmp_path / "hf"))
    assert sorted(corpus.splits) == ["dev", "train"]
    assert corpus.splits["train"][0].tags == ("B-PER", "I-PER", "O", "B-LOC")
    # labels come from the data (ORG never occurs), in the complete BIO inventory
    assert corpus.labels == ["O", "B-LOC", "B-PER", "I-LOC", "I-PER"]


def test_registry_resolution_data_dir_env_and_subfolder(tmp_path, monkeypatch):
    monkeypatch.delenv("MCRF_DATA_DIR", raising=False)
    root = tmp_path / "corpora"
    _write_split(root / "conll2003", "eng.train", IOB1_TRAIN, columns=4)
    _write_split(root / "conll2003", "eng.testa", IOB1_DEV, columns=4)
    corpus = load_corpus("conll2003", data_dir=str(root))
    assert sorted(corpus.splits) == ["dev", "train"] and corpus.scheme == "BIO"
    assert corpus.splits["train"][0].tags == ("B-ORG", "O", "B-MISC")  # tag column 3 of 4
    monkeypatch.setenv("MCRF_DATA_DIR", str(root / "conll2003"))
    assert len(load_corpus("conll2003").splits["train"]) == 3


def test_an_explicit_data_dir_is_the_only_place_searched(tmp_path, monkeypatch):
    """``--data-dir`` that lacks the corpus (or is a file) is an error even when ``$MCRF_DATA_DIR`` holds
    one: reading that other copy would train on data the user did not name, without a word."""
    from mcrf.errors import UserError

    root = tmp_path / "corpora"
    _write_split(root / "conll2003", "eng.train", IOB1_TRAIN, columns=4)
    monkeypatch.setenv("MCRF_DATA_DIR", str(root))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert len(load_corpus("conll2003").splits["train"]) == 3
    (tmp_path / "empty").mkdir()
    not_a_folder = tmp_path / "eng.train"
    not_a_folder.write_text("EU B-ORG\n")
    for given in (tmp_path / "empty", not_a_folder):
        with pytest.raises(UserError, match="--data-dir"):
            load_corpus("conll2003", data_dir=str(given))


def test_format_override_of_a_registered_dataset_reports_the_right_line(tmp_path, monkeypatch):
    """conll2003 files rewritten as JSON lines: locations are file:line of the record, not line + token."""
    monkeypatch.delenv("MCRF_DATA_DIR", raising=False)
    folder = tmp_path / "conll2003"
    folder.mkdir()
    records = [{"tokens": ["EU", "rejects"], "tags": ["I-ORG", "O"]},
               {"tokens": ["in", "the", "World", "Cup"], "tags": ["O", "O", "B-MISC", "I-MISC"]}]
    (folder / "eng.train").write_text("\n".join(json.dumps(r) for r in records), encoding="utf-8")
    corpus = load_corpus("conll2003", data_dir=str(tmp_path), format="jsonl", source_scheme="IOB1")
    assert corpus.report["train"]["illegal_at"] == [f"{folder / 'eng.train'}:2 (token 3): O -> B-MISC"]


def test_registry_not_found_says_where_to_put_files(tmp_path, monkeypatch):
    monkeypatch.delenv("MCRF_DATA_DIR", raising=False)

    def offline(*args, **kwargs):
        raise ConnectionError("hub unreachable")

    monkeypatch.setattr(hub_module, "read_hub_dataset", offline)
    monkeypatch.setattr(hub_module, "unreachable", lambda timeout=3.0: None)  # the hub is tried, and fails
    with pytest.raises(FileNotFoundError) as err:
        load_corpus("conll2003", data_dir=str(tmp_path))
    text = str(err.value)
    assert "train: eng.train, dev: eng.testa, test: eng.testb" in text
    assert "DIR/conll2003/" in text and "MCRF_DATA_DIR" in text and str(tmp_path) in text
    assert "lhoestq/conll2003: ConnectionError" in text and "eriktks/conll2003" in text
    with pytest.raises(FileNotFoundError, match="train: train/seq.in \\+ train/seq.out"):
        load_corpus("atis", data_dir=str(tmp_path))
    with pytest.raises(FileNotFoundError, match="not a registered name .*conll2003"):
        load_corpus("no-such-corpus")
    with pytest.raises(FileNotFoundError, match="'someone/corpus' is no local path, and as a Hugging Face hub id"):
        load_corpus("someone/corpus")


def test_a_missing_hub_dataset_is_not_found_but_a_bug_in_the_reader_is_not_retold(tmp_path, monkeypatch):
    """Issue 18: every exception of the hub reader became "not found", hiding bugs behind the user's fault."""
    from datasets.exceptions import DatasetNotFoundError

    from mcrf.errors import UserError

    monkeypatch.delenv("MCRF_DATA_DIR", raising=False)

    def missing(*args, **kwargs):
        raise DatasetNotFoundError("Dataset 'lhoestq/conll2003' doesn't exist on the Hub")

    monkeypatch.setattr(hub_module, "read_hub_dataset", missing)
    monkeypatch.setattr(hub_module, "unreachable", lambda timeout=3.0: None)  # the hub is tried (not skipped offline)
    with pytest.raises(FileNotFoundError, match="lhoestq/conll2003: DatasetNotFoundError"):
        load_corpus("conll2003", data_dir=str(tmp_path))

    def broken(*args, **kwargs):
        raise KeyError("a bug in the reader")

    monkeypatch.setattr(hub_module, "read_hub_dataset", broken)
    with pytest.raises(KeyError, match="a bug in the reader") as error:
        load_corpus("conll2003", data_dir=str(tmp_path))
    assert not isinstance(error.value, UserError)


def test_find_split_files_conventions(tmp_path):
    for name in ("eng.train", "eng.testa", "eng.testb", "README", "notes.md"):
        (tmp_path / name).write_text("a O\n")
    found = find_split_files(tmp_path)
    assert {k: v.name for k, v in found.paths.items()} == {"train": "eng.train", "dev": "eng.testa", "test": "eng.testb"}
    assert split_of("validation.jsonl") == "dev" and split_of("wnut17train.conll") is None
    (tmp_path / "dev.txt").write_text("a O\n")
    with pytest.raises(DataError, match="expected one file per split, got both dev.txt and eng.testa looking like "
                                       "the dev split"):
        find_split_files(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputNotFound, match="empty: expected files named train / dev"):
        find_split_files(empty)


def test_load_config_validation():
    with pytest.raises(ConfigError, match="unknown policy 'fix'; expected one of repair, drop, error"):
        LoadConfig(policy="fix")
    with pytest.raises(ValueError, match="unknown format"):
        LoadConfig(format="xml")
    with pytest.raises(ConfigError, match="unknown tag scheme"):
        LoadConfig(scheme="BIOZ")
    with pytest.raises(TypeError):
        load_corpus("sample", colour="red")
    assert LoadConfig(scheme="iobes").scheme == "BIOES"


def test_sample_corpus_and_inspect_shape():
    corpus = load_corpus("sample")
    assert {k: len(v) for k, v in corpus.splits.items()} == {"train": 600, "dev": 150, "test": 150}
    assert corpus.scheme == "BIO" and len(corpus.labels) == 9
    assert REGISTRY["sample"].scheme == "BIO"
    info = inspect_corpus(corpus)
    json.dumps(info)
    assert info["scheme"] == "BIO"
    for split, stats in info["splits"].items():
        assert {"sentences", "tokens", "labels", "illegal"} <= set(stats)
        assert stats["sentences"] == len(corpus.splits[split]) and stats["illegal"] == 0
        assert stats["tokens"] == sum(len(s.tokens) for s in corpus.splits[split])
        assert set(stats["entities"]) == {"LOC", "MISC", "ORG", "PER"}
    text = format_inspection(info)
    assert "train" in text and f"{info['splits']['train']['tokens']:,}" in text and "entities per type" in text


def test_format_inspection_lists_illegal_locations(iob1_dir):
    text = format_inspection(inspect_corpus(load_corpus(str(iob1_dir))))
    assert "read as IOB1" in text and "1 repaired" in text and "train.txt:10: O -> B-MISC" in text


def test_dev_fraction_carves_dev_only_when_missing(tmp_path):
    sents = [[(f"w{i}", "B-X"), ("x", "O")] for i in range(10)]
    path = _write_split(tmp_path / "c", "train.txt", sents)
    _write_split(tmp_path / "c", "test.txt", sents[:3])
    corpus = load_corpus(str(path.parent), dev_fraction=0.2)
    assert list(corpus.splits) == ["train", "dev", "test"]  # listed in the usual order, not appended
    assert [len(corpus.splits[s]) for s in ("train", "dev")] == [8, 2]
    assert corpus.splits["dev"][0].tokens[0] == "w8" and corpus.report["dev"]["carved_from_train"] == 2
    assert corpus.report["dev"]["illegal_at"] == [] and corpus.report["dev"]["tokens"] == 4
    assert "dev" not in load_corpus(str(path)).splits
    with pytest.raises(ValueError, match="0 <= dev_fraction < 1"):
        LoadConfig(dev_fraction=1.0)


def test_only_o_tags_need_an_explicit_scheme(tmp_path):
    path = _write_split(tmp_path, "train.txt", [[("a", "O"), ("b", "O")]])
    with pytest.raises(DataError, match="expected entity tags to detect the tag scheme from, got only O tags; "
                                       "pass source_scheme"):
        load_corpus(str(path))
    corpus = load_corpus(str(path), source_scheme="BIOES")
    assert corpus.scheme == "BIOES" and corpus.labels == ["O"]


def test_sample_is_not_taken_from_an_unrelated_data_dir(tmp_path, monkeypatch):
    _write_split(tmp_path, "train.txt", [[("x", "B-Y")]])
    monkeypatch.setenv("MCRF_DATA_DIR", str(tmp_path))
    assert len(load_corpus("sample").splits["train"]) == 600
    _write_split(tmp_path / "sample", "train.txt", [[("x", "B-Y")]])
    assert len(load_corpus("sample").splits["train"]) == 1


def test_a_mistyped_path_that_looks_like_a_hub_id_fails_at_once_when_the_hub_is_unreachable(monkeypatch):
    """`mcrf inspect ds/nope.txt` offline spent ~23 s in `datasets`' retries before its error (found by probe)."""
    monkeypatch.delenv("MCRF_DATA_DIR", raising=False)

    def must_not_be_called(*args, **kwargs):
        raise AssertionError("the hub was tried although it is unreachable")

    monkeypatch.setattr(hub_module, "read_hub_dataset", must_not_be_called)
    monkeypatch.setattr(hub_module, "cached", lambda repo_id: False)
    monkeypatch.setattr(hub_module, "unreachable", lambda timeout=3.0: "huggingface.co:443 is unreachable (test)")
    with pytest.raises(InputNotFound, match="'ds/nope.txt' is no local path, and as a Hugging Face hub id it was "
                                            "not tried: .*huggingface.co:443 is unreachable .*check the path"):
        load_corpus("ds/nope.txt")
