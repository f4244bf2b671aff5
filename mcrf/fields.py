"""Config fields that carry their own help text and their one validator.

Every settings dataclass of mcrf (``LoadConfig``, ``TaggerConfig``, ``OptimConfig``,
``TrainConfig``, ``EvaluateConfig``, ``PredictConfig``) declares its fields with :func:`option`::

    lr: float = option(5e-5, help="peak learning rate", check=number(0, 1, low_open=True))

The help text is what ``mcrf COMMAND --help`` shows (the CLI builds its flags from the fields, like
``transformers.HfArgumentParser`` does from ``metadata={"help": ...}``), and ``check`` is the
field's only validator: :func:`validate` runs them all from ``__post_init__``. A config made of
other configs' fields takes them with :func:`inherit`, which copies the field (default, help,
validator) instead of restating it.

Standard library only (plus ``mcrf.errors``): every layer may use it.
"""

from __future__ import annotations

import codecs
import dataclasses
import math
from typing import Any, Callable, Iterable, Optional, Sequence

from mcrf.errors import ConfigError

__all__ = ["option", "inherit", "validate", "choice", "integer", "number", "text", "flag_bool",
           "codec", "scheme_name", "seed", "SEED_MAX", "width", "WIDTH_MAX", "depth", "DEPTH_MAX", "Check"]

#: A validator: ``check(name, value) -> value`` (possibly normalised), raising ``ConfigError``.
Check = Callable[[str, Any], Any]
_MISSING = dataclasses.MISSING


def option(default: Any = _MISSING, *, help: str, check: Optional[Check] = None,
           default_factory: Any = _MISSING, cli: bool = True, parse: Optional[Callable[[str], Any]] = None,
           metavar: Optional[str] = None) -> Any:
    """A dataclass field with its help text and validator in ``metadata``.

    Args:
        default: the default value.
        help: one or two sentences for ``--help`` (what the value means, the unit, what ``None`` means).
        check: the field's validator (see :data:`Check`); ``None`` accepts anything.
        default_factory: for mutable defaults (lists, dicts), instead of ``default``.
        cli: ``False`` keeps the field off the command line.
        parse: command-line text -> value, for types the annotation does not say how to read
            (``"1,2,3"`` -> a tuple); only the conversion, ``check`` still validates.
        metavar: the placeholder shown by ``--help``.
    """
    metadata = {"help": help, "check": check, "cli": cli, "parse": parse, "metavar": metavar}
    if default_factory is not _MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def inherit(cls: type, name: str, **changes: Any) -> Any:
    """A copy of field ``name`` of dataclass ``cls`` (default, help and validator), for a flattened config.

    Args:
        cls: the dataclass owning the field.
        name: the field name.
        changes: ``help=`` / ``check=`` / ``default=`` replacements (rarely needed).
    """
    source = {f.name: f for f in dataclasses.fields(cls)}[name]
    metadata = dict(source.metadata)
    metadata.update({k: v for k, v in changes.items() if k in ("help", "check", "cli", "parse", "metavar")})
    if "default" in changes:
        return dataclasses.field(default=changes["default"], metadata=metadata)
    if source.default_factory is not _MISSING:  # type: ignore[misc]
        return dataclasses.field(default_factory=source.default_factory, metadata=metadata)  # type: ignore[misc]
    return dataclasses.field(default=source.default, metadata=metadata)


def validate(obj: Any, names: Optional[Iterable[str]] = None) -> None:
    """Run the validator of each field of dataclass instance ``obj`` and store the normalised value.

    Raises:
        ConfigError: from the first field whose value is refused.
    """
    wanted = None if names is None else set(names)
    for field in dataclasses.fields(obj):
        check = field.metadata.get("check")
        if check is None or (wanted is not None and field.name not in wanted):
            continue
        setattr(obj, field.name, check(field.name, getattr(obj, field.name)))


# ---------------------------------------------------------------------------- validators
def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def choice(options: Sequence[Any], *, optional: bool = False) -> Check:
    """One of ``options`` (or ``None`` when ``optional``)."""

    def check(name: str, value: Any) -> Any:
        if (optional and value is None) or value in options:
            return value
        raise ConfigError(f"unknown {name} {value!r}; expected one of {', '.join(map(str, options))}"
                          f"{' or None' if optional else ''}")

    check.choices = tuple(options)  # type: ignore[attr-defined]  # read by the CLI
    return check


def integer(low: Optional[int] = None, high: Optional[int] = None, *, optional: bool = False,
            none_means: str = "") -> Check:
    """An integer in ``[low, high]`` (either bound may be open-ended), or ``None`` when ``optional``."""
    bounds = " ".join(part for part in (f">= {low}" if low is not None else "",
                                        f"<= {high}" if high is not None else "") if part)
    kind = "a positive integer" if (low, high) == (1, None) else f"an integer {bounds}".rstrip()

    def check(name: str, value: Any) -> Any:
        if optional and value is None:
            return value
        if _is_int(value) and (low is None or value >= low) and (high is None or value <= high):
            return value
        alternative = f" or None{f' ({none_means})' if none_means else ''}" if optional else ""
        raise ConfigError(f"expected {name} to be {kind}{alternative}, got {value!r}")

    return check


#: the widest layer (embedding, hidden or filter size) an architecture option accepts; wider ones are typos
#: (``lstm_hidden = 1e9`` asked for 2.4 TB) and their weight sizes overflow torch's size arithmetic
WIDTH_MAX = 1 << 16
#: the most stacked layers an architecture option accepts
DEPTH_MAX = 64


def width() -> Check:
    """A layer width: an integer from 1 to ``WIDTH_MAX``."""
    return integer(1, WIDTH_MAX)


def depth() -> Check:
    """A number of stacked layers: an integer from 1 to ``DEPTH_MAX``."""
    return integer(1, DEPTH_MAX)


#: the largest seed every random generator mcrf seeds takes (numpy's, through accelerate's ``set_seed``)
SEED_MAX = 2**32 - 1


def seed() -> Check:
    """A random seed: an integer from 0 to ``SEED_MAX`` (numpy refuses others; Python and torch take them)."""
    return integer(0, SEED_MAX)


def number(low: Optional[float] = None, high: Optional[float] = None, *, low_open: bool = False,
           high_open: bool = False, optional: bool = False, none_means: str = "") -> Check:
    """A finite real number in the interval (``low_open``/``high_open`` exclude the bound).

    ``inf`` and ``nan`` are always refused: no setting of mcrf means anything at infinity.
    """
    left = "" if low is None else f"{low} {'<' if low_open else '<='} "
    right = "" if high is None else f" {'<' if high_open else '<='} {high}"

    def check(name: str, value: Any) -> Any:
        if optional and value is None:
            return value
        ok = _is_number(value) and math.isfinite(value)
        ok = ok and (low is None or (value > low if low_open else value >= low))
        ok = ok and (high is None or (value < high if high_open else value <= high))
        if ok:
            return value
        alternative = f", or None{f' ({none_means})' if none_means else ''}" if optional else ""
        raise ConfigError(f"expected a finite number {left}{name}{right}{alternative}, got {value!r}")

    return check


def text(*, optional: bool = False, what: str = "a non-empty string") -> Check:
    """A non-empty string (or ``None`` when ``optional``)."""

    def check(name: str, value: Any) -> Any:
        if (optional and value is None) or (isinstance(value, str) and value != ""):
            return value
        raise ConfigError(f"expected {name} to be {what}{' or None' if optional else ''}, got {value!r}")

    return check


def flag_bool(name: str, value: Any) -> Any:
    """``True`` or ``False``."""
    if isinstance(value, bool):
        return value
    raise ConfigError(f"expected {name} to be true or false, got {value!r}")


def codec(*, optional: bool = False) -> Check:
    """A text encoding Python can decode text with (``codecs``), UTF-16/UTF-32 included.

    Byte-to-byte codecs (``hex``, ``base64``, ``rot13``...) are refused.
    """

    def check(name: str, value: Any) -> Any:
        if optional and value is None:
            return value
        try:
            info = codecs.lookup(value)
        except (LookupError, TypeError):
            info = None
        if info is None or not getattr(info, "_is_text_encoding", True):
            unknown = f"unknown {name} {value!r}; " if info is None else ""
            raise ConfigError(
                f"{unknown}expected a text encoding, got {value!r}; pass one Python can decode text with, e.g. "
                f"utf-8, utf-8-sig, latin-1, cp1252, utf-16, utf-32 (python -m encodings lists them)")
        return value

    return check


def scheme_name(*, optional: bool = False) -> Check:
    """A tag scheme name or alias, returned in its canonical spelling (``bio`` -> ``BIO``)."""

    def check(name: str, value: Any) -> Any:
        from mcrf.crf.schemes import SCHEMES, canonical_scheme

        if optional and value is None:
            return value
        if not isinstance(value, str):
            raise ConfigError(f"expected {name} to be a tag scheme ({', '.join(SCHEMES)})"
                              f"{' or None' if optional else ''}, got {value!r}")
        try:
            return canonical_scheme(value)
        except ValueError as error:  # "unknown tag scheme ...; expected one of ..."
            raise ConfigError(f"{name}: {error}") from None

    return check
