"""The encoder registry: ``TaggerConfig.encoder`` -> the ``Encoder`` class that handles it.

The built-in kinds are asked in order (``Encoder.accepts``); the Hugging Face encoder comes last
and takes any other name as a model id or folder. An encoder defined outside mcrf is plugged in
with :func:`register_encoder` (no edit of mcrf)::

    from mcrf.models.encoders import Encoder, register_encoder

    class CharBagEncoder(Encoder):
        ...

    register_encoder("charbag", CharBagEncoder)   # then TaggerConfig(encoder="charbag") / --encoder charbag

Registered names are looked up before the built-in kinds. A saved model records its encoder's
``kind``, so loading one whose encoder is not registered in this process says how to register it.
"""

from __future__ import annotations

import inspect
from typing import Dict, Tuple, Type

from mcrf.errors import ConfigError
from mcrf.models.encoders.base import Encoder, Featurizer
from mcrf.models.encoders.bilstm import BiLSTMEncoder
from mcrf.models.encoders.frozen import FrozenStackEncoder
from mcrf.models.encoders.hf import HFEncoder

__all__ = ["ENCODERS", "Encoder", "Featurizer", "encoder_class", "register_encoder", "unregister_encoder",
           "encoder_classes"]

#: The built-in kinds, asked in this order.
ENCODERS: Tuple[Type[Encoder], ...] = (
    BiLSTMEncoder,       # "bilstm"
    FrozenStackEncoder,  # "frozen:NAME_OR_PATH"
    HFEncoder,           # anything else: a Hugging Face model id or folder
)

#: Encoders registered at run time (``register_encoder``), by name. The one registry of the process:
#: a plug-in registers once, when its module is imported.
_REGISTERED: Dict[str, Type[Encoder]] = {}


def register_encoder(name: str, cls: Type[Encoder]) -> None:
    """Make ``TaggerConfig.encoder == name`` (``mcrf train --encoder NAME``) build a ``cls``.

    Args:
        name: the encoder name users pass; not one a built-in kind already takes (``bilstm``,
            ``frozen:...``) nor one registered before.
        cls: a concrete subclass of ``mcrf.models.encoders.Encoder``.

    Raises:
        ConfigError: ``name`` is empty or taken.
        TypeError: ``cls`` is not a concrete ``Encoder`` subclass.
    """
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"expected an encoder name (a non-empty string), got {name!r}")
    if not (isinstance(cls, type) and issubclass(cls, Encoder)) or inspect.isabstract(cls):
        raise TypeError(f"expected a concrete subclass of mcrf.models.encoders.Encoder, got {cls!r}"
                        + (f" (abstract: {sorted(cls.__abstractmethods__)})" if inspect.isabstract(cls) else ""))
    taken = _REGISTERED.get(name) or next((kind for kind in ENCODERS[:-1] if kind.accepts(name)), None)
    if taken is not None:
        raise ConfigError(f"the encoder name {name!r} is taken (by {taken.__module__}.{taken.__qualname__}); "
                          "register yours under another name")
    _REGISTERED[name] = cls


def unregister_encoder(name: str) -> None:
    """Remove an encoder registered with ``register_encoder`` (a plug-in being unloaded, a test's cleanup).

    Raises:
        ConfigError: no encoder is registered under ``name``.
    """
    if _REGISTERED.pop(name, None) is None:
        raise ConfigError(f"no encoder is registered as {name!r}; registered: {sorted(_REGISTERED) or 'none'}")


def encoder_classes() -> Tuple[Type[Encoder], ...]:
    """Every encoder class known now: the registered ones, then the built-in kinds."""
    return tuple(_REGISTERED.values()) + ENCODERS


def encoder_class(name: str) -> Type[Encoder]:
    """The encoder class for ``TaggerConfig.encoder == name``: the one registered as ``name``, else the
    first built-in kind accepting it."""
    registered = _REGISTERED.get(name)
    if registered is not None:
        return registered
    return next(cls for cls in ENCODERS if cls.accepts(name))
