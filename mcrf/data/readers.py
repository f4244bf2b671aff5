"""Streaming readers for labelled corpora: column files, line-aligned pairs, JSON lines.

Every reader is a generator of :class:`~mcrf.data.types.Sentence` whose ``source`` is
``"file:line"`` of the sentence's first line, and every error names ``file:line``.
Files are read as bytes and decoded line by line (``iter_lines``, the one decoding loop of the
package, prediction input included), so CRLF line ends and a UTF-8 BOM are handled and an
undecodable byte is reported where it stands. ``iter_lines`` and ``read_columns`` also take an
open binary stream (standard input, a pipe); its ``name`` (else ``<stream>``) stands for the file.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import BinaryIO, Iterator, List, Optional, Tuple, Union

from mcrf.data.types import Sentence

PathLike = Union[str, Path]
LineSource = Union[str, Path, BinaryIO]
DOCSTART = "-DOCSTART-"
_FIELD_SPLIT = re.compile(r"[ \t]+")

__all__ = ["DOCSTART", "iter_lines", "source_name", "split_fields", "read_columns", "read_line_pairs", "read_jsonl"]


def source_name(source: LineSource) -> str:
    """How messages and ``Sentence.source`` name a path or a stream (its ``name``, else ``<stream>``)."""
    if isinstance(source, (str, Path)):
        return str(source)
    name = getattr(source, "name", None)
    return name if isinstance(name, str) else "<stream>"


def iter_lines(source: LineSource, encoding: str = "utf-8") -> Iterator[Tuple[int, str]]:
    """Yield ``(line_number, text)`` of a file or binary stream, 1-based, without the line end (LF or CRLF).

    A path is opened and closed here (regular files and also named pipes such as ``<(command)``);
    a stream is read from where it stands and left open.

    Raises:
        FileNotFoundError: the path does not exist or is a directory.
        TypeError: ``source`` is a text stream (pass its ``.buffer`` or open the file ``'rb'``).
        ValueError: a line cannot be decoded with ``encoding`` (names file:line and the byte).
    """
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.exists() or path.is_dir():
            raise FileNotFoundError(
                f"expected a data file at {path}, found {'a directory' if path.exists() else 'nothing'}")
        with path.open("rb") as handle:
            yield from _decode_lines(handle, str(path), encoding)
        return
    if isinstance(source, io.TextIOBase):
        raise TypeError(f"expected a binary stream for {source_name(source)}, got a text stream; "
                        "pass its .buffer or open it 'rb'")
    yield from _decode_lines(source, source_name(source), encoding)


def _decode_lines(handle: BinaryIO, name: str, encoding: str) -> Iterator[Tuple[int, str]]:
    for number, raw in enumerate(handle, start=1):
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError as err:
            bad = raw[err.start:err.start + 1].hex()
            raise ValueError(
                f"{name}:{number}: byte 0x{bad} at column {err.start + 1} is not valid {encoding}; "
                f"re-encode it (e.g. `iconv -f latin1 -t utf-8`) or pass its encoding (--encoding)"
            ) from None
        if number == 1 and text.startswith("\ufeff"):
            text = text[1:]
        yield number, text.rstrip("\r\n")


def split_fields(line: str, separator: Optional[str] = None) -> List[str]:
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
    tag_column: Optional[int] = -1,
    separator: Optional[str] = None,
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
        ValueError: a line has a different column count than the first one, a column index
            does not exist, or the file holds no sentence (unless ``allow_empty``).
    """
    name = source_name(path)
    columns: Optional[int] = None
    tokens: List[str] = []
    tags: List[str] = []
    start = 0
    count = 0

    def flush() -> Optional[Sentence]:
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
        if fields[0] == DOCSTART or (len(fields) > token_column and fields[token_column] == DOCSTART):
            sentence = flush()
            if sentence is not None:
                count += 1
                yield sentence
            continue
        if columns is None:
            columns = len(fields)
            _check_column(name, number, columns, token_column, "token", "--token-column")
            if tag_column is not None:
                _check_column(name, number, columns, tag_column, "tag", "--tag-column")
        elif len(fields) != columns:
            raise ValueError(
                f"expected {columns} columns at {name}:{number} (like the file's first line), got "
                f"{len(fields)}: {line!r}; fix the line or pass --separator if fields contain spaces"
            )
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
        raise ValueError(f"{name} holds no sentences; expected token lines separated by blank lines")


def _check_column(path: PathLike, number: int, columns: int, index: int, what: str, flag: str) -> None:
    if not -columns <= index < columns:
        raise ValueError(
            f"{what} column {index} does not exist at {path}:{number}: the line has {columns} columns; "
            f"pass {flag} between {-columns} and {columns - 1}"
        )


def read_line_pairs(tokens_path: PathLike, tags_path: PathLike, encoding: str = "utf-8") -> Iterator[Sentence]:
    """Read line-aligned files (``seq.in`` tokens + ``seq.out`` tags, one sentence per line).

    Lines that are blank in both files are skipped.

    Raises:
        ValueError: the files have different line counts, a line's token and tag counts
            differ, or no sentence was found.
    """
    tag_lines = iter_lines(tags_path, encoding)
    count = 0
    for number, line in iter_lines(tokens_path, encoding):
        other = next(tag_lines, None)
        if other is None:
            raise ValueError(
                f"{tags_path} ends at line {number - 1} but {tokens_path} goes on at {tokens_path}:{number}; "
                f"expected one tag line per token line"
            )
        tokens, tags = split_fields(line), split_fields(other[1])
        if len(tokens) != len(tags):
            raise ValueError(
                f"expected {len(tokens)} tags at {tags_path}:{number} to match the {len(tokens)} tokens at "
                f"{tokens_path}:{number}, got {len(tags)}; the two files must be line- and token-aligned"
            )
        if not tokens:
            continue
        count += 1
        yield Sentence(tuple(tokens), tuple(tags), f"{tokens_path}:{number}")
    extra = next(tag_lines, None)
    if extra is not None:
        raise ValueError(
            f"{tokens_path} ends before {tags_path}:{extra[0]}; expected one tag line per token line"
        )
    if count == 0:
        raise ValueError(f"{tokens_path} holds no sentences; expected one space-separated sentence per line")


def read_jsonl(
    path: PathLike, *, tokens_key: str = "tokens", tags_key: Optional[str] = "tags", encoding: str = "utf-8"
) -> Iterator[Sentence]:
    """Read JSON lines ``{"tokens": [...], "tags": [...]}`` (blank lines skipped).

    Raises:
        ValueError: a line is not a JSON object with a list of strings under each key, the
            lists differ in length, or the file holds no sentence.
    """
    count = 0
    for number, line in iter_lines(path, encoding):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}:{number}: not valid JSON ({err.msg} at column {err.colno})") from None
        if not isinstance(record, dict):
            raise ValueError(f"{path}:{number}: expected a JSON object with {tokens_key!r}, got {type(record).__name__}")
        tokens = _string_list(record, tokens_key, path, number)
        tags = _string_list(record, tags_key, path, number) if tags_key is not None else None
        if tags is not None and len(tags) != len(tokens):
            raise ValueError(
                f"expected {len(tokens)} tags at {path}:{number} (one per token), got {len(tags)}"
            )
        count += 1
        yield Sentence(tuple(tokens), tuple(tags) if tags is not None else None, f"{path}:{number}")
    if count == 0:
        raise ValueError(f"{path} holds no sentences; expected one JSON object per line")


def _string_list(record: dict, key: str, path: PathLike, number: int) -> List[str]:
    if key not in record:
        raise ValueError(f"{path}:{number}: missing key {key!r}; found keys {sorted(record)}")
    value = record[key]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{path}:{number}: expected {key!r} to be a list of strings, got {json.dumps(value)[:80]}")
    return value
