"""Helpers of the ``mcrf`` command line: flags built from config dataclasses, model loading, logging.

Each command exposes fields of a config dataclass (the only holder of defaults) as flags: the
help text is the field's ``metadata["help"]`` (``mcrf.fields.option``), the type its annotation,
and every flag defaults to ``argparse.SUPPRESS`` so only the flags the user gave become values
(``given``), which ``build`` turns into the config (whose validators check them).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
import typing
from typing import Any, Callable, Dict, List, Optional, Sequence

from mcrf.errors import ConfigError, ModelDirError, UserError

__all__ = ["UsageError", "positive_int", "thread_count", "MAX_THREADS", "build", "flag", "config_fields", "add_fields",
           "given", "add_encoder_options", "encoder_options",
           "resolve_device", "load_tagger", "configure_logging"]


class UsageError(ConfigError):
    """A flag value the configs reject (exit code 2, like argparse's own errors)."""


def positive_int(text: str) -> int:
    """Argparse type: an integer >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


#: the most ``--threads`` accepted: more threads than this never help, and torch segfaults creating 100,000
MAX_THREADS = 1024


def thread_count(text: str) -> int:
    """Argparse type of ``--threads``: an integer from 1 to ``MAX_THREADS``."""
    value = positive_int(text)
    if value > MAX_THREADS:
        raise argparse.ArgumentTypeError(f"expected at most {MAX_THREADS} threads, got {text}; pass the number "
                                         "of CPU cores or fewer")
    return value


def build(cls: Callable[..., Any], **values: Any) -> Any:
    """Construct a config; its ValueError/TypeError become usage errors (exit code 2).

    Each flag's value is first checked by its field's validator under the flag's name, so a refused
    value names what the user typed (``expected --batch-size to be a positive integer, got 0``), not the
    field (``batch_size``); checks across fields then run in the config itself.
    """
    owner = getattr(cls, "__self__", cls)  # TrainConfig.for_dataset -> TrainConfig
    flags = {f.name: f.metadata.get("check") for f in dataclasses.fields(owner) if f.metadata.get("cli", False)}
    try:
        for name, value in values.items():
            if flags.get(name) is not None:
                flags[name](flag(name), value)
        return cls(**values)
    except (ValueError, TypeError) as error:
        raise UsageError(str(error)) from error


def flag(field: str) -> str:
    """The command-line flag of a config field (``output_dir`` -> ``--output``, ``max_steps`` -> ``--max-steps``)."""
    return {"output_dir": "--output", "output_format": "--format"}.get(field, "--" + field.replace("_", "-"))


def _parser_of(annotation: Any) -> Callable[[str], Any]:
    """Text -> value for a field annotation: ``int``/``float``/``str``, ``none`` for ``None`` when optional.

    Only the conversion: the range and choice checks are the field's validator's (one per field).
    """
    args = typing.get_args(annotation)
    optional = type(None) in args
    inner = [a for a in args if a is not type(None)] if args else [annotation]
    if int in inner and str in inner:  # 'epoch' or a number of steps
        convert: Callable[[str], Any] = lambda text: int(text) if text.lstrip("-").isdigit() else text
    elif inner == [int]:
        convert = int
    elif inner == [float]:
        convert = float
    else:
        convert = str

    def parse(text: str) -> Any:
        if optional and text.lower() == "none":
            return None
        try:
            return convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'an integer' if convert is int else 'a number'}"
                                             f"{' or none' if optional else ''}, got {text!r}") from None

    parse.__name__ = getattr(convert, "__name__", "value")
    return parse


def _shown(default: Any) -> str:
    """A default as the user would type it (``1,2,3`` for a tuple)."""
    return ",".join(map(str, default)) if isinstance(default, (tuple, list)) else str(default)


def config_fields(cls: type, names: Optional[Sequence[str]] = None) -> List[str]:
    """The fields of ``cls`` offered as flags (``metadata["cli"]`` not false), optionally only ``names``."""
    return [f.name for f in dataclasses.fields(cls) if f.metadata.get("cli", False)
            and (names is None or f.name in names)]


def add_fields(parser: argparse.ArgumentParser, cls: type, names: Optional[Sequence[str]] = None,
               defaults: Any = None) -> List[str]:
    """One flag per field of config dataclass ``cls``, generated from the field (like ``HfArgumentParser``).

    The help is the field's ``metadata["help"]``; the type comes from its annotation; a ``bool``
    field defaulting to false is a switch ``--name``, one defaulting to true ``--no-name`` (its help says
    that it switches off what the field's help describes). The
    choices of a ``choice`` validator are shown, but the value is checked by the field's validator
    when the config is built. Every flag defaults to ``argparse.SUPPRESS`` so only the flags the
    user gave become values (``given``).

    Args:
        parser: where to add the flags.
        cls: the config dataclass.
        names: only these fields (default: every field offered on the command line).
        defaults: an instance whose values are shown as the defaults (default: the field defaults).

    Returns:
        The field names added.
    """
    hints = typing.get_type_hints(cls)
    added = config_fields(cls, names)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for name in added:
        field = fields[name]
        text = field.metadata.get("help", "").replace("%", "%%")
        default = getattr(defaults, name) if defaults is not None else field.default
        if hints[name] is bool:
            if default is True:
                parser.add_argument(f"--no-{name.replace('_', '-')}", dest=name, action="store_false",
                                    default=argparse.SUPPRESS, help=f"switch off (on by default): {text}")
            else:
                parser.add_argument(flag(name), dest=name, action="store_true", default=argparse.SUPPRESS, help=text)
            continue
        choices = getattr(field.metadata.get("check"), "choices", None)
        metavar = field.metadata.get("metavar") or (
            "{" + ",".join(map(str, choices)) + "}" if choices else name.upper().split("_")[-1])
        shown = "" if default is None or default is dataclasses.MISSING else f" (default: {_shown(default)})"
        parser.add_argument(flag(name), dest=name, default=argparse.SUPPRESS, metavar=metavar,
                            type=field.metadata.get("parse") or _parser_of(hints[name]), help=text + shown)
    return added


def given(args: argparse.Namespace, fields: Sequence[str]) -> Dict[str, Any]:
    """The values of ``fields`` the user gave on the command line."""
    return {field: getattr(args, field) for field in fields if hasattr(args, field)}


def add_encoder_options(parser: argparse.ArgumentParser, taken: Sequence[str]) -> List[str]:
    """One flag per command-line option of every known encoder (``--max-length``, ``--stride``), generated
    from the encoders' ``Options`` dataclasses; ``encoder_options`` collects the given ones.

    An option offered by several encoders (the frozen stack shares the Hugging Face window) is one
    flag; an option named like a ``TrainConfig`` field (``taken``) stays off the command line.
    """
    from mcrf.models.encoders import encoder_classes

    added: List[str] = []
    for cls in encoder_classes():
        names = [name for name in config_fields(cls.Options) if name not in added and name not in taken]
        added += add_fields(parser, cls.Options, names)
    return added


def encoder_options(args: argparse.Namespace) -> Dict[str, Any]:
    """``{"encoder_options": {...}}`` of the encoder flags the user gave (``add_encoder_options``), else ``{}``.

    An option the chosen encoder lacks is refused when ``TrainConfig`` is built, naming the encoder.
    """
    options = given(args, args.encoder_fields)
    return {"encoder_options": options} if options else {}


#: device types mcrf runs on, each with its availability check
_DEVICE_TYPES = ("cpu", "cuda", "mps", "xpu")


def resolve_device(name: Optional[str]) -> str:
    """A torch device name: ``name`` checked, or CUDA when available, else the CPU.

    Raises:
        UsageError: ``name`` is not a device, a device mcrf cannot run on (``meta``, ``ipu``, ...),
            or one this machine does not have.
    """
    import torch

    if name is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise UsageError(f"unknown device {name!r}; pass cpu, cuda, cuda:1, mps, ...") from None
    if device.type not in _DEVICE_TYPES:
        raise UsageError(f"--device {name}: mcrf runs on {', '.join(_DEVICE_TYPES)} devices, not {device.type!r}; "
                         "pass --device cpu")
    if device.type == "cuda":
        available = torch.cuda.device_count() if torch.cuda.is_available() else 0
    elif device.type == "mps":
        available = int(torch.backends.mps.is_available())
    elif device.type == "xpu":
        available = torch.xpu.device_count() if hasattr(torch, "xpu") and torch.xpu.is_available() else 0
    else:
        return name
    if not available:
        raise UsageError(f"--device {name}: no {device.type.upper()} device is available here; pass --device cpu")
    if device.index is not None and device.index >= available:
        raise UsageError(f"--device {name}: this machine has {available} {device.type} device(s), numbered from 0")
    return name


def load_tagger(model: str, device: Optional[str], quantize: Optional[str] = None):
    """``Tagger.from_pretrained`` on a checked device, a missing or unreadable folder as ``ModelDirError``.

    The loader itself raises ``ModelDirError`` for files that are incomplete, corrupt or not an
    mcrf model; any other exception is a bug of mcrf and propagates as it is (never disguised
    as a corrupt model). With ``quantize`` (CPU-only kernels) and no ``device``, the model runs
    on the CPU.

    Raises:
        ModelDirError: the folder or a file is missing, unreadable or corrupt.
        UserError: as raised by the loader (e.g. ``ConfigError`` for a quantization the device cannot run).
        UsageError: a bad device.
    """
    from mcrf.models import Tagger

    device = resolve_device("cpu" if quantize is not None and device is None else device)
    try:
        return Tagger.from_pretrained(model, device=device, quantize=quantize)
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError) as error:
        if isinstance(error, UserError):
            raise
        raise ModelDirError(f"cannot read model {model}: {error}") from error


class _StderrHandler(logging.StreamHandler):
    """A stream handler that writes to whatever ``sys.stderr`` is when a record is emitted."""

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # StreamHandler.__init__ assigns it; the property wins
        pass


def configure_logging(debug: bool, quiet: bool) -> None:
    """Log to stderr (the CLI is the only place logging is configured); quiet third-party loggers."""
    level = logging.DEBUG if debug else logging.WARNING if quiet else logging.INFO
    logging.basicConfig(level=level, format="%(message)s", handlers=[_StderrHandler()], force=True)
    for noisy in ("accelerate", "transformers", "datasets", "urllib3", "filelock", "fsspec", "matplotlib",
                  "huggingface_hub", "PIL"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if debug else logging.WARNING)
    if quiet or not sys.stderr.isatty():
        # the libraries' own bars ("Loading weights", "Writing model shards", "Map"): read when they are
        # first imported, which the commands do after this; the user's own setting wins
        for variable in ("HF_HUB_DISABLE_PROGRESS_BARS", "HF_DATASETS_DISABLE_PROGRESS_BARS"):
            os.environ.setdefault(variable, "1")


def load_dataset(dataset: str, args: argparse.Namespace):
    from mcrf.data import LoadConfig, load_corpus

    return load_corpus(dataset, config=build(LoadConfig, **given(args, args.load_fields)))
