"""BiLSTM encoder: word embeddings + character CNN + bidirectional LSTM (no pretrained weights).

The word and character vocabularies are built from the training sentences
(``BiLSTMVocab.build``) and saved as ``vocab.json`` next to the weights. Index 0 is padding
and index 1 the unknown word/character in both vocabularies.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

import torch
from torch import Tensor, nn

from mcrf.errors import ConfigError, ModelDirError
from mcrf.fields import depth, flag_bool, integer, number, option, width
from mcrf.io.files import write_json
from mcrf.models.encoders.base import Encoder, Featurizer

__all__ = ["BiLSTMVocab", "BiLSTMOptions", "BiLSTMEncoder", "bilstm_inputs", "run_bilstm"]

PAD, UNK = "<pad>", "<unk>"


@dataclass
class BiLSTMVocab:
    """Word and character vocabularies of a BiLSTM tagger.

    Attributes:
        words: index -> word (``words[0]`` padding, ``words[1]`` unknown).
        chars: index -> character (same two specials first).
        lowercase: words are lower-cased before lookup.
    """

    words: List[str]
    chars: List[str]
    lowercase: bool = False

    def __post_init__(self) -> None:
        for name, items in (("words", self.words), ("chars", self.chars)):
            if list(items[:2]) != [PAD, UNK]:
                raise ModelDirError(f"expected the {name} vocabulary to start with {[PAD, UNK]}, got {list(items[:2])}")
            if len(set(items)) != len(items):
                raise ModelDirError(f"expected unique entries in the {name} vocabulary")
        self._word_index = {w: i for i, w in enumerate(self.words)}
        self._char_index = {c: i for i, c in enumerate(self.chars)}

    @classmethod
    def build(cls, sentences: Sequence[Sequence[str]], min_count: int = 1, lowercase: bool = False) -> "BiLSTMVocab":
        """Count words and characters of the training sentences.

        Args:
            sentences: the words of each training sentence.
            min_count: words seen fewer times become unknown (characters are all kept).
            lowercase: lower-case words for the word vocabulary.

        Raises:
            ValueError: when there are no words to build from.
        """
        word_counts: Counter = Counter()
        char_counts: Counter = Counter()
        for tokens in sentences:
            for token in tokens:
                word_counts[token.lower() if lowercase else token] += 1
                char_counts.update(token)
        if not word_counts:
            raise ConfigError(
                "the BiLSTM encoder builds its vocabulary from training sentences, got none with words; "
                "pass train_sentences to Tagger.build"
            )
        words = sorted(w for w, c in word_counts.items() if c >= min_count)
        chars = sorted(char_counts)
        return cls([PAD, UNK] + words, [PAD, UNK] + chars, lowercase)

    def word_id(self, word: str) -> int:
        """Index of ``word`` (1 for unknown words)."""
        return self._word_index.get(word.lower() if self.lowercase else word, 1)

    def char_ids(self, word: str, limit: int) -> List[int]:
        """Indices of the first ``limit`` characters of ``word`` (1 for unknown characters)."""
        return [self._char_index.get(c, 1) for c in word[:limit]]

    def to_dict(self) -> Dict[str, Any]:
        """JSON-ready form."""
        return {"words": list(self.words), "chars": list(self.chars), "lowercase": self.lowercase}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "BiLSTMVocab":
        """Inverse of ``to_dict``.

        Raises:
            ValueError: when a key is missing.
        """
        missing = {"words", "chars", "lowercase"} - set(data)
        if missing:
            raise ModelDirError(f"BiLSTM vocabulary file lacks keys {sorted(missing)}; expected words, chars, lowercase")
        return cls(list(data["words"]), list(data["chars"]), bool(data["lowercase"]))


def bilstm_inputs(vocab: BiLSTMVocab, sentences: Sequence[Sequence[str]], max_word_chars: int) -> Dict[str, Tensor]:
    """Index a batch of sentences for the BiLSTM encoder (right-padded).

    Args:
        vocab: the tagger's vocabularies.
        sentences: the words of each of ``B`` sentences.
        max_word_chars: characters read per word.

    Returns:
        ``word_ids`` (B, W) long, ``char_ids`` (B, W, C) long, ``word_mask`` (B, W) bool.
    """
    batch = len(sentences)
    width = max((len(s) for s in sentences), default=0)
    chars = max((min(len(w), max_word_chars) for s in sentences for w in s), default=0)
    word_ids = torch.zeros(batch, width, dtype=torch.long)  # shape: (B, W)
    char_ids = torch.zeros(batch, width, max(chars, 1), dtype=torch.long)  # shape: (B, W, C)
    word_mask = torch.zeros(batch, width, dtype=torch.bool)  # shape: (B, W)
    for b, tokens in enumerate(sentences):
        for t, token in enumerate(tokens):
            word_ids[b, t] = vocab.word_id(token)
            ids = vocab.char_ids(token, max_word_chars) or [1]
            char_ids[b, t, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        word_mask[b, : len(tokens)] = True
    return {"word_ids": word_ids, "char_ids": char_ids, "word_mask": word_mask}


def run_bilstm(lstm: nn.LSTM, features: Tensor, word_mask: Tensor) -> Tensor:
    """Run a batch-first bidirectional ``lstm`` over right-padded word features, skipping the padding.

    Args:
        lstm: a ``batch_first`` LSTM.
        features: (B, W, D) word features.
        word_mask: (B, W) bool, True at real words (a prefix of each row).

    Returns:
        States, shape (B, W, 2 * hidden), zeros at padding.
    """
    width = features.shape[1]
    lengths = word_mask.sum(dim=1).clamp(min=1).cpu()  # shape: (B,)
    packed = nn.utils.rnn.pack_padded_sequence(features, lengths, batch_first=True, enforce_sorted=False)
    output, _ = lstm(packed)
    states, _ = nn.utils.rnn.pad_packed_sequence(output, batch_first=True, total_length=width)
    return states  # shape: (B, W, 2H)


@dataclass
class BiLSTMOptions:
    """Architecture of the BiLSTM encoder (``TaggerConfig.encoder_options``)."""

    word_dim: int = option(100, cli=False, check=width(), help="word-embedding size")
    char_dim: int = option(30, cli=False, check=width(), help="character-embedding size")
    char_filters: int = option(50, cli=False, check=width(), help="character-CNN filters (the char vector size)")
    char_kernel: int = option(3, cli=False, check=width(), help="character-CNN kernel width")
    lstm_hidden: int = option(200, cli=False, check=width(), help="LSTM hidden size per direction")
    lstm_layers: int = option(1, cli=False, check=depth(), help="LSTM layers")
    min_word_count: int = option(1, cli=False, check=integer(1), help=(
        "words seen fewer times in training become unknown"))
    lowercase: bool = option(False, cli=False, check=flag_bool, help="lower-case words for the word vocabulary")
    max_word_chars: int = option(40, cli=False, check=width(), help="characters of a word the char CNN reads")
    word_dropout: float = option(0.05, cli=False, check=number(0, 1, high_open=True), help=(
        "training only: probability of replacing a word by the unknown word, so its embedding is trained"))


class BiLSTMEncoder(Encoder):
    """Word embedding ++ char-CNN max-pool -> BiLSTM, trained from scratch.

    Args:
        vocab: word/char vocabularies (kept on the module as ``vocab``).
        options: the architecture.
        dropout: dropout on the LSTM input (and between layers): ``TaggerConfig.dropout``.
    """

    kind = "bilstm"
    Options = BiLSTMOptions
    files = ("vocab.json",)

    def __init__(self, vocab: BiLSTMVocab, options: BiLSTMOptions, dropout: float) -> None:
        super().__init__()
        self.vocab = vocab
        self.max_word_chars = options.max_word_chars
        self.word_dropout = options.word_dropout
        self.word_embeddings = nn.Embedding(len(vocab.words), options.word_dim, padding_idx=0)
        self.char_embeddings = nn.Embedding(len(vocab.chars), options.char_dim, padding_idx=0)
        kernel = options.char_kernel
        self.char_cnn = nn.Conv1d(options.char_dim, options.char_filters, kernel, padding=kernel // 2)
        self.dropout = nn.Dropout(dropout)
        self.lstm = nn.LSTM(options.word_dim + options.char_filters, options.lstm_hidden,
                            num_layers=options.lstm_layers, batch_first=True, bidirectional=True,
                            dropout=dropout if options.lstm_layers > 1 else 0.0)
        self.output_size = 2 * options.lstm_hidden

    @classmethod
    def accepts(cls, name: str) -> bool:
        return name == "bilstm"

    @classmethod
    def describe(cls, name: str) -> str:
        return "BiLSTM with character CNN (trained from scratch)"

    @classmethod
    def recommended(cls) -> Dict[str, Any]:
        """One learning rate for everything, no decay, short warmup, loose clipping, measured on real corpora.

        With 5 epochs (CoNLL-2003's first 3,000 sentences / WNUT-17 / ATIS, dev F1): lr 1e-2 gave 79.4 / 17.2 /
        96.4, 3e-3 gave 76.2 / 14.1 / 96.1, 1e-3 gave 65.2 / 1.0; the BERT recipe (5e-5 with layer decay) 9.7 on
        CoNLL-2003. The README's "Encoder defaults for the BiLSTM" table has the commands.
        """
        return {"lr": 1e-2, "head_lr": 1e-2, "layer_decay": 1.0, "weight_decay": 0.0, "warmup_ratio": 0.05,
                "max_grad_norm": 5.0, "epochs": 10}

    @classmethod
    def create(cls, config: Any, train_sentences: Optional[Sequence[Any]] = None) -> "BiLSTMEncoder":
        options = cls.options(config)
        if not train_sentences:
            raise ConfigError("the BiLSTM encoder builds its vocabulary from training sentences; "
                              "pass train_sentences=corpus.splits['train']")
        vocab = BiLSTMVocab.build([s.tokens for s in train_sentences], options.min_word_count, options.lowercase)
        return cls(vocab, options, config.dropout)

    def save(self, directory: Path) -> Dict[str, Any]:
        write_json(Path(directory) / "vocab.json", self.vocab.to_dict())
        return {}

    @classmethod
    def load(cls, config: Any, directory: Path, saved: Mapping[str, Any]) -> "BiLSTMEncoder":
        path = Path(directory) / "vocab.json"
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ModelDirError(f"cannot read the BiLSTM vocabulary {path}: {error}; save the model again") from None
        if not isinstance(data, dict):
            raise ModelDirError(f"{path} is not a BiLSTM vocabulary (expected a JSON object); save the model again")
        return cls(BiLSTMVocab.from_dict(data), cls.options(config), config.dropout)

    @property
    def hidden_size(self) -> int:
        return self.output_size

    def featurizer(self) -> Featurizer:
        return functools.partial(bilstm_inputs, self.vocab, max_word_chars=self.max_word_chars)

    def forward(self, batch: Mapping[str, Tensor]) -> Tensor:
        """Encode a right-padded batch (``word_ids`` (B, W), ``char_ids`` (B, W, C), ``word_mask`` (B, W)).

        Returns:
            Word states, shape (B, W, 2 * hidden), zeros at padding.
        """
        word_ids, char_ids, word_mask = batch["word_ids"], batch["char_ids"], batch["word_mask"]
        batch_size, width, chars = char_ids.shape
        if self.training and self.word_dropout > 0:
            drop = torch.rand(word_ids.shape, device=word_ids.device) < self.word_dropout  # shape: (B, W)
            word_ids = torch.where(drop & (word_ids > 0), torch.ones_like(word_ids), word_ids)  # 1 = unknown
        words = self.word_embeddings(word_ids)  # shape: (B, W, Dw)
        flat_chars = char_ids.reshape(batch_size * width, chars)  # shape: (B*W, C)
        char_vectors = self.char_embeddings(flat_chars)  # shape: (B*W, C, Dc)
        conv = self.char_cnn(char_vectors.transpose(1, 2))  # shape: (B*W, F, C')
        char_pad = flat_chars == 0  # shape: (B*W, C)
        if conv.shape[-1] > chars:  # an even kernel yields one extra position
            char_pad = nn.functional.pad(char_pad, (0, conv.shape[-1] - chars), value=True)  # shape: (B*W, C')
        conv = conv.masked_fill(char_pad.unsqueeze(1), float("-inf"))  # shape: (B*W, F, C')
        pooled = conv.max(dim=-1).values  # shape: (B*W, F)
        pooled = torch.where(torch.isinf(pooled), torch.zeros_like(pooled), pooled)  # all-pad rows
        features = torch.cat([words, pooled.reshape(batch_size, width, -1)], dim=-1)  # shape: (B, W, Dw+F)
        return run_bilstm(self.lstm, self.dropout(features), word_mask)  # shape: (B, W, 2H)
