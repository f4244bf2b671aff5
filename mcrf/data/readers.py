"""Streaming readers for labelled corpora: column files, line-aligned pairs, JSON lines.

Every reader is a generator of :class:`~mcrf.data.types.Sentence` whose ``source`` is
``"file:line"`` of the sentence's first line. Every error about the file's content is a
:class:`~mcrf.errors.DataError` shaped ``path:line: what was expected, what came, the fix``
(compiler style); a missing file is :class:`~mcrf.errors.InputNotFound`.
Files are read as bytes and decoded line by line (``iter_lines``, the one decoding loop of the
package, prediction input included), so CRLF line ends and a UTF-8 BOM are handled and an
undecodable byte is reported where it stands. Encodings that do not write a newline (LF) as the
byte ``0x0a`` (UTF-16, UTF-32, EBCDIC code pages) are decoded as a stream first and split into lines
after. ``iter_lines`` and ``read_columns`` also take an open binary stream (standard input, a
pipe); its ``name`` (else ``<stream>``) stands for the file.
"""

from __future__ import annotations

import codecs
import io
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

try:  # Python 3.11+
    from importlib.resources.abc import Traversable
except ImportError:  # Python 3.10
    from importlib.abc import Traversable

from mcrf.data.types import Sentence
from mcrf.errors import ConfigError, DataError, InputNotFound, located
from mcrf.fields import codec

PathLike = str | Path
LineSource = str | Path | Traversable | BinaryIO  # Traversable: package data (importlib.resources)
DOCSTART = "-DOCSTART-"
_FIELD_SPLIT = re.compile(r"[ \t]+")

_READ_CHUNK = 1 << 16  # bytes per read of the stream decoder (UTF-16/32)

__all__ = ["DOCSTART", "check_encoding", "iter_lines", "require_binary", "source_name", "split_fields",
           "read_columns", "column_count", "read_line_pairs", "read_jsonl"]


def source_name(source: LineSource) -> str:
    """How messages and ``Sentence.source`` name a path or a stream (its ``name``, else ``<stream>``)."""
    if isinstance(source, (str, Path, Traversable)):
        return str(source)
    name = getattr(source, "name", None)
    return name if isinstance(name, str) else "<stream>"


def check_encoding(encoding: str) -> str:
    """``encoding`` if Python can decode text with it, else a :class:`~mcrf.errors.ConfigError`.

    Any text encoding of Python's ``codecs`` works, UTF-16/UTF-32 included; byte-to-byte codecs
    (``hex``, ``base64``, ``rot13``...) are refused (the rule of ``mcrf.fields.codec``).

    >>> check_encoding("latin-1"), check_encoding("utf-16")
    ('latin-1', 'utf-16')
    """
    return codec()("encoding", encoding)


def _splits_on_newline_byte(encoding: str) -> bool:
    """Whether ``encoding`` writes LF, CR and ASCII as the same single bytes (so lines split on bytes)."""
    try:
        return "\n\r a-Z".encode(encoding) == b"\n\r a-Z"
    except (UnicodeError, LookupError):
        return False


def iter_lines(source: LineSource, encoding: str = "utf-8") -> Iterator[tuple[int, str]]:
    """Yield ``(line_number, text)`` of a file or binary stream, 1-based, without the line end (LF or CRLF).

    A path (or an ``importlib.resources`` Traversable) is opened and closed here (regular files and
    also named pipes such as ``<(command)``); a stream is read from where it stands and left open.
    Lines end at LF only (a lone CR or U+2028 stays inside the line, so line numbers agree with
    ``wc -l`` and editors' CoNLL views).

    Raises:
        InputNotFound: the path does not exist or is a directory.
        ConfigError: ``encoding`` is not a text encoding.
        TypeError: ``source`` is a text stream (pass its ``.buffer`` or open the file ``'rb'``).
        DataError: a line cannot be decoded with ``encoding`` (names file:line and the byte).
    """
    check_encoding(encoding)
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.exists() or path.is_dir():
            raise InputNotFound(located(path, None, f"expected a data file, found "
                                                    f"{'a directory' if path.exists() else 'nothing'}; "
                                                    "check the path"))
        with path.open("rb") as handle:
            yield from _decode_lines(handle, str(path), encoding)
        return
    if isinstance(source, Traversable):  # package data inside a zip archive
        with source.open("rb") as handle:
            yield from _decode_lines(handle, str(source), encoding)
        return
    yield from _decode_lines(require_binary(source), source_name(source), encoding)


def require_binary(stream: BinaryIO) -> BinaryIO:
    """``stream`` itself, or a TypeError when it is a text stream (lines are decoded here, from bytes)."""
    if isinstance(stream, io.TextIOBase):
        raise TypeError(f"expected a binary stream for {source_name(stream)}, got a text stream; "
                        "pass its .buffer or open it 'rb'")
    return stream


def _decode_lines(handle: BinaryIO, name: str, encoding: str) -> Iterator[tuple[int, str]]:
    """Lines without their LF/CRLF end, a byte order mark dropped from the first."""
    if _splits_on_newline_byte(encoding):
        return _byte_lines(handle, name, encoding)
    return _stream_lines(handle, name, encoding)


def _clean(number: int, text: str) -> str:
    text = text.rstrip("\r")
    return text[1:] if number == 1 and text.startswith("\ufeff") else text


def _bad_bytes(name: str, number: int, raw: bytes, err: UnicodeDecodeError, encoding: str) -> DataError:
    bad = raw[err.start:err.start + 1].hex()
    return DataError(located(
        name, number, f"expected {encoding} text, got byte 0x{bad} at column {err.start + 1} that is not valid "
        f"{encoding}; re-encode the file (e.g. `iconv -f latin1 -t utf-8`) or pass its encoding (--encoding)"))


def _newlines_before(encoding: str, state: tuple[bytes, int], err: UnicodeDecodeError) -> int:
    """Newlines in the decodable text before ``err`` (decoded again from ``state``, bad bytes replaced)."""
    probe = codecs.getincrementaldecoder(encoding)(errors="replace")
    probe.setstate(state)
    buffered = len(state[0]) if isinstance(state[0], bytes) else 0
    return probe.decode(err.object[buffered:err.start]).count("\n")


def _byte_lines(handle: BinaryIO, name: str, encoding: str) -> Iterator[tuple[int, str]]:
    """Split on LF bytes, then decode each line (ASCII-compatible encodings: exact byte columns)."""
    for number, raw in enumerate(handle, start=1):
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError as err:
            raise _bad_bytes(name, number, raw, err, encoding) from None
        text = text.rstrip("\r\n")
        yield number, (text[1:] if number == 1 and text.startswith("\ufeff") else text)


def _stream_lines(handle: BinaryIO, name: str, encoding: str) -> Iterator[tuple[int, str]]:
    """Decode the stream incrementally, then split on LF (UTF-16/32, where a newline is not one byte)."""
    decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    read = getattr(handle, "read1", handle.read)  # read1: what a pipe has now, not a full chunk
    pending, number = "", 0
    while True:
        chunk = read(_READ_CHUNK)
        state = decoder.getstate()
        try:
            text = decoder.decode(chunk or b"", final=not chunk)
        except UnicodeDecodeError as err:
            line = number + 1 + pending.count("\n") + _newlines_before(encoding, state, err)
            raise DataError(located(
                name, line, f"expected {encoding} text, got bytes that are not valid {encoding} ({err.reason}); "
                f"re-encode the file or pass its encoding (--encoding)")) from None
        except UnicodeError as err:  # utf-16/utf-32 (no byte order given) on bytes without a byte order mark
            raise DataError(located(
                name, number + 1, f"expected {encoding} text starting with a byte order mark, got none ({err}); "
                f"pass the byte order with the encoding, e.g. --encoding {encoding}-le or {encoding}-be")) from None
        pending += text
        *complete, pending = pending.split("\n")
        for line in complete:
            number += 1
            yield number, _clean(number, line)
        if not chunk:
            break
    if pending:
        yield number + 1, _clean(number + 1, pending)


def split_fields(line: str, separator: str | None = None) -> list[str]:
    """Split a column line: on ``separator`` when given, else on runs of spaces/tabs.

    Only ASCII spaces and tabs separate fields, so tokens such as U+3000 or U+00A0 survive.

    >>> split_fields("EU NNP\\tI-NP  I-ORG")
    ['EU', 'NNP', 'I-NP', 'I-ORG']
    """
    if separator is not None:
        return line.split(separator)
    return [field for field in _FIELD_SPLIT.split(line.strip(" \t")) if field]


def read_columns(
    path: LineSource,
    *,
    token_column: int = 0,
    tag_column: int | None = -1,
    separator: str | None = None,
    encoding: str = "utf-8",
    allow_empty: bool = False,
) -> Iterator[Sentence]:
    """Read a CoNLL-style column file: one token per line, blank lines between sentences.

    ``-DOCSTART-`` lines are dropped wherever they stand; a document start also ends the
    sentence before it (CoNLL-2002 Dutch puts it inside the first sentence).

    Args:
        path: the file, or an open binary stream (see ``iter_lines``).
        token_column: index of the token column.
        tag_column: index of the tag column (negative counts from the end), or ``None`` for
            unlabelled files.
        separator: field separator; ``None`` splits on runs of spaces/tabs.
        encoding: text encoding of the file.
        allow_empty: yield nothing for a file without sentences instead of raising (prediction
            input, where an empty input gives an empty output).

    Raises:
        DataError: a line has a different column count than the first one, a column index
            does not exist, or the file holds no sentence (unless ``allow_empty``); bad bytes.
    """
    name = source_name(path)
    columns: int | None = None
    first = 0
    tokens: list[str] = []
    tags: list[str] = []
    start = 0
    count = 0

    def flush() -> Sentence | None:
        if not tokens:
            return None
        sentence = Sentence(tuple(tokens), tuple(tags) if tag_column is not None else None, f"{name}:{start}")
        tokens.clear()
        tags.clear()
        return sentence

    for number, line in iter_lines(path, encoding):
        if not line.strip(" \t"):
            sentence = flush()
            if sentence is not None:
                count += 1
                yield sentence
            continue
        fields = split_fields(line, separator)
        if _is_docstart(fields, token_column):
            sentence = flush()
            if sentence is not None:
                count += 1
                yield sentence
            continue
        if columns is None:
            columns, first = len(fields), number
            _check_column(name, number, columns, token_column, "token", "--token-column")
            if tag_column is not None:
                _check_column(name, number, columns, tag_column, "tag", "--tag-column")
        elif len(fields) != columns:
            # unlabelled input is `mcrf predict`'s, which has no --separator (its words hold no spaces)
            fix = "fix the line" if tag_column is None else "fix the line, or pass --separator if tokens contain spaces"
            raise DataError(located(
                name, number, f"expected {columns} columns (like line {first}), got {len(fields)}: {line!r}; {fix}"))
        if not tokens:
            start = number
        tokens.append(fields[token_column])
        if tag_column is not None:
            tags.append(fields[tag_column])
    sentence = flush()
    if sentence is not None:
        count += 1
        yield sentence
    if count == 0 and not allow_empty:
        raise DataError(located(name, None, "expected token lines separated by blank lines, got no sentence; "
                                            "check that this is the right file"))


def _is_docstart(fields: list[str], token_column: int) -> bool:
    return fields[0] == DOCSTART or (len(fields) > token_column and fields[token_column] == DOCSTART)


def column_count(path: LineSource, separator: str | None = None, encoding: str = "utf-8") -> tuple[int, int]:
    """``(columns, line)`` of the first token line of a column file (``(0, 0)`` when it has none).

    Reads only up to that line: the layout check of ``load_corpus`` costs one line per file.
    """
    for number, line in iter_lines(path, encoding):
        if line.strip(" \t"):
            fields = split_fields(line, separator)
            if not _is_docstart(fields, 0):
                return len(fields), number
    return 0, 0


def _check_column(path: PathLike, number: int, columns: int, index: int, what: str, flag: str) -> None:
    if not -columns <= index < columns:
        raise DataError(located(
            path, number, f"expected a {what} column {index}, got a line of {columns} columns; "
            f"pass {flag} between {-columns} and {columns - 1}"))


def read_line_pairs(tokens_path: PathLike, tags_path: PathLike, encoding: str = "utf-8") -> Iterator[Sentence]:
    """Read line-aligned files (``seq.in`` tokens + ``seq.out`` tags, one sentence per line).

    Lines that are blank in both files are skipped.

    Raises:
        DataError: the files have different line counts, a line's token and tag counts
            differ, or no sentence was found.
    """
    tag_lines = iter_lines(tags_path, encoding)
    count, last = 0, 0
    for number, line in iter_lines(tokens_path, encoding):
        other = next(tag_lines, None)
        if other is None:
            raise DataError(located(
                tokens_path, number, f"expected {tags_path} to have a tag line {number} for this token line, "
                f"got the end of {tags_path} after {number - 1} lines; the two files must have one line per "
                "sentence each"))
        tokens, tags = split_fields(line), split_fields(other[1])
        if len(tokens) != len(tags):
            raise DataError(located(
                tags_path, number, f"expected {len(tokens)} tags to match the {len(tokens)} tokens at "
                f"{tokens_path}:{number}, got {len(tags)}; the two files must be line- and token-aligned"))
        last = number
        if not tokens:
            continue
        count += 1
        yield Sentence(tuple(tokens), tuple(tags), f"{tokens_path}:{number}")
    extra = next(tag_lines, None)
    if extra is not None:
        raise DataError(located(
            tags_path, extra[0], f"expected {tags_path} to end with {tokens_path} after {last} lines, got "
            f"this extra tag line; the two files must have one line per sentence each"))
    if count == 0:
        raise DataError(located(tokens_path, None, "expected one space-separated sentence per line, got no "
                                                   "sentence; check that this is the right file"))


def read_jsonl(
    path: PathLike, *, tokens_key: str = "tokens", tags_key: str | None = "tags", encoding: str = "utf-8"
) -> Iterator[Sentence]:
    """Read JSON lines ``{"tokens": [...], "tags": [...]}`` (blank lines skipped).

    Raises:
        DataError: a line is not a JSON object with a list of strings under each key, the
            lists differ in length, or the file holds no sentence.
    """
    count = 0
    for number, line in iter_lines(path, encoding):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(located(path, number, f"expected a JSON object, got invalid JSON ({err.msg} at "
                                                  f"column {err.colno}); fix the line")) from None
        if not isinstance(record, dict):
            raise DataError(located(path, number, f"expected a JSON object with {tokens_key!r}, got "
                                                  f"{type(record).__name__}; write one object per line"))
        tokens = _string_list(record, tokens_key, path, number)
        tags = _string_list(record, tags_key, path, number) if tags_key is not None else None
        if tags is not None and len(tags) != len(tokens):
            raise DataError(located(path, number, f"expected {len(tokens)} tags (one per token), got "
                                                  f"{len(tags)}; fix the record"))
        count += 1
        yield Sentence(tuple(tokens), tuple(tags) if tags is not None else None, f"{path}:{number}")
    if count == 0:
        raise DataError(located(path, None, "expected one JSON object per line, got no sentence; check that "
                                            "this is the right file"))


def _string_list(record: dict, key: str, path: PathLike, number: int) -> list[str]:
    if key not in record:
        raise DataError(located(path, number, f"expected a key {key!r}, got keys {sorted(record)}; add it"))
    value = record[key]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise DataError(located(path, number, f"expected {key!r} to be a list of strings, got "
                                              f"{json.dumps(value)[:80]}; fix the record"))
    return value
