"""A frozen Hugging Face encoder under a trained BiLSTM (flair-style feature stacking).

``--encoder frozen:NAME_OR_PATH``: the pretrained encoder only provides features (first sub-word
of each word, no gradient, always in eval mode); a BiLSTM trained from scratch reads them. On a
CPU this trains several times faster per step than fine-tuning the encoder and needs no
learning-rate schedule care for it, while keeping most of the pretrained knowledge.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Sequence

import torch
from torch import Tensor, nn

from mcrf.fields import depth, option, width
from mcrf.models.encoders.base import Encoder, Featurizer
from mcrf.models.encoders.bilstm import run_bilstm
from mcrf.models.encoders.hf import HFEncoder, HFOptions

__all__ = ["FrozenStackEncoder", "FrozenStackOptions", "PREFIX"]

PREFIX = "frozen:"


@dataclass
class FrozenStackOptions(HFOptions):
    """The frozen encoder's options (its sub-word window) and the architecture of the BiLSTM over it
    (``TaggerConfig.encoder_options``)."""

    lstm_hidden: int = option(256, check=width(), cli=False, help="LSTM hidden size per direction")
    lstm_layers: int = option(1, check=depth(), cli=False, help="LSTM layers")


def _base_config(config: Any) -> Any:
    """``config`` as the Hugging Face encoder underneath sees it (its own name and options)."""
    own = {field.name for field in dataclasses.fields(HFOptions)}
    return dataclasses.replace(config, encoder=config.encoder[len(PREFIX):],
                               encoder_options={k: v for k, v in config.encoder_options.items() if k in own})


class FrozenStackEncoder(Encoder):
    """Frozen ``HFEncoder`` features -> dropout -> BiLSTM.

    Args:
        base: the Hugging Face encoder (its parameters are frozen here).
        options: the BiLSTM's architecture.
        dropout: dropout on the features (``TaggerConfig.dropout``).
    """

    kind = "frozen+bilstm"
    Options = FrozenStackOptions
    files = HFEncoder.files

    def __init__(self, base: HFEncoder, options: FrozenStackOptions, dropout: float) -> None:
        super().__init__()
        self.base = base.requires_grad_(False).eval()
        self.dropout = nn.Dropout(dropout)
        self.lstm = nn.LSTM(base.hidden_size, options.lstm_hidden, num_layers=options.lstm_layers,
                            batch_first=True, bidirectional=True,
                            dropout=dropout if options.lstm_layers > 1 else 0.0)
        self.output_size = 2 * options.lstm_hidden

    @classmethod
    def accepts(cls, name: str) -> bool:
        return name.startswith(PREFIX) and len(name) > len(PREFIX)

    @classmethod
    def describe(cls, name: str) -> str:
        return f"`{name[len(PREFIX):]}` (frozen) with a BiLSTM on top (trained)"

    @classmethod
    def recommended(cls) -> Dict[str, Any]:
        """Only the BiLSTM and the head train: the BiLSTM recipe, fewer epochs (pretrained features learn fast)."""
        return {"lr": 2e-3, "head_lr": 2e-3, "layer_decay": 1.0, "weight_decay": 0.0, "warmup_ratio": 0.05,
                "max_grad_norm": 5.0, "epochs": 5}

    def complete(self, config: Any) -> Any:
        window = self.base.complete(_base_config(config)).encoder_options
        options = super().complete(config).encoder_options
        return dataclasses.replace(config, encoder_options={**options, **window})

    @classmethod
    def create(cls, config: Any, train_sentences: Optional[Sequence[Any]] = None) -> "FrozenStackEncoder":
        return cls(HFEncoder.create(_base_config(config)), cls.options(config), config.dropout)

    def save(self, directory: Path) -> Dict[str, Any]:
        return self.base.save(directory)

    @classmethod
    def load(cls, config: Any, directory: Path, saved: Mapping[str, Any]) -> "FrozenStackEncoder":
        return cls(HFEncoder.load(_base_config(config), directory, saved), cls.options(config), config.dropout)

    def train(self, mode: bool = True) -> "FrozenStackEncoder":
        """Train the BiLSTM; the frozen encoder stays in eval mode (no dropout in its features)."""
        super().train(mode)
        self.base.eval()
        return self

    @property
    def hidden_size(self) -> int:
        return self.output_size

    def featurizer(self) -> Featurizer:
        return self.base.featurizer()

    def forward(self, batch: Mapping[str, Tensor]) -> Tensor:
        """BiLSTM states over the frozen first-sub-word vectors, shape (B, W, 2 * lstm_hidden)."""
        with torch.no_grad():
            features = self.base(batch)  # shape: (B, W, H)
        return run_bilstm(self.lstm, self.dropout(features), batch["word_mask"])  # shape: (B, W, 2L)
