"""The errors mcrf raises when the *user's input* is at fault.

Everything the CLI prints as a one-line message derives from :class:`UserError`; any other
exception escaping a command is a bug in mcrf and is reported as an internal error. Each
subclass also derives from the builtin that code written before this module caught
(``ValueError``, ``FileNotFoundError``), so ``except ValueError`` keeps working.

Messages follow one shape: what was expected, what came, the fix; data errors start with
``path:line:`` the way compilers report.

This module imports only the standard library: every layer (core, data, models, training,
CLI) may raise these.
"""

from __future__ import annotations

from typing import Optional

__all__ = ["UserError", "DataError", "ModelDirError", "ConfigError", "OutputError", "RunFolderBusy",
           "RunFolderUsed", "TrainingDiverged", "InputNotFound", "located"]


class UserError(Exception):
    """Base class: the user's input (data, flags, paths, model folders) is at fault, not mcrf.

    The CLI prints ``str(error)`` as one line and exits 1 (``ConfigError``: 2, like usage errors).
    """

    exit_code = 1


class DataError(UserError, ValueError):
    """A corpus or input file is malformed: bad columns, unknown tag prefixes, illegal gold, bad bytes."""


class ModelDirError(UserError, ValueError):
    """A model directory is missing, incomplete, corrupt or not an mcrf model."""


class ConfigError(UserError, ValueError):
    """A setting (flag or config field) has a value mcrf cannot use."""

    exit_code = 2


class OutputError(UserError, ValueError):
    """An output path cannot be written safely (a directory, the input file itself, a missing folder)."""


class RunFolderBusy(UserError, RuntimeError):
    """Another process holds the run folder's lock."""


class RunFolderUsed(UserError, FileExistsError):
    """The run folder already holds files a run would write, and neither resume nor overwrite was asked."""


class TrainingDiverged(UserError, ArithmeticError):
    """Training produced non-finite parameters (a learning rate too high for the model)."""


class InputNotFound(UserError, FileNotFoundError):
    """An input path (dataset folder, input file, model) does not exist."""


def located(path: object, line: Optional[int], message: str) -> str:
    """``"path:line: message"`` (or ``"path: message"`` without a line), the prefix of data errors.

    >>> located("train.txt", 12, "expected 2 columns, got 3")
    'train.txt:12: expected 2 columns, got 3'
    """
    return f"{path}:{line}: {message}" if line is not None else f"{path}: {message}"
