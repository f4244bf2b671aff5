"""Is a prediction input a CoNLL column file or raw text? (``mcrf predict --input-format auto``)

The rule is conservative, since reading text as CoNLL would silently tag the wrong words:
an input is read as **CoNLL** only when

1. every non-blank line (``-DOCSTART-`` lines aside) has two or more whitespace-separated columns,
   the same number on every line (``read_columns`` needs that anyway);
2. every value of the last column is a tag (``O``, ``PREFIX-TYPE`` or a bare prefix), together they
   fit one scheme, and at least one is a typed entity tag such as ``B-PER``.

Anything else is raw **text**, one sentence per line. ``Sniffed.ambiguous`` says whether the input could
have been either, so the caller says its choice only then: CoNLL was chosen, or text was chosen after
some lines already looked like columns ending in tags. An ordinary text, whose first line's last word
is no tag (or which has one word), is not worth a line on stderr. Condition 2's typed tag keeps a text of
two-word lines ending in ``O`` or ``I`` ("Plan O", "Yes I") as text; a CoNLL file without any
entity (all ``O``) or with bare ``B``/``M``/``E``/``S`` tags only needs ``--input-format conll``.

What is examined: a regular file, every line (the scan stops at the first line that rules CoNLL
out, then the file is read again from the start); a pipe or standard input, which cannot be
read twice, only its first ``SNIFF_BYTES`` (waiting for them or for the end of the input, then
replayed to the reader: nothing is lost); a terminal, nothing (text; it is typed line by line).
"""

from __future__ import annotations

import codecs
import io
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from mcrf.crf import schemes
from mcrf.data.readers import DOCSTART, iter_lines, require_binary, source_name, split_fields

SNIFF_BYTES = 1 << 16

__all__ = ["SNIFF_BYTES", "Sniffed", "sniff_lines", "sniff_input"]


@dataclass(frozen=True)
class Sniffed:
    """The detected input format (``"conll"`` or ``"text"``), why, and whether the input could be either."""

    format: str
    reason: str
    ambiguous: bool = True


def sniff_lines(lines: Iterable[tuple[int, str]]) -> Sniffed:
    """Apply the module's rule to ``(line_number, text)`` pairs; stops at the first line that rules CoNLL out.

    >>> sniff_lines(enumerate(["EU B-ORG", "rejects O", "", "Peter B-PER"], 1)).format
    'conll'
    >>> sniff_lines(enumerate(["Plan O", "Big O"], 1)).reason
    'the last column holds no entity tag (only O or bare prefixes): two-word lines look the same'
    >>> sniff_lines(enumerate(["Plans for the budget.", "Plan O"], 1)).ambiguous
    False
    """
    columns, first = 0, 0
    tags: set[str] = set()
    typed = False
    for number, line in lines:
        if not line.strip(" \t"):
            continue
        fields = split_fields(line)
        if fields[0] == DOCSTART:
            continue
        if len(fields) < 2:
            return Sniffed("text", f"line {number} has a single column", ambiguous=bool(tags))
        if not columns:
            columns, first = len(fields), number
        elif len(fields) != columns:
            return Sniffed("text", f"line {number} has {len(fields)} columns, line {first} has {columns}",
                           ambiguous=bool(tags))
        tag = fields[-1]
        if tag not in tags:
            try:
                schemes.entity_types([tag])
            except ValueError:
                return Sniffed("text", f"{tag!r} (line {number}, last column) is not a tag", ambiguous=bool(tags))
            tags.add(tag)
            typed = typed or "-" in tag
    if not columns:
        return Sniffed("text", "no token lines", ambiguous=False)
    if not typed:
        return Sniffed("text", "the last column holds no entity tag (only O or bare prefixes): two-word lines look "
                               "the same")
    try:
        scheme = schemes.detect_scheme(sorted(tags))
    except ValueError:
        return Sniffed("text", f"the last column's tags {sorted(tags)[:6]} fit no single scheme")
    return Sniffed("conll", f"every line has {columns} columns and the last holds {scheme} tags")


def sniff_input(source: Path | BinaryIO, encoding: str) -> tuple[Path | BinaryIO, Sniffed]:
    """Detect the format of a prediction input; returns the source to read it from, and the verdict.

    A regular file comes back as is (it is read again); a stream, a named pipe or ``/dev/stdin``
    comes back as a binary stream that replays the examined prefix before the rest. The caller
    closes what it opened (the returned stream wraps ``source``; a named pipe is opened here and
    closed when the returned stream is).
    """
    if isinstance(source, Path) and stat.S_ISREG(source.stat().st_mode):
        return source, sniff_lines(iter_lines(source, encoding))
    stream: BinaryIO = source.open("rb") if isinstance(source, Path) else require_binary(source)
    name = source_name(source)
    if _is_terminal(stream):
        return stream, Sniffed("text", "reading from a terminal", ambiguous=False)
    prefix, ended = _read_prefix(stream)
    decoder = codecs.getincrementaldecoder(encoding)(errors="replace")  # the reader reports bad bytes
    try:
        lines = decoder.decode(prefix, final=ended).split("\n")
    except UnicodeError:  # utf-16/utf-32 without a byte order mark (raised whatever `errors`): the reader says so
        lines = []
    if not ended:
        lines = lines[:-1]  # cut mid-line
    lines = [line.rstrip("\r").lstrip("\ufeff") if i == 0 else line.rstrip("\r") for i, line in enumerate(lines)]
    verdict = sniff_lines(enumerate(lines, 1))
    if not ended:
        verdict = Sniffed(verdict.format, f"{verdict.reason} (in its first {len(prefix):,} bytes)", verdict.ambiguous)
    replay = io.BufferedReader(_Replay(prefix, stream, name, close=isinstance(source, Path)))
    return replay, verdict


def _is_terminal(stream: BinaryIO) -> bool:
    try:
        return os.isatty(stream.fileno())
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return False


def _read_prefix(stream: BinaryIO) -> tuple[bytes, bool]:
    """Up to ``SNIFF_BYTES`` from ``stream`` (fewer at its end), and whether it ended."""
    read = getattr(stream, "read1", stream.read)
    chunks, size = [], 0
    while size < SNIFF_BYTES:
        chunk = read(SNIFF_BYTES - size)
        if not chunk:
            return b"".join(chunks), True
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks), False


class _Replay(io.RawIOBase):
    """A raw binary stream: ``prefix``, then the rest of ``stream``."""

    def __init__(self, prefix: bytes, stream: BinaryIO, name: str, close: bool) -> None:
        super().__init__()
        self._prefix = memoryview(prefix)
        self._stream = stream
        self._close_stream = close
        self.name = name

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # noqa: ANN001 - a writable bytes-like object
        if self._prefix:
            n = min(len(buffer), len(self._prefix))
            buffer[:n] = self._prefix[:n]
            self._prefix = self._prefix[n:]
            return n
        read = getattr(self._stream, "read1", self._stream.read)
        data = read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed and self._close_stream:
            self._stream.close()
        super().close()
