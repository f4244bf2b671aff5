"""Raw text for prediction: one sentence per line, words with character offsets.

``tokenize_line`` is a simple Unicode-aware word tokenizer:

- a word is a run of letters, digits, ``_`` and combining marks (Unicode category M, plus the
  zero-width (non-)joiners), so decomposed ``José`` or Devanagari ``हिन्दी`` stay one word;
- ``.``, ``,``, ``-`` and apostrophes (``'``, ``’``) BETWEEN two word characters stay inside the
  word: ``3.5``, ``1,200``, ``e-mail``, ``O'Neil``; contractions are never split either (``don't``
  and ``Mary's`` are one word each — no language-specific clitic rules);
- an abbreviation of single letters with dots keeps its final dot (``U.S.``, ``e.g.``); other
  words do not (``Mr.`` is ``Mr`` and ``.``: a sentence-final dot cannot be told apart);
- every other punctuation mark is a token of its own, as is each CJK character (Han, kana,
  Hangul syllables) with any combining marks after it.

The offsets index the original line (``line[start:end] == token``), so predicted spans map back
to the string.
"""

from __future__ import annotations

import io
import re
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, TextIO

from mcrf.data.readers import iter_lines, source_name
from mcrf.data.types import Sentence

_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\U00020000-\U0002fa1f"
_IS_CJK = re.compile(rf"[{_CJK}]")
#: Characters kept inside a word when a word character follows (``3.5``, ``e-mail``, ``don't``).
_INNER = frozenset(".,-'\u2019")
_JOINERS = frozenset("\u200c\u200d")  # zero-width non-joiner / joiner (Persian, Indic scripts)
_SPACE, _WORD, _MARK, _CJK_CHAR, _PUNCT = range(5)
# The same rules for ASCII-only lines (no marks, no CJK), as one regex: ~6x faster than the
# character scan. str.isspace() also holds for \x1c-\x1f, which \s does not match.
_ASCII_TOKEN = re.compile(r"\w+(?:[.,'\-]\w+)*|[^\s\x1c-\x1f]", re.ASCII)

Source = str | Path | TextIO | BinaryIO

__all__ = ["tokenize_line", "pretokenized_line", "text_lines", "read_text_lines", "read_pretokenized"]


def _kind(char: str) -> int:
    """Tokenizer class of one character."""
    if char.isspace():
        return _SPACE
    category = unicodedata.category(char)
    if category[0] == "M" or char in _JOINERS:  # before CJK: kana voicing marks are in its range
        return _MARK
    if _IS_CJK.match(char):
        return _CJK_CHAR
    if category[0] in "LN" or char == "_":
        return _WORD
    return _PUNCT


def _is_abbreviation(word: str) -> bool:
    """``U.S`` / ``e.g``: two or more single letters joined by dots."""
    parts = word.split(".")
    return len(parts) >= 2 and all(len(part) == 1 and part.isalpha() for part in parts)


def _word_end(line: str, kinds: list[int], start: int) -> int:
    """End (exclusive) of the word starting at ``start``."""
    end, n = start, len(line)
    while True:
        while end < n and kinds[end] in (_WORD, _MARK):
            end += 1
        if end + 1 < n and line[end] in _INNER and kinds[end + 1] == _WORD:
            end += 1
            continue
        break
    if end < n and line[end] == "." and _is_abbreviation(line[start:end]):
        end += 1
    return end


def _spans(line: str) -> Iterator[tuple[int, int]]:
    """``(start, end)`` of each token of ``line``."""
    return _ascii_spans(line) if line.isascii() else _scanned_spans(line)


def _ascii_spans(line: str) -> Iterator[tuple[int, int]]:
    pos = 0
    while True:
        match = _ASCII_TOKEN.search(line, pos)
        if match is None:
            return
        start, end = match.span()
        if line[end : end + 1] == "." and _is_abbreviation(match.group()):
            end += 1
        yield start, end
        pos = end


def _scanned_spans(line: str) -> Iterator[tuple[int, int]]:
    kinds = [_kind(char) for char in line]
    i, n = 0, len(line)
    while i < n:
        kind = kinds[i]
        if kind == _SPACE:
            i += 1
            continue
        start = i
        if kind in (_WORD, _MARK):
            i = _word_end(line, kinds, i)
        else:  # one CJK character or punctuation mark, with the combining marks on it
            i += 1
            while i < n and kinds[i] == _MARK:
                i += 1
        yield start, i


def tokenize_line(line: str, source: str = None) -> Sentence:
    """Split one line into words with ``(start, end)`` character offsets into ``line``.

    >>> s = tokenize_line("Mr. O'Neil visited São Paulo, the U.S. and e-mail 1,200.5 times.")
    >>> s.tokens
    ('Mr', '.', "O'Neil", 'visited', 'São', 'Paulo', ',', 'the', 'U.S.', 'and', 'e-mail', '1,200.5', 'times', '.')
    >>> s.offsets[4], s.text[slice(*s.offsets[4])]
    ((19, 22), 'São')
    >>> tokenize_line("我在北京").tokens
    ('我', '在', '北', '京')
    """
    offsets = tuple(_spans(line))
    tokens = tuple(line[start:end] for start, end in offsets)
    return Sentence(tokens, None, source, offsets, line)


def pretokenized_line(line: str, source: str = None) -> Sentence:
    """One line of whitespace-separated words (``mcrf predict --input-format pretokenized``), with offsets.

    >>> pretokenized_line("New-York 's  Mayor").offsets
    ((0, 8), (9, 11), (13, 18))
    """
    tokens, offsets = [], []
    for match in re.finditer(r"\S+", line):
        tokens.append(match.group())
        offsets.append(match.span())
    return Sentence(tuple(tokens), None, source, tuple(offsets), line)


def text_lines(source: Source, encoding: str = "utf-8") -> Iterator[tuple[str, str]]:
    """``("name:line", text)`` per line (1-based, line end removed): the one raw-text line reader.

    ``source`` is a path (read and decoded by ``mcrf.data.readers.iter_lines``, which names a bad
    byte's line), a binary stream (decoded the same way, e.g. ``sys.stdin.buffer``) or a text
    stream (already decoded; ``encoding`` unused). Used by ``read_text_lines``,
    ``read_pretokenized`` and ``mcrf predict``.

    Raises:
        TypeError: ``source`` is neither a path nor a stream.
        InputNotFound: the path does not exist.
        DataError: a line is not valid in ``encoding``.
    """
    if isinstance(source, io.TextIOBase):
        name = getattr(source, "name", "<stream>")
        for number, text in enumerate(source, start=1):
            yield f"{name}:{number}", text.rstrip("\r\n")
        return
    if not isinstance(source, (str, Path, io.IOBase)) and not hasattr(source, "readline"):
        raise TypeError(f"expected a path, a binary stream or a text stream, got {type(source).__name__}")
    name = str(source) if isinstance(source, (str, Path)) else source_name(source)
    for number, text in iter_lines(source, encoding):
        yield f"{name}:{number}", text


def read_text_lines(source: Source, encoding: str = "utf-8") -> Iterator[Sentence]:
    """Stream one :class:`Sentence` per line of raw text (tokenized by :func:`tokenize_line`).

    Empty lines give empty sentences, so output lines stay aligned with input lines.
    """
    for where, text in text_lines(source, encoding):
        yield tokenize_line(text, where)


def read_pretokenized(source: Source, encoding: str = "utf-8") -> Iterator[Sentence]:
    """Stream one :class:`Sentence` per line of whitespace-separated tokens (offsets kept).

    Empty lines give empty sentences.
    """
    for where, text in text_lines(source, encoding):
        yield pretokenized_line(text, where)
