"""Tiny, download-free encoders and toy data for tests (stable helper API; other test files import it).

Everything is built in a directory the caller gives (use pytest's ``tmp_path``):

- ``write_vocab(directory, words=WORDS)`` -> path of a WordPiece ``vocab.txt``.
- ``make_tokenizer(directory, words=WORDS)`` -> a fast BERT tokenizer over that vocab.
- ``make_bert_dir(directory, ...)`` -> a directory holding a randomly initialised (seeded)
  ``BertModel`` (hidden 32, 2 layers) plus its tokenizer files, loadable with
  ``AutoModel.from_pretrained(dir)`` / ``AutoTokenizer.from_pretrained(dir)`` and therefore usable
  as ``TaggerConfig(encoder=str(dir))``.
- ``toy_sentences(n, seed)`` -> ``n`` BIO-tagged ``Sentence`` objects (PER/LOC/ORG, multi-word
  entities) whose words are all in ``WORDS``; ``TOY_LABELS`` is their BIO tag inventory.
- ``one_torch_thread``: a module-scoped autouse fixture; import it into a test module
  (``from tiny_models import one_torch_thread  # noqa: F401``) to run that module's tests with one
  torch thread (tiny models on a shared, oversubscribed CPU run many times faster that way), restoring
  the previous thread count afterwards.

Note (transformers 5): ``BertTokenizerFast(vocab_file=...)`` silently ignores the file and builds a
5-token vocabulary; ``BertTokenizer.from_pretrained(dir)`` with ``vocab.txt`` in ``dir`` is used instead.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import List, Sequence, Union

import pytest

from mcrf.data.types import Sentence

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
PERSONS = ["john", "mary", "smith", "anna", "lee", "peter", "jones"]
PLACES = ["paris", "london", "new", "york", "berlin", "rome"]
ORGS = ["acme", "corp", "united", "nations", "google", "bank"]
FILLER = ["the", "a", "in", "of", "met", "visited", "works", "for", "said", "today", "and", "to", "at", "."]
PIECES = ["##s", "##ed", "##ing", "##er", "##x", "##y"]
WORDS = SPECIALS + PERSONS + PLACES + ORGS + FILLER + PIECES
TOY_LABELS = ["O", "B-LOC", "B-ORG", "B-PER", "I-LOC", "I-ORG", "I-PER"]

PathLike = Union[str, "os.PathLike[str]"]


def write_vocab(directory: PathLike, words: Sequence[str] = tuple(WORDS)) -> Path:
    """Write a WordPiece vocabulary (one token per line) and return its path.

    Args:
        directory: where ``vocab.txt`` goes (created if missing).
        words: tokens, special tokens first; must include ``[PAD] [UNK] [CLS] [SEP]``.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "vocab.txt"
    path.write_text("\n".join(words) + "\n", encoding="utf-8")
    return path


def make_tokenizer(directory: PathLike, words: Sequence[str] = tuple(WORDS)):
    """A fast lower-casing BERT tokenizer over ``words`` (vocab written into ``directory``)."""
    from transformers import BertTokenizerFast  # transformers 5: an alias of BertTokenizer (fast)

    write_vocab(directory, words)
    tokenizer = BertTokenizerFast.from_pretrained(str(directory))
    assert tokenizer.is_fast and len(tokenizer) == len(words), "tiny tokenizer did not load its vocab"
    return tokenizer


def make_bert_dir(
    directory: PathLike,
    words: Sequence[str] = tuple(WORDS),
    hidden: int = 32,
    layers: int = 2,
    heads: int = 2,
    max_positions: int = 512,
    seed: int = 0,
) -> Path:
    """Save a tiny random ``BertModel`` and its tokenizer into ``directory``; return the directory.

    Args:
        directory: output directory (created if missing).
        words: vocabulary (see ``write_vocab``).
        hidden: hidden size (divisible by ``heads``).
        layers: number of transformer layers.
        heads: attention heads.
        max_positions: ``max_position_embeddings`` (windows may not be longer).
        seed: torch seed for the random weights (same seed, same model).
    """
    import torch
    from transformers import BertConfig, BertModel

    directory = Path(directory)
    tokenizer = make_tokenizer(directory, words)
    config = BertConfig(
        vocab_size=len(words),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=hidden * 2,
        max_position_embeddings=max_positions,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    torch.manual_seed(seed)
    model = BertModel(config)
    model.save_pretrained(str(directory))
    tokenizer.save_pretrained(str(directory))
    return directory


def toy_sentences(n: int = 20, seed: int = 0) -> List[Sentence]:
    """``n`` BIO-tagged toy sentences with PER/LOC/ORG entities (1-2 words), all words in ``WORDS``."""
    rng = random.Random(seed)
    entities = {
        "PER": [["john"], ["mary", "smith"], ["anna", "lee"], ["peter", "jones"], ["lee"]],
        "LOC": [["paris"], ["london"], ["new", "york"], ["berlin"], ["rome"]],
        "ORG": [["acme", "corp"], ["united", "nations"], ["google"], ["bank"]],
    }
    templates = [
        ["PER", "visited", "LOC", "."],
        ["PER", "works", "for", "ORG", "in", "LOC", "."],
        ["the", "ORG", "said", "PER", "met", "PER", "today", "."],
        ["a", "PER", "and", "PER", "visited", "LOC", "and", "LOC"],
        ["ORG", "ORG", "in", "LOC", "."],
    ]
    sentences = []
    for i in range(n):
        tokens: List[str] = []
        tags: List[str] = []
        for slot in rng.choice(templates):
            if slot in entities:
                words = rng.choice(entities[slot])
                tokens.extend(words)
                tags.extend([f"B-{slot}"] + [f"I-{slot}"] * (len(words) - 1))
            else:
                tokens.append(slot)
                tags.append("O")
        sentences.append(Sentence(tuple(tokens), tuple(tags), source=f"toy:{i + 1}"))
    return sentences


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Run the importing module's tests with ``torch.set_num_threads(1)``; restore afterwards."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
