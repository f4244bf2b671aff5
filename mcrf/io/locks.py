"""A non-blocking exclusive lock on an open file descriptor, on POSIX and on Windows.

POSIX: ``fcntl.flock`` (advisory, released when the descriptor closes). Windows:
``msvcrt.locking`` on the first byte (mandatory, released when the descriptor closes). The
platform module is imported inside ``lock_nowait``, so importing mcrf never needs ``fcntl``.
"""

from __future__ import annotations

import os

__all__ = ["lock_nowait"]


def lock_nowait(fd: int) -> None:
    """Take an exclusive lock on the open file ``fd`` without waiting.

    Raises:
        OSError: another process (or another descriptor) holds the lock.
    """
    if os.name == "nt":  # pragma: no cover - exercised on Windows only
        import msvcrt

        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        return
    import fcntl

    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
