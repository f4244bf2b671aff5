"""Helpers of the ``mcrf`` command line: flags built from config dataclasses, model loading, logging.

Each command exposes fields of a config dataclass (the only holder of defaults) as flags: help
text comes from the class docstring's ``Attributes:`` section, the shown default from an
instance, and every flag defaults to ``argparse.SUPPRESS`` so only the flags the user gave
become overrides (``given``), which ``build`` turns into the config.
"""

from __future__ import annotations

import argparse
import codecs
import logging
import re
import sys
from typing import Any, Callable, Dict, Optional, Sequence

from mcrf.errors import UserError

__all__ = ["UsageError", "attribute_docs", "positive_int", "optional_int", "encoding", "build",
           "flag", "add_fields", "given", "resolve_device", "load_tagger", "configure_logging"]


class UsageError(Exception):
    """A flag value the configs reject (exit code 2, like argparse's own errors)."""


def attribute_docs(cls: type) -> Dict[str, str]:
    """``{field: description}`` from the ``Attributes:`` section of a dataclass docstring."""
    doc = (cls.__doc__ or "").split("Attributes:", 1)[-1]
    docs: Dict[str, str] = {}
    for match in re.finditer(r"^\s{8}(\w+): (.*?)(?=^\s{8}\w+: |\Z)", doc, flags=re.M | re.S):
        docs[match.group(1)] = " ".join(match.group(2).replace("``", "").split())
    return docs


def positive_int(text: str) -> int:
    """Argparse type: an integer >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def optional_int(text: str) -> Optional[int]:
    """Argparse type: an integer, or ``none`` for ``None``."""
    return None if text.lower() == "none" else int(text)


def encoding(text: str) -> str:
    """Argparse type: a text encoding Python knows (``codecs.lookup``), e.g. ``utf-8``, ``latin-1``."""
    try:
        codecs.lookup(text)
    except LookupError:
        raise argparse.ArgumentTypeError(
            f"unknown encoding {text!r}; pass one Python knows, e.g. utf-8, latin-1, cp1252, utf-16") from None
    return text


def build(cls: Callable[..., Any], **values: Any) -> Any:
    """Construct a config; its ValueError/TypeError become usage errors (exit code 2)."""
    try:
        return cls(**values)
    except (ValueError, TypeError) as error:
        raise UsageError(str(error)) from error


def flag(field: str) -> str:
    """The command-line flag of a config field (``output_dir`` -> ``--output``, ``max_steps`` -> ``--max-steps``)."""
    return {"output_dir": "--output", "output_format": "--format"}.get(field, "--" + field.replace("_", "-"))


def add_fields(parser: argparse.ArgumentParser, cls: type, fields: Dict[str, Dict[str, Any]],
               defaults: Any) -> None:
    """One flag per dataclass field; help from the class docstring, shown default from ``defaults``.

    Every flag defaults to ``argparse.SUPPRESS`` so only flags the user gave become overrides.
    """
    docs = attribute_docs(cls)
    for field, extra in fields.items():
        default = getattr(defaults, field)
        shown = "" if isinstance(default, bool) else f" (default: {default})"
        parser.add_argument(flag(field), dest=field, default=argparse.SUPPRESS,
                            help=docs.get(field, "").replace("%", "%%") + shown, **extra)


def given(args: argparse.Namespace, fields: Sequence[str]) -> Dict[str, Any]:
    """The values of ``fields`` the user gave on the command line."""
    return {field: getattr(args, field) for field in fields if hasattr(args, field)}


def resolve_device(name: Optional[str]) -> str:
    """A torch device name: ``name`` checked, or CUDA when available, else the CPU.

    Raises:
        UsageError: ``name`` is not a device, or names CUDA on a machine without it.
    """
    import torch

    if name is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise UsageError(f"unknown device {name!r}; pass cpu, cuda, cuda:1, mps, ...") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"--device {name}: no CUDA device is available here; pass --device cpu")
    return name


def load_tagger(model: str, device: Optional[str], quantize: Optional[str] = None):
    """``Tagger.from_pretrained`` with a file-level problem turned into one clear error.

    With ``quantize`` (CPU-only kernels) and no ``device``, the model runs on the CPU.

    Raises:
        UserError: as raised by the loader (e.g. ``ConfigError`` for a quantization the device cannot run).
        OSError: the directory or one of its files is missing or unreadable (message from the loader).
        ValueError: anything else that fails while reading the model (corrupt weights, a bad
            ``config.json``): "MODEL is corrupt or not an mcrf model", the cause attached.
    """
    from mcrf.models import Tagger

    device = resolve_device("cpu" if quantize is not None and device is None else device)
    try:
        return Tagger.from_pretrained(model, device=device, quantize=quantize)
    except (OSError, MemoryError, UserError):
        raise
    except Exception as error:  # safetensors' SafetensorError, TypeError/KeyError of a bad config.json, ...
        raise ValueError(f"model {model} is corrupt or not an mcrf model ({type(error).__name__}: {error}); "
                         "retrain or re-save it (Tagger.save_pretrained)") from error


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
