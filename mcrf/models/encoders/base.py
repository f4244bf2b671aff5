"""The ``Encoder`` interface: everything a tagger, its saving and its training need from an encoder.

An encoder turns the words of a batch of sentences into one vector per word. Each kind lives in
its own module and owns, behind this interface:

- its architecture options (an ``Options`` dataclass; stored in ``TaggerConfig.encoder_options``);
- turning words into model inputs (``featurizer``: a picklable ``collate``-time function);
- its forward pass to word vectors (``forward``) and their size (``hidden_size``);
- its files inside a model directory (``save`` / ``load``);
- the training defaults that suit it (``recommended``) and the settings it derives from itself
  (``complete``: the sub-word window of a Hugging Face encoder).

``mcrf.models.encoders.encoder_class(name)`` picks the kind from ``TaggerConfig.encoder``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable, ClassVar, Dict, Mapping, Optional, Sequence, Tuple

from torch import Tensor, nn

from mcrf.errors import ConfigError
from mcrf.fields import validate

__all__ = ["Encoder", "Featurizer", "NoOptions", "FORMAT1_ARCHITECTURE"]

#: Format 1 (mcrf before this interface) saved these BiLSTM sizes in every model's config.json.
FORMAT1_ARCHITECTURE = ("word_dim", "char_dim", "char_filters", "char_kernel", "lstm_hidden", "lstm_layers",
                        "min_word_count", "lowercase", "max_word_chars", "word_dropout")

#: Words of each sentence of a batch -> the encoder's input tensors, always with ``word_mask`` (B, W).
Featurizer = Callable[[Sequence[Sequence[str]]], Dict[str, Tensor]]


@dataclasses.dataclass
class NoOptions:
    """Options of an encoder without architecture options."""


class Encoder(nn.Module):
    """Base class of the encoders (see the module docstring). Subclasses set the class attributes.

    Attributes:
        kind: short name shown in the model card and settings header.
        Options: dataclass of the encoder's architecture options (validated with ``mcrf.fields``).
        files: the files and folders it writes into a model directory (checked on load).
    """

    kind: ClassVar[str] = "encoder"
    Options: ClassVar[type] = NoOptions
    files: ClassVar[Tuple[str, ...]] = ()

    # ------------------------------------------------------------------ naming
    @classmethod
    def accepts(cls, name: str) -> bool:
        """True when ``TaggerConfig.encoder == name`` means this kind of encoder."""
        raise NotImplementedError

    @classmethod
    def describe(cls, name: str) -> str:
        """One line for the model card (``name`` is ``TaggerConfig.encoder``)."""
        return f"`{name}`"

    # ------------------------------------------------------------------ defaults
    @classmethod
    def recommended(cls) -> Dict[str, Any]:
        """Training settings that suit this encoder (``OptimConfig`` fields and ``epochs``).

        ``mcrf.training.config`` layers them over its field defaults and under the dataset preset
        and the user's settings; the settings header shows them with the source ``encoder``.
        """
        return {}

    @classmethod
    def options(cls, config: Any) -> Any:
        """The validated ``Options`` of ``config.encoder_options`` (unset ones at their defaults).

        Raises:
            ConfigError: an unknown option or a bad value.
        """
        known = {f.name for f in dataclasses.fields(cls.Options)}
        unknown = sorted(set(config.encoder_options) - known)
        if unknown:
            raise ConfigError(f"unknown option(s) {unknown} of the {cls.kind} encoder; expected some of "
                              f"{sorted(known)}")
        options = cls.Options(**config.encoder_options)
        validate(options)
        return options

    def complete(self, config: Any) -> Any:
        """``config`` with what this encoder decides filled in, checked against the encoder.

        The base version stores the full options; a sub-word encoder also fills ``max_length`` and
        ``stride`` from its position limit.

        Raises:
            ConfigError: a setting the encoder cannot honour.
        """
        options = dataclasses.asdict(self.options(config))
        return dataclasses.replace(config, encoder_options=options)

    # ------------------------------------------------------------------ construction and files
    @classmethod
    def create(cls, config: Any, train_sentences: Optional[Sequence[Any]] = None) -> "Encoder":
        """A fresh encoder for ``config`` (pretrained weights, or a vocabulary from ``train_sentences``).

        Raises:
            ConfigError: the encoder needs training sentences and got none.
        """
        raise NotImplementedError

    def save(self, directory: Path) -> Dict[str, Any]:
        """Write this encoder's files (not its weights: they are in the tagger's safetensors).

        Returns:
            JSON-ready entries stored next to the tagger config and given back to ``load``.
        """
        return {}

    @classmethod
    def load(cls, config: Any, directory: Path, saved: Mapping[str, Any]) -> "Encoder":
        """Rebuild the encoder (random weights) from the files ``save`` wrote and its entries ``saved``.

        Raises:
            ModelDirError: a file is missing or unreadable.
        """
        raise NotImplementedError

    @classmethod
    def upgrade_config(cls, data: Dict[str, Any], format_version: int) -> Tuple[Dict[str, Any], Dict[str, Any]]:
        """A saved ``config.json`` of an older ``format_version`` as (TaggerConfig fields, encoder entries).

        Format 1 kept the encoder's entries (``encoder_config``) at the top level and the BiLSTM
        sizes in every model's config; the base version drops those sizes.
        """
        data = dict(data)
        state = {"encoder_config": data.pop("encoder_config", None)}
        architecture = {key: data.pop(key) for key in FORMAT1_ARCHITECTURE if key in data}
        return cls.upgrade_architecture(data, architecture), state

    @classmethod
    def upgrade_architecture(cls, data: Dict[str, Any], architecture: Dict[str, Any]) -> Dict[str, Any]:
        """Format-1 TaggerConfig fields ``data`` given the sizes it stored (unused but by the BiLSTM)."""
        return data

    @classmethod
    def upgrade_state_dict(cls, state: Dict[str, Tensor], format_version: int) -> Dict[str, Tensor]:
        """The tagger weights of a model saved in an older ``format_version``, renamed to today's names."""
        return state

    # ------------------------------------------------------------------ running
    @property
    def hidden_size(self) -> int:
        """Size ``H`` of the word vectors ``forward`` returns."""
        raise NotImplementedError

    def featurizer(self) -> Featurizer:
        """A picklable function from words to this encoder's input tensors (run in ``collate_fn``)."""
        raise NotImplementedError

    def forward(self, batch: Mapping[str, Tensor]) -> Tensor:  # pragma: no cover - abstract
        """Word vectors of a collated batch, shape (B, W, H)."""
        raise NotImplementedError
