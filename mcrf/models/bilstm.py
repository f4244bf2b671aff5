"""BiLSTM encoder: word embeddings + character CNN + bidirectional LSTM (no pretrained weights).

The word and character vocabularies are built from the training sentences
(``BiLSTMVocab.build``) and saved as JSON next to the weights. Index 0 is padding
and index 1 the unknown word/character in both vocabularies.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Sequence

import torch
from torch import Tensor, nn

__all__ = ["BiLSTMVocab", "BiLSTMEncoder", "bilstm_inputs"]

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
                raise ValueError(f"expected the {name} vocabulary to start with {[PAD, UNK]}, got {list(items[:2])}")
            if len(set(items)) != len(items):
                raise ValueError(f"expected unique entries in the {name} vocabulary")
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
            raise ValueError(
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
            raise ValueError(f"BiLSTM vocabulary file lacks keys {sorted(missing)}; expected words, chars, lowercase")
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


class BiLSTMEncoder(nn.Module):
    """Word embedding ++ char-CNN max-pool -> BiLSTM.

    Args:
        vocab: word/char vocabularies (kept on the module as ``vocab``).
        word_dim: word embedding size.
        char_dim: character embedding size.
        char_filters: CNN filters (size of the character vector of a word).
        char_kernel: CNN kernel width.
        hidden: LSTM hidden size per direction (output is ``2 * hidden``).
        layers: LSTM layers.
        dropout: dropout on the LSTM input (and between layers).
        word_dropout: in training, probability of replacing a word index by the unknown word.
    """

    def __init__(
        self,
        vocab: BiLSTMVocab,
        word_dim: int,
        char_dim: int,
        char_filters: int,
        char_kernel: int,
        hidden: int,
        layers: int,
        dropout: float,
        word_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.vocab = vocab
        self.word_dropout = word_dropout
        self.word_embeddings = nn.Embedding(len(vocab.words), word_dim, padding_idx=0)
        self.char_embeddings = nn.Embedding(len(vocab.chars), char_dim, padding_idx=0)
        self.char_cnn = nn.Conv1d(char_dim, char_filters, char_kernel, padding=char_kernel // 2)
        self.dropout = nn.Dropout(dropout)
        self.lstm = nn.LSTM(
            word_dim + char_filters,
            hidden,
            num_layers=layers,
            batch_first=True,
            bidirectional=True,
            dropout=dropout if layers > 1 else 0.0,
        )
        self.output_size = 2 * hidden

    def forward(self, word_ids: Tensor, char_ids: Tensor, word_mask: Tensor) -> Tensor:
        """Encode a right-padded batch.

        Args:
            word_ids: (B, W) word indices.
            char_ids: (B, W, C) character indices.
            word_mask: (B, W) bool, True at real words (a prefix of each row).

        Returns:
            Word states, shape (B, W, 2 * hidden), zeros at padding.
        """
        batch, width, chars = char_ids.shape
        if self.training and self.word_dropout > 0:
            drop = torch.rand(word_ids.shape, device=word_ids.device) < self.word_dropout  # shape: (B, W)
            word_ids = torch.where(drop & (word_ids > 0), torch.ones_like(word_ids), word_ids)  # 1 = unknown
        words = self.word_embeddings(word_ids)  # shape: (B, W, Dw)
        char_vectors = self.char_embeddings(char_ids.reshape(batch * width, chars))  # shape: (B*W, C, Dc)
        conv = self.char_cnn(char_vectors.transpose(1, 2))  # shape: (B*W, F, C')
        char_pad = char_ids.reshape(batch * width, chars) == 0  # shape: (B*W, C)
        if conv.shape[-1] > chars:  # an even kernel yields one extra position
            char_pad = nn.functional.pad(char_pad, (0, conv.shape[-1] - chars), value=True)  # shape: (B*W, C')
        conv = conv.masked_fill(char_pad.unsqueeze(1), float("-inf"))  # shape: (B*W, F, C')
        pooled = conv.max(dim=-1).values  # shape: (B*W, F)
        pooled = torch.where(torch.isinf(pooled), torch.zeros_like(pooled), pooled)  # all-pad rows
        features = torch.cat([words, pooled.reshape(batch, width, -1)], dim=-1)  # shape: (B, W, Dw+F)
        features = self.dropout(features)
        lengths = word_mask.sum(dim=1).clamp(min=1).cpu()  # shape: (B,)
        packed = nn.utils.rnn.pack_padded_sequence(features, lengths, batch_first=True, enforce_sorted=False)
        output, _ = self.lstm(packed)
        states, _ = nn.utils.rnn.pad_packed_sequence(output, batch_first=True, total_length=width)
        return states  # shape: (B, W, 2H)
