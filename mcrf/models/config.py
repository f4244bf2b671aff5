"""``TaggerConfig``: the one place that holds a tagger's architecture defaults."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping

from mcrf import __version__

__all__ = ["TaggerConfig", "DECODERS", "POSTPROCESS"]

DECODERS = ("mcrf", "mcrf-decoding", "crf", "softmax")
POSTPROCESS = ("retain", "discard")


@dataclass
class TaggerConfig:
    """Architecture of a tagger (everything needed to rebuild it before loading weights).

    Attributes:
        encoder: ``"bilstm"`` or a Hugging Face model name / local directory (any ``AutoModel``).
        labels: tag inventory of ``scheme``; row ``i`` of the emission matrix scores ``labels[i]``.
        scheme: tag scheme of ``labels`` (``BIO``, ``BIOES``, ``IOB1``, ...; aliases accepted).
        decoder: ``"mcrf"`` (masked CRF in training and decoding), ``"mcrf-decoding"`` (plain CRF
            training, masked Viterbi), ``"crf"`` (plain CRF) or ``"softmax"`` (per-token argmax).
        postprocess: how ``crf``/``softmax`` outputs that violate the scheme are fixed: ``"retain"``
            (conlleval: an orphan ``I-X`` starts an entity) or ``"discard"`` (orphan segments become O).
            Ignored by the masked decoders, whose output is always legal.
        dropout: dropout before the tag-score layer.
        max_length: encoder window in sub-words including special tokens (HF encoders).
        stride: sub-words of overlap between windows of a sentence longer than ``max_length``.
        word_dim: BiLSTM word-embedding size.
        char_dim: BiLSTM character-embedding size.
        char_filters: number of character-CNN filters (the char vector size).
        char_kernel: character-CNN kernel width.
        lstm_hidden: BiLSTM hidden size per direction.
        lstm_layers: BiLSTM layers.
        min_word_count: words seen fewer times in training become the unknown word.
        lowercase: lower-case words for the word vocabulary (characters keep their case).
        max_word_chars: characters of a word the char CNN reads (longer words are cut).
        word_dropout: BiLSTM training only: probability of replacing a word by the unknown word,
            so the unknown-word embedding is trained for words unseen in training.
        mcrf_version: version of mcrf that created the tagger.
    """

    encoder: str = "bilstm"
    labels: List[str] = field(default_factory=list)
    scheme: str = "BIO"
    decoder: str = "mcrf"
    postprocess: str = "retain"
    dropout: float = 0.1
    max_length: int = 512
    stride: int = 128
    word_dim: int = 100
    char_dim: int = 30
    char_filters: int = 50
    char_kernel: int = 3
    lstm_hidden: int = 200
    lstm_layers: int = 1
    min_word_count: int = 1
    lowercase: bool = False
    max_word_chars: int = 40
    word_dropout: float = 0.05
    mcrf_version: str = __version__

    def __post_init__(self) -> None:
        self.validate()

    @property
    def is_bilstm(self) -> bool:
        """True when the encoder is the built-in BiLSTM."""
        return self.encoder == "bilstm"

    def validate(self) -> None:
        """Check every field; raise ``ValueError``/``TypeError`` naming the field and the fix."""
        from mcrf.schemes import allowed_transitions, canonical_scheme

        if not isinstance(self.encoder, str) or not self.encoder:
            raise ValueError(f"expected encoder to be 'bilstm' or a Hugging Face name/path, got {self.encoder!r}")
        if isinstance(self.labels, (str, bytes)) or not all(isinstance(x, str) for x in self.labels):
            raise TypeError(f"expected labels to be a list of tag strings, got {self.labels!r}")
        self.labels = list(self.labels)
        if not self.labels:
            raise ValueError("expected a non-empty label list (e.g. corpus.labels), got []")
        duplicates = sorted({x for x in self.labels if self.labels.count(x) > 1})
        if duplicates:
            raise ValueError(f"expected unique labels, got duplicates {duplicates}")
        self.scheme = canonical_scheme(self.scheme)
        allowed_transitions(self.labels, self.scheme)  # every label must be a tag of the scheme
        if self.decoder not in DECODERS:
            raise ValueError(f"expected decoder to be one of {list(DECODERS)}, got {self.decoder!r}")
        if self.postprocess not in POSTPROCESS:
            raise ValueError(f"expected postprocess to be one of {list(POSTPROCESS)}, got {self.postprocess!r}")
        for name in ("dropout", "word_dropout"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
                raise ValueError(f"expected 0 <= {name} < 1, got {value!r}")
        positive = ("max_length", "word_dim", "char_dim", "char_filters", "char_kernel", "lstm_hidden",
                    "lstm_layers", "min_word_count", "max_word_chars")
        for name in positive:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"expected {name} to be a positive integer, got {value!r}")
        if isinstance(self.stride, bool) or not isinstance(self.stride, int) or not 0 <= self.stride < self.max_length:
            raise ValueError(
                f"expected stride to be an integer in [0, max_length={self.max_length}), got {self.stride!r}"
            )
        if not isinstance(self.lowercase, bool):
            raise TypeError(f"expected lowercase to be true or false, got {self.lowercase!r}")

    def to_dict(self) -> Dict[str, Any]:
        """Plain JSON-ready dict of every field."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TaggerConfig":
        """Build from ``to_dict`` output; unknown keys are an error (they mean a typo or a newer format).

        Raises:
            TypeError: when ``data`` is not a mapping.
            ValueError: for unknown keys or invalid values.
        """
        if not isinstance(data, Mapping):
            raise TypeError(f"expected a dict of TaggerConfig fields, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(
                f"unknown TaggerConfig keys {unknown}; expected a subset of {sorted(known)} "
                "(was the model saved by a newer mcrf? upgrade mcrf)"
            )
        return cls(**dict(data))
