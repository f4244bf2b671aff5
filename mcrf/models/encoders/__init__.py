"""The encoder registry: ``TaggerConfig.encoder`` -> the ``Encoder`` class that handles it.

Adding an encoder kind is one module implementing ``mcrf.models.encoders.base.Encoder`` plus
one line in ``ENCODERS``. The classes are asked in order (``Encoder.accepts``); the Hugging Face
encoder comes last and takes any other name as a model id or folder.
"""

from __future__ import annotations

from typing import Tuple, Type

from mcrf.models.encoders.base import Encoder, Featurizer
from mcrf.models.encoders.bilstm import BiLSTMEncoder
from mcrf.models.encoders.frozen import FrozenStackEncoder
from mcrf.models.encoders.hf import HFEncoder

__all__ = ["ENCODERS", "Encoder", "Featurizer", "encoder_class"]

ENCODERS: Tuple[Type[Encoder], ...] = (
    BiLSTMEncoder,       # "bilstm"
    FrozenStackEncoder,  # "frozen:NAME_OR_PATH"
    HFEncoder,           # anything else: a Hugging Face model id or folder
)


def encoder_class(name: str) -> Type[Encoder]:
    """The encoder class for ``TaggerConfig.encoder == name`` (the first in ``ENCODERS`` accepting it)."""
    return next(cls for cls in ENCODERS if cls.accepts(name))
