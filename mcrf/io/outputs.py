"""The one writer of every file the CLI writes: safe for what the user owns, atomic where it can be.

``open_output(path, inputs=...)`` is a context manager giving a text (or binary) stream:

- **A regular file or a new path** is written to a unique temporary file in the same folder
  (``tempfile.mkstemp``), flushed, fsynced and renamed over the target only when the ``with``
  block succeeds; on any error (Ctrl-C included, and SIGTERM/SIGHUP, which the CLI turns into the
  same unwinding: ``mcrf.cli.app.Terminated``) the temporary is removed and the target is untouched. Two writers of the same path never share a temporary: the last to finish wins
  with a complete file. A new file gets mode ``0o666 & ~umask`` like any file ``open`` creates;
  a replaced file keeps its permission bits.
- **An existing non-regular target** (a character device such as ``/dev/null``, a FIFO, a
  terminal, ``/dev/stdout``) is opened and written in place, never replaced. When the target is
  this process's own standard output or error (``-o /dev/stdout``), the output goes to that
  open stream, so a shell's ``>>`` keeps appending.
- **A symlink** is resolved: its target is written, the link stays.
- **Refused before any work** (``check_output``, also run by ``open_output``): a directory, a
  path ending in ``/`` (it names a folder), a path whose folder does not exist, a read-only
  regular file (not writable by us, or by its owner: the rename would replace it although ``>``
  and ``cp`` refuse to; ``chmod u+w`` says "replace it"), and the same file as one of the ``inputs``
  (``os.path.samefile``). The CLI calls ``check_output`` first, before loading a model;
  ``check_stdout`` refuses a standard output that is an input file (``predict in.txt >> in.txt``).

Temporaries are named ``.<target>.<pid>.<random>.mcrf-tmp``: hidden, with an extension no
output format uses, and the writing process's PID. Each writer holds an ``flock`` on its
temporary, so ``open_output`` removes, before it writes, the temporaries in the folder that a
killed writer left (lock free and PID gone) and never one that a living writer is filling.

Standard library only: every layer may write through it.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import stat
import sys
import tempfile
from pathlib import Path
from typing import IO, Iterable, Iterator, List, Optional, Union

from mcrf.errors import OutputError
from mcrf.io.locks import lock_nowait

__all__ = ["TEMP_SUFFIX", "check_output", "check_stdout", "open_output", "clean_temporaries", "save_text", "temporary_prefix",
           "apply_umask"]

PathLike = Union[str, "os.PathLike[str]"]

#: the extension of the writer's temporaries (no output format uses it)
TEMP_SUFFIX = ".mcrf-tmp"


def check_output(path: PathLike, *, inputs: Iterable[PathLike] = ()) -> Path:
    """Check that ``path`` can be written safely; call it before any expensive work.

    Args:
        path: the output path the user gave (symlinks are followed).
        inputs: input paths the output must not overwrite (``"-"`` means standard input; missing
            paths are skipped).

    Returns:
        The path a regular output file will be renamed to: ``path`` with its symlinks resolved.

    Raises:
        OutputError: ``path`` is (or ends in ``/`` like) a directory, its folder does not exist, it is a
            read-only file, or it is one of ``inputs``.
    """
    given = Path(path)
    info = _stat(given)
    if str(path) == "" or (info is not None and stat.S_ISDIR(info.st_mode)):
        raise OutputError(f"cannot write the output to {given}: it is a directory; pass a file path "
                          f"(e.g. {given / 'out.txt'})")
    if str(path).endswith(("/", os.sep)):  # Path() drops the slash: `-o new/` would write a file named `new`
        raise OutputError(f"cannot write the output to {path}: the trailing '/' names a folder; pass a file path "
                          f"(e.g. {given / 'out.txt'}, after creating the folder {given})")
    if info is not None and stat.S_ISREG(info.st_mode) and _read_only(given, info):
        raise OutputError(f"cannot write the output to {given}: the file is read-only; make it writable "
                          f"(chmod u+w {given}) or remove it first")
    _refuse_inputs(info, str(given), inputs, "which would be overwritten; choose another output path")
    target = Path(os.path.realpath(given))
    if info is None and not target.parent.is_dir():
        raise OutputError(f"cannot write {given}: folder {target.parent} does not exist; create it first")
    return target


def check_stdout(inputs: Iterable[PathLike]) -> None:
    """Refuse a standard output that is one of ``inputs`` (``mcrf predict in.txt >> in.txt``), as ``cat`` does.

    The output would be read back as input, without end. Compares the device and inode of file
    descriptor 1 with each input's; a terminal, pipe or other file passes.

    Raises:
        OutputError: standard output is one of ``inputs``.
    """
    try:
        info = os.fstat(1)
    except OSError:  # no standard output at all: nothing to compare
        return
    _refuse_inputs(info, "standard output", inputs,
                   "which predict would read back as input without end; redirect the output to another file")


@contextlib.contextmanager
def open_output(path: PathLike, *, inputs: Iterable[PathLike] = (), encoding: Optional[str] = "utf-8",
                binary: bool = False) -> Iterator[IO]:
    """Open ``path`` for writing the way the module docstring describes.

    Args:
        path: the output path.
        inputs: input paths the output must differ from.
        encoding: text encoding (ignored when ``binary``). Lines end with ``\\n`` on every platform.
        binary: yield a binary stream instead of a text one.

    Yields:
        A writable stream. The output is in place (atomically, for a file) once the block exits.

    Raises:
        OutputError: see ``check_output``.
    """
    target = check_output(path, inputs=inputs)
    info = _stat(Path(path))
    if info is not None and (not stat.S_ISREG(info.st_mode) or _own_stream(info) is not None):
        with _in_place(path, info, encoding, binary) as stream:
            yield stream
        return
    with _atomic(target, info, encoding, binary) as stream:
        yield stream


def save_text(path: PathLike, text: str, *, inputs: Iterable[PathLike] = (), encoding: str = "utf-8") -> None:
    """Write the whole of ``text`` to ``path`` through ``open_output``."""
    with open_output(path, inputs=inputs, encoding=encoding) as stream:
        stream.write(text)


def clean_temporaries(folder: PathLike) -> List[Path]:
    """Remove the temporaries (files and folders named ``temporary_prefix(...)...TEMP_SUFFIX``) in
    ``folder`` whose writer is gone.

    A temporary is stale when the PID in its name is not a running process and, for a file,
    its ``flock`` is free (its writer closed or died). Returns the removed paths.
    """
    removed = []
    for candidate in Path(folder).glob(f".*{TEMP_SUFFIX}"):
        pid = _pid_of(candidate.name)
        if pid is None or _alive(pid) or candidate.is_symlink():
            continue
        if candidate.is_dir():
            shutil.rmtree(candidate, ignore_errors=True)
            removed.append(candidate)
        elif _unlink_unlocked(candidate):
            removed.append(candidate)
    return removed


def temporary_prefix(name: str) -> str:
    """The prefix of a temporary for output ``name`` (pair it with ``suffix=TEMP_SUFFIX`` in ``tempfile``).

    ``tempfile.mkdtemp(prefix=temporary_prefix("model"), suffix=TEMP_SUFFIX, dir=folder)`` makes a
    temporary folder that ``clean_temporaries(folder)`` removes once its process is gone.
    """
    return f".{name}.{os.getpid()}."


def apply_umask(root: PathLike) -> None:
    """Give ``root`` and everything under it the modes a plain ``open``/``mkdir`` would: ``0o666`` (files)
    and ``0o777`` (folders) minus the umask.

    For trees written through ``tempfile`` (mode 0700) or libraries that create private files
    (safetensors writes 0600), so a saved model can be shared the way the user's umask says.
    """
    mask = _umask()
    root = Path(root)
    for path in [root, *root.rglob("*")]:
        if path.is_symlink():
            continue
        os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~mask)


# ---------------------------------------------------------------------------- internals
def _stat(path: PathLike) -> Optional[os.stat_result]:
    """``os.stat`` (symlinks followed), ``None`` for a missing path or a dangling link."""
    try:
        return os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None


def _read_only(path: Path, info: os.stat_result) -> bool:
    """Whether the user protected the regular file ``path``: no write permission for us, or (for root, whom
    ``os.access`` lets write anything) none for its owner either."""
    return not os.access(path, os.W_OK) or not info.st_mode & stat.S_IWUSR


def _refuse_inputs(info: Optional[os.stat_result], target: str, inputs: Iterable[PathLike], why: str) -> None:
    """Raise ``OutputError`` when the output ``info`` (shown as ``target``) is the same file as an input."""
    if info is None or not stat.S_ISREG(info.st_mode):
        return  # a new path, a device, a pipe or a FIFO cannot be an input file
    for source in inputs:
        if _same_file(info, source):
            shown = "standard input" if str(source) == "-" else f"the input file {source}"
            raise OutputError(f"cannot write the output to {target}: it is {shown}, {why}")


def _same_file(info: os.stat_result, source: PathLike) -> bool:
    """Whether ``info`` is the file ``source`` (``"-"``: whatever standard input reads)."""
    try:
        other = os.fstat(0) if str(source) == "-" else os.stat(source)
    except OSError:
        return False
    return os.path.samestat(info, other)


def _own_stream(info: os.stat_result) -> Optional[int]:
    """1 or 2 when ``info`` is this process's standard output or error (``-o /dev/stdout``), else ``None``."""
    for number in (1, 2):
        try:
            if os.path.samestat(info, os.fstat(number)):
                return number
        except OSError:
            continue
    return None


def _pid_of(name: str) -> Optional[int]:
    """The PID in ``.<target>.<pid>.<random>.mcrf-tmp``, or ``None`` for another name."""
    parts = name[: -len(TEMP_SUFFIX)].split(".")
    return int(parts[-2]) if len(parts) >= 3 and parts[-2].isdigit() else None


def _unlink_unlocked(path: Path) -> bool:
    """Delete the regular file ``path`` unless a process holds its ``flock``."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return False
    try:
        lock_nowait(fd)
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return False
        path.unlink()
        return True
    except OSError:  # a writer still holds it, or it went away meanwhile
        return False
    finally:
        os.close(fd)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # our own leftovers: every writer of this process has closed them
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _umask() -> int:
    """The process umask, read without changing it where Linux tells it (``/proc/self/status``)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # not thread-safe, hence only the fallback
    os.umask(mask)
    return mask


def _wrap(raw: IO[bytes], encoding: Optional[str], binary: bool) -> IO:
    return raw if binary else io.TextIOWrapper(raw, encoding=encoding or "utf-8", newline="\n")


@contextlib.contextmanager
def _atomic(target: Path, info: Optional[os.stat_result], encoding: Optional[str], binary: bool) -> Iterator[IO]:
    folder = target.parent
    clean_temporaries(folder)
    fd, name = tempfile.mkstemp(prefix=temporary_prefix(target.name), suffix=TEMP_SUFFIX, dir=folder)
    tmp = Path(name)
    try:
        lock_nowait(fd)
        os.fchmod(fd, stat.S_IMODE(info.st_mode) if info is not None else 0o666 & ~_umask())
        raw = os.fdopen(fd, "wb")
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    stream = _wrap(raw, encoding, binary)
    try:
        yield stream
        stream.flush()
        os.fsync(raw.fileno())
        os.replace(tmp, target)  # the lock goes with the open file, released by close below
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        with contextlib.suppress(OSError):
            stream.close()
    _fsync_folder(folder)


def _fsync_folder(folder: Path) -> None:
    """Make the rename durable (best effort: some filesystems refuse to fsync a directory)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def _in_place(path: PathLike, info: os.stat_result, encoding: Optional[str], binary: bool) -> Iterator[IO]:
    """Write an existing device, FIFO or terminal where it is, or this process's own stdout/stderr."""
    number = _own_stream(info)
    if number is not None:
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:
                stream.flush()
        raw = os.fdopen(os.dup(number), "wb")
    else:
        raw = open(path, "wb")  # noqa: SIM115 - closed below; O_TRUNC is a no-op on devices and FIFOs
    stream = _wrap(raw, encoding, binary)
    try:
        yield stream
        stream.flush()
    finally:
        with contextlib.suppress(OSError):
            stream.close()
