"""One run per folder: an advisory lock held for the whole run, and the guard for a used folder.

``hold(folder)`` takes an exclusive lock (``mcrf.io.locks``) on ``folder/.mcrf.lock`` (created, and the folder
with it, when missing) and keeps it until the ``with`` block ends; the kernel drops it when
the process dies, so a killed run never leaves a stale lock. A second run into the same folder
gets ``RunFolderBusy`` naming the PID of the run that holds it. The lock file stays in the
folder (deleting it would let a third run lock a fresh file while the first still runs) and
holds the holder's PID and command line, for people as much as for the error message.

``used_outputs`` / ``require_unused`` are the guard: a folder that already holds any file a
run would write is refused unless the user said ``--overwrite`` (or ``--resume``), whatever
that file is, so a user's ``metrics.json`` is as safe as a checkpoint.

Standard library only (the ``train`` and ``compare`` commands both use it). Advisory: it
protects runs of mcrf from each other, not from other programs. ``flock`` works on local
filesystems and on NFS v4; elsewhere a second run may not be stopped.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Iterable, Iterator, List, Union

from mcrf.errors import OutputError, RunFolderBusy, RunFolderUsed
from mcrf.io.locks import lock_nowait

__all__ = ["LOCK_FILE", "hold", "holder", "used_outputs", "require_unused", "remove_outputs"]

LOCK_FILE = ".mcrf.lock"
PathLike = Union[str, "os.PathLike[str]"]


@contextlib.contextmanager
def hold(folder: PathLike) -> Iterator[Path]:
    """Hold the run lock of ``folder`` (created if missing) for the duration of the block.

    Yields:
        The lock file's path.

    Raises:
        RunFolderBusy: another process holds the lock (the message names its PID).
        OutputError: the folder or its lock file cannot be created.
    """
    folder = Path(folder)
    path = folder / LOCK_FILE
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)  # the umask applies, like any new file
    except OSError as error:
        raise OutputError(f"cannot use {folder} as a run folder: {error.strerror or error} ({path}); "
                          "choose a folder you can write") from None
    try:
        lock_nowait(fd)
    except OSError:
        os.close(fd)
        raise RunFolderBusy(f"{folder} is in use by another mcrf run ({holder(folder)}); wait for it to finish "
                            "or choose another output folder") from None
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n{' '.join(sys.argv)}\n".encode("utf-8", "replace"))
        yield path
    finally:
        os.close(fd)  # releases the lock


def holder(folder: PathLike, wait: float = 1.0) -> str:
    """``"PID 1234: mcrf train ..."`` from the lock file of ``folder`` (``"PID unknown"`` if unreadable).

    The holder writes its PID right after taking the lock: a reader that comes in between
    waits up to ``wait`` seconds for it.
    """
    deadline = time.monotonic() + wait
    while True:
        try:
            lines = (Path(folder) / LOCK_FILE).read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            lines = []
        if lines and lines[0].strip().isdigit():
            command = f": {lines[1].strip()}" if len(lines) > 1 and lines[1].strip() else ""
            return f"PID {lines[0].strip()}{command}"
        if time.monotonic() >= deadline:
            return "PID unknown"
        time.sleep(0.05)


def used_outputs(folder: PathLike, outputs: Iterable[str]) -> List[str]:
    """The names among ``outputs`` that exist in ``folder`` (files, folders or links), sorted."""
    folder = Path(folder)
    return sorted(name for name in set(outputs) if os.path.lexists(folder / name))


def require_unused(folder: PathLike, outputs: Iterable[str], *, fix: str) -> None:
    """Refuse a folder that already holds one of ``outputs``.

    Args:
        folder: the run folder.
        outputs: every file and folder name the run writes (temporaries included).
        fix: what the user can do, e.g. ``"pass --overwrite to start over"``.

    Raises:
        RunFolderUsed: naming what is there and ``fix``.
    """
    found = used_outputs(folder, outputs)
    if found:
        raise RunFolderUsed(f"{folder} already holds {', '.join(found)} from an earlier run; {fix}")


def remove_outputs(folder: PathLike, outputs: Iterable[str]) -> None:
    """Delete the names among ``outputs`` in ``folder``; the user's other files stay."""
    for name in used_outputs(folder, outputs):
        path = Path(folder) / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
