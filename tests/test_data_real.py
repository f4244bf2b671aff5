"""Real corpora from $MCRF_DATA_DIR or ../shared/data (skipped when absent): counts must match each SOURCE.md exactly."""

from __future__ import annotations

import pytest

from mcrf.crf import schemes
from mcrf.data import inspect_corpus, load_corpus

from extras import data_dir

SHARED = data_dir()  # $MCRF_DATA_DIR, else ../shared/data

# name: {split: (sentences, tokens)} as written in SOURCE.md, and the illegal gold sequences measured
# under the corpus's own (detected) scheme before repair.
EXPECTED = {
    "conll2003": ({"train": (14041, 203621), "dev": (3250, 51362), "test": (3453, 46435)}, "IOB1", {"train": 2}),
    "conll2000": ({"train": (8936, 211727), "test": (2012, 47377)}, "BIO", {}),
    "wnut17": ({"train": (3394, 62730), "dev": (1009, 15733), "test": (1287, 23394)}, "BIO", {}),
    "atis": ({"train": (4478, 50497), "dev": (500, 5703), "test": (893, 9164)}, "BIO", {}),
    "snips": ({"train": (13084, 117700), "dev": (700, 6384), "test": (700, 6354)}, "BIO", {}),
    "resume": ({"train": (3825, 124099), "dev": (472, 13890), "test": (477, 15100)}, "BIO", {"train": 2}),
    "resume-bmes": ({"train": (3821, 124099), "dev": (463, 13890), "test": (477, 15100)}, "BMES", {"train": 4}),
}


@pytest.fixture(scope="module")
def corpora():
    """Load each corpus once per module run."""
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = load_corpus(name, data_dir=str(SHARED))
        return cache[name]

    return get


@pytest.mark.skipif(not SHARED.is_dir(), reason=f"real corpora not available at {SHARED}")
@pytest.mark.parametrize("name", list(EXPECTED))
def test_real_corpus_counts_and_legality(name, corpora):
    counts, source_scheme, illegal = EXPECTED[name]
    corpus = corpora(name)
    info = inspect_corpus(corpus)
    assert {s: (v["sentences"], v["tokens"]) for s, v in info["splits"].items()} == counts
    assert {s: v["source_scheme"] for s, v in info["splits"].items()} == {s: source_scheme for s in counts}
    assert {s: v["illegal"] for s, v in info["splits"].items() if v["illegal"]} == illegal
    assert info["notes"] == []  # each release has the columns its registry entry describes
    # after the default repair every gold sequence is legal in the corpus scheme, and every tag has a mask row
    labels = set(corpus.labels)
    for sentences in corpus.splits.values():
        for sentence in sentences:
            assert schemes.is_legal(sentence.tags, corpus.scheme)
            assert labels.issuperset(sentence.tags)


@pytest.mark.skipif(not SHARED.is_dir(), reason=f"real corpora not available at {SHARED}")
def test_conll2003_iob1_to_bio_and_full_inventory(corpora):
    corpus = corpora("conll2003")
    assert corpus.scheme == "BIO"
    assert corpus.labels == ["O", "B-LOC", "B-MISC", "B-ORG", "B-PER", "I-LOC", "I-MISC", "I-ORG", "I-PER"]
    assert corpus.report["train"]["illegal_at"][0].endswith("eng.train:152428: O -> B-MISC")
    first = corpus.splits["train"][0]
    assert first.tokens[:3] == ("EU", "rejects", "German") and first.tags[:3] == ("B-ORG", "O", "B-MISC")


@pytest.mark.skipif(not SHARED.is_dir(), reason=f"real corpora not available at {SHARED}")
def test_atis_labels_include_tags_unseen_in_train(corpora):
    corpus = corpora("atis")
    train_tags = {t for s in corpus.splits["train"] for t in s.tags}
    assert "B-booking_class" not in train_tags and "B-booking_class" in corpus.labels
