"""Raw text for prediction: one sentence per line, words with character offsets.

``tokenize_line`` is a simple Unicode-aware word tokenizer: runs of word characters, each
punctuation mark on its own, and each CJK character (Han, kana, Hangul syllables) on its own.
The offsets index the original line, so predicted spans map back to the string.
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Iterator, TextIO, Union

from mcrf.data.readers import iter_lines
from mcrf.data.types import Sentence

_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\U00020000-\U0002fa1f"
_TOKEN = re.compile(rf"[{_CJK}]|[^\W{_CJK}]+|[^\w\s]")

Source = Union[str, Path, TextIO]

__all__ = ["tokenize_line", "read_text_lines", "read_pretokenized"]


def tokenize_line(line: str, source: str = None) -> Sentence:
    """Split one line into words with ``(start, end)`` character offsets into ``line``.

    >>> s = tokenize_line("Mr. O'Neil visited São Paulo, 2024.")
    >>> s.tokens
    ('Mr', '.', 'O', "'", 'Neil', 'visited', 'São', 'Paulo', ',', '2024', '.')
    >>> s.offsets[6], s.text[slice(*s.offsets[6])]
    ((19, 22), 'São')
    >>> tokenize_line("我在北京").tokens
    ('我', '在', '北', '京')
    """
    tokens, offsets = [], []
    for match in _TOKEN.finditer(line):
        tokens.append(match.group())
        offsets.append(match.span())
    return Sentence(tuple(tokens), None, source, tuple(offsets), line)


def _whitespace_sentence(line: str, source: str = None) -> Sentence:
    tokens, offsets = [], []
    for match in re.finditer(r"\S+", line):
        tokens.append(match.group())
        offsets.append(match.span())
    return Sentence(tuple(tokens), None, source, tuple(offsets), line)


def _lines(source: Source) -> Iterator[tuple]:
    """``(where, text)`` per line of a path or an open text stream (line ends removed)."""
    if isinstance(source, (str, Path)):
        for number, text in iter_lines(source):
            yield f"{source}:{number}", text
        return
    if not isinstance(source, io.IOBase) and not hasattr(source, "readline"):
        raise TypeError(f"expected a path or a text stream, got {type(source).__name__}")
    name = getattr(source, "name", "<stream>")
    for number, text in enumerate(source, start=1):
        if isinstance(text, bytes):
            raise TypeError(f"expected a text stream, got bytes from {name}; open the file in text mode")
        yield f"{name}:{number}", text.rstrip("\r\n")


def read_text_lines(source: Source) -> Iterator[Sentence]:
    """Stream one :class:`Sentence` per line of raw text (tokenized by :func:`tokenize_line`).

    Empty lines give empty sentences, so output lines stay aligned with input lines.
    """
    for where, text in _lines(source):
        yield tokenize_line(text, where)


def read_pretokenized(source: Source) -> Iterator[Sentence]:
    """Stream one :class:`Sentence` per line of whitespace-separated tokens (offsets kept).

    Empty lines give empty sentences.
    """
    for where, text in _lines(source):
        yield _whitespace_sentence(text, where)
