"""Crash-safe files and folders: the one JSON writer and the one atomic directory writer of mcrf.

- ``write_json``: a JSON file written through ``mcrf.io.outputs`` (a temporary sibling, fsync,
  rename), so a reader never sees half a file.
- ``replace_dir`` / ``atomic_directory``: a complete directory put in place by renames. A kill
  at any point leaves the old or the new complete directory (the old one possibly as
  ``<name>.old``, which ``mcrf.training.checkpoint.find_checkpoint`` also accepts). The staging
  folder is named like ``mcrf.io.outputs``' temporaries, so a later save cleans what a killed one
  left, and its files get the umask's modes (readable by others, like ``save_pretrained``).

Standard library only (plus ``mcrf.io.outputs``): every layer may use it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator, Union

from mcrf.io.outputs import TEMP_SUFFIX, apply_umask, clean_temporaries, temporary_prefix, save_text

__all__ = ["write_json", "replace_dir", "atomic_directory"]

PathLike = Union[str, "os.PathLike[str]"]


def _plain(value: Any) -> Any:
    """JSON fallback for numpy/torch scalars and arrays; anything else is an error."""
    if getattr(value, "ndim", None) == 0 and hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} to JSON; pass numbers, strings, lists and dicts")


def write_json(path: PathLike, data: Any, *, sort_keys: bool = True) -> None:
    """Write ``data`` as indented UTF-8 JSON to ``path`` atomically and durably (``mcrf.io.outputs.save_text``).

    Numpy/torch scalars are written as numbers.

    Raises:
        TypeError: a value JSON cannot hold.
    """
    save_text(path, json.dumps(data, indent=2, ensure_ascii=False, sort_keys=sort_keys, default=_plain) + "\n")


def replace_dir(tmp: PathLike, final: PathLike) -> None:
    """Atomically move the complete directory ``tmp`` to ``final`` (replacing any old one).

    Both must be on the same filesystem; one process at a time. A kill at any point leaves a
    complete ``final`` or ``<final>.old``: ``old`` is only deleted while a complete ``final`` exists.
    """
    tmp, final = Path(tmp), Path(final)
    old = final.with_name(final.name + ".old")
    if not final.exists():
        # A kill between the two renames of an earlier swap left the only complete copy in
        # ``old``: put the new one in place first, then drop ``old``.
        os.replace(tmp, final)
        if old.exists():
            shutil.rmtree(old)
        return
    if old.exists():  # stale: ``final`` is complete
        shutil.rmtree(old)
    os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old)


@contextlib.contextmanager
def atomic_directory(final: PathLike) -> Iterator[Path]:
    """Yield an empty staging directory next to ``final``; on success it replaces ``final`` (``replace_dir``).

    On any exception the staging directory is removed and ``final`` is left as it was.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    clean_temporaries(final.parent)  # left by a save that was killed
    staging = Path(tempfile.mkdtemp(prefix=temporary_prefix(final.name), suffix=TEMP_SUFFIX, dir=final.parent))
    try:
        yield staging
        apply_umask(staging)  # mkdtemp and safetensors make 0700/0600
        replace_dir(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
