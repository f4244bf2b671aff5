"""What the suite needs from outside mcrf, in one place: the test extras and the real corpora.

A test that needs an optional package skips where it is missing, so a developer without the
extras still runs the rest. CI installs the extras (``pip install ".[test]"``) and sets
``MCRF_REQUIRE_EXTRAS=1`` (``.ci/run``): there a missing extra is an error, never a silent skip
that would shrink the suite. The real corpora are read from ``$MCRF_DATA_DIR`` when set, else from
``../shared/data`` beside the repository; tests that need them skip when they are absent.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from types import ModuleType

import pytest

__all__ = ["REQUIRE_EXTRAS", "extra", "skip_or_fail", "data_dir"]

#: Set (to anything but empty or 0) where the test extras are installed: a missing one then fails.
REQUIRE_EXTRAS = "MCRF_REQUIRE_EXTRAS"
ROOT = Path(__file__).resolve().parents[1]


def _required() -> bool:
    return os.environ.get(REQUIRE_EXTRAS, "") not in ("", "0")


def skip_or_fail(reason: str) -> None:
    """Skip with ``reason``, or fail with it when ``MCRF_REQUIRE_EXTRAS`` is set."""
    if _required():
        pytest.fail(f"{reason} ({REQUIRE_EXTRAS} is set: the test extras must be installed here)", pytrace=False)
    pytest.skip(reason, allow_module_level=True)


def extra(module: str, install: str = 'pip install "mcrf[test]"') -> ModuleType:
    """``pytest.importorskip(module)``, but an error instead of a skip when ``MCRF_REQUIRE_EXTRAS`` is set.

    Works at module level (skips or fails the whole module) and inside a test (that test only).
    """
    try:
        return importlib.import_module(module)
    except ImportError as error:
        skip_or_fail(f"{module} is not installed ({error}); {install}")
        raise  # not reached: skip_or_fail raises


def data_dir() -> Path:
    """The folder of the real corpora (``DIR/conll2003/``, ``DIR/atis/``, ...): ``$MCRF_DATA_DIR`` when it is a
    folder, else ``../shared/data`` beside the repository (which may not exist: the tests then skip)."""
    configured = os.environ.get("MCRF_DATA_DIR")
    if configured and Path(configured).expanduser().is_dir():
        return Path(configured).expanduser()
    return ROOT.parent / "shared" / "data"
