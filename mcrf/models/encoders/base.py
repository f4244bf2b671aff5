"""The ``Encoder`` interface: everything a tagger, its saving and its training need from an encoder.

An encoder turns the words of a batch of sentences into one vector per word. Each kind lives in
its own module and owns, behind this interface:

- its architecture options (an ``Options`` dataclass; stored in ``TaggerConfig.encoder_options``);
- turning words into model inputs (``featurizer``: a picklable ``collate``-time function);
- its forward pass to word vectors (``forward``) and their size (``hidden_size``);
- its files inside a model directory (``save`` / ``load``);
- the training defaults that suit it (``recommended``), the settings it derives from itself
  (``complete``: the sub-word window of a Hugging Face encoder) and the layer of each of its
  parameters for layer-wise learning-rate decay (``layer_count``/``layer_index``).

``mcrf.models.encoders.encoder_class(name)`` picks the kind from ``TaggerConfig.encoder``;
``mcrf.models.encoders.register_encoder`` adds a kind.
"""

from __future__ import annotations

import abc
import dataclasses
from pathlib import Path
from typing import Any, Callable, ClassVar, Dict, Mapping, Optional, Sequence, Tuple

from torch import Tensor, nn

from mcrf.errors import ConfigError
from mcrf.fields import validate
from mcrf.models.config import TaggerConfig

__all__ = ["Encoder", "Featurizer", "NoOptions"]

#: Words of each sentence of a batch -> the encoder's input tensors, always with ``word_mask`` (B, W).
Featurizer = Callable[[Sequence[Sequence[str]]], Dict[str, Tensor]]


@dataclasses.dataclass
class NoOptions:
    """Options of an encoder without architecture options."""


class Encoder(nn.Module, metaclass=abc.ABCMeta):
    """Abstract base class of the encoders (see the module docstring). Subclasses set the class
    attributes and implement the abstract methods.

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
        """True when ``TaggerConfig.encoder == name`` means this built-in kind of encoder.

        An encoder plugged in with ``register_encoder`` is picked by its registered name instead.
        """
        return False

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
        known = [f.name for f in dataclasses.fields(cls.Options)]
        unknown = sorted(set(config.encoder_options) - set(known))
        if unknown:
            raise ConfigError(f"the {cls.kind} encoder ({config.encoder!r}) has no option {', '.join(unknown)}; "
                              f"{'its options are ' + ', '.join(known) if known else 'it has no options'}. Leave "
                              "it out or choose an encoder that has it")
        options = cls.Options(**config.encoder_options)
        validate(options)
        return options

    def complete(self, config: Any) -> Any:
        """``config`` with what this encoder decides filled in, checked against the encoder.

        The base version stores the full options (unset ones at their defaults); a sub-word encoder
        also fills its window from its position limit.

        Raises:
            ConfigError: a setting the encoder cannot honour.
        """
        options = dataclasses.asdict(self.options(config))
        return dataclasses.replace(config, encoder_options=options)

    # ------------------------------------------------------------------ construction and files
    @classmethod
    @abc.abstractmethod
    def create(cls, config: Any, train_sentences: Optional[Sequence[Any]] = None) -> "Encoder":
        """A fresh encoder for ``config`` (pretrained weights, or a vocabulary from ``train_sentences``).

        Raises:
            ConfigError: the encoder needs training sentences and got none.
        """

    def save(self, directory: Path) -> Dict[str, Any]:
        """Write this encoder's files (not its weights: they are in the tagger's safetensors).

        Returns:
            JSON-ready entries stored next to the tagger config and given back to ``load``.
        """
        return {}

    @classmethod
    @abc.abstractmethod
    def load(cls, config: Any, directory: Path, saved: Mapping[str, Any]) -> "Encoder":
        """Rebuild the encoder (random weights) from the files ``save`` wrote and its entries ``saved``.

        Raises:
            ModelDirError: a file is missing or unreadable.
        """

    @classmethod
    def upgrade_config(cls, data: Dict[str, Any], format_version: int) -> Tuple[Dict[str, Any], Dict[str, Any]]:
        """A saved ``config.json`` of an older ``format_version`` as (TaggerConfig fields, encoder entries).

        Formats 1 and 2 kept encoder settings as top-level keys: format 1 the BiLSTM sizes (in every
        model) and the encoder's entries (``encoder_config``), both the sub-word window. A top-level
        key that is an option of this encoder moves into ``encoder_options`` (unless unset); one it
        does not have never meant anything to it (the window of a BiLSTM) and is dropped.
        """
        data = dict(data)
        if format_version >= 2:
            state = data.pop("encoder_state", None)
        else:
            state = {"encoder_config": data.pop("encoder_config", None)}
        fields = {f.name for f in dataclasses.fields(TaggerConfig)}
        options = {f.name for f in dataclasses.fields(cls.Options)}
        moved = data.get("encoder_options", {})
        if not isinstance(moved, Mapping):
            return data, state  # TaggerConfig.from_dict says what is wrong
        moved = dict(moved)
        for key in sorted(set(data) - fields):
            value = data.pop(key)
            if key in options and value is not None:
                moved[key] = value
        data["encoder_options"] = moved
        return data, state

    @classmethod
    def upgrade_state_dict(cls, state: Dict[str, Tensor], format_version: int) -> Dict[str, Tensor]:
        """The tagger weights of a model saved in an older ``format_version``, renamed to today's names."""
        return state

    # ------------------------------------------------------------------ training
    def layer_count(self) -> int:
        """Number ``L`` of stacked layers that layer-wise learning-rate decay steps over (0: none).

        The base version has no layer stack: all its parameters train at the encoder's ``lr``.
        """
        return 0

    def layer_index(self, name: str) -> int:
        """Depth of parameter ``name`` (as in ``self.named_parameters()``) for layer-wise lr decay.

        Returns:
            0 for the embeddings under the stack, ``N + 1`` for layer ``N`` (0-based), ``L + 1``
            for everything above or beside it (a pooler, a final norm, an encoder without a stack).
        """
        return self.layer_count() + 1

    # ------------------------------------------------------------------ running
    @property
    @abc.abstractmethod
    def hidden_size(self) -> int:
        """Size ``H`` of the word vectors ``forward`` returns."""

    @abc.abstractmethod
    def featurizer(self) -> Featurizer:
        """A picklable function from words to this encoder's input tensors (run in ``collate_fn``)."""

    @abc.abstractmethod
    def forward(self, batch: Mapping[str, Tensor]) -> Tensor:
        """Word vectors of a collated batch, shape (B, W, H)."""
