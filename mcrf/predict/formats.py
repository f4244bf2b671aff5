"""Output writers of ``mcrf predict``: ``conll``, ``jsonl`` and inline ``text`` markup.

Each writer takes one :class:`~mcrf.models.decoding.Prediction` (the input sentence and its
``Decoded``) and a text stream, and writes exactly one record, so output stays in step with
the input (an empty input line gives an empty record):

- ``conll``: ``token<TAB>tag`` per word, then one blank line. An empty sentence is just the
  blank line, so two blank lines in a row mean an empty input line.
- ``jsonl``: one JSON object per sentence with ``text``, ``tokens``, ``tags``, ``spans`` and
  ``token_confidences``. Each span has ``label``, ``start``/``end`` (word indices, end
  exclusive), ``char_start``/``char_end`` (offsets into ``text``: ``text[char_start:char_end]``
  is the span text), ``text`` and ``confidence``.
- ``text``: the original line with entities marked as ``[John Smith]{PER}``, spacing kept.
- ``html``: one self-contained page (``mcrf.predict.html``): entities highlighted by type, tokens shaded
  by confidence, a table of spans; ``header("html")`` is written before the first record.

Sentences read from CoNLL files have no original line; their ``text`` is the words joined
by single spaces and offsets refer to that string.

Line safety: one input line gives one record, whatever characters it holds, for readers that
split lines on any Unicode line break (Python's ``str.splitlines``, editors, JavaScript).
``jsonl`` escapes U+2028, U+2029 and U+0085 (JSON already escapes CR, VT, FF and the other
control characters), so ``text`` keeps the line exactly and offsets still slice it. ``text``
and ``conll`` echo the words and the line with every line-break character (CR, VT, FF, FS, GS,
RS, U+0085, U+2028, U+2029) replaced by one space each: the same length, so the markup sits
where the offsets say.
"""

from __future__ import annotations

import json
from typing import Callable, Dict, List, TextIO

from mcrf.errors import ConfigError
from mcrf.models.decoding import Prediction
from mcrf.predict.records import sentence_text, to_record

__all__ = ["FORMATS", "header", "one_line", "sentence_text", "to_record", "emit_conll", "emit_jsonl", "emit_text",
           "emit_html", "writer"]

#: characters ``str.splitlines`` breaks at (besides ``\n``), mapped to one space for ``text``/``conll``
_LINE_BREAKS = {ord(c): " " for c in "\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"}
#: what ``json.dumps(ensure_ascii=False)`` leaves raw although line-based readers break there
_JSON_BREAKS = {0x85: "\\u0085", 0x2028: "\\u2028", 0x2029: "\\u2029"}


def one_line(text: str) -> str:
    """``text`` with every line-break character but ``\\n`` replaced by a space (same length).

    >>> one_line("a\\u2028b\\rc")
    'a b c'
    """
    return text.translate(_LINE_BREAKS)


def emit_conll(prediction: Prediction, out: TextIO) -> None:
    """``token<TAB>tag`` lines, then a blank line (an empty sentence writes only the blank line)."""
    lines = [f"{one_line(token)}\t{tag}\n" for token, tag in zip(prediction.sentence.tokens, prediction.decoded.tags)]
    out.write("".join(lines) + "\n")


def emit_jsonl(prediction: Prediction, out: TextIO) -> None:
    """One JSON object per line (non-ASCII kept as is but the line separators U+0085/U+2028/U+2029)."""
    out.write(json.dumps(to_record(prediction), ensure_ascii=False).translate(_JSON_BREAKS) + "\n")


def emit_text(prediction: Prediction, out: TextIO) -> None:
    """The line with inline markup ``[words]{LABEL}``, keeping the original spacing."""
    sentence = prediction.sentence
    text, offsets = sentence_text(sentence.tokens, sentence.text, sentence.offsets)
    pieces: List[str] = []
    position = 0
    for label, start, end, _ in prediction.decoded.spans:
        char_start, char_end = offsets[start][0], offsets[end - 1][1]
        pieces += [text[position:char_start], "[", text[char_start:char_end], "]{", label, "}"]
        position = char_end
    pieces.append(text[position:])
    out.write(one_line("".join(pieces)) + "\n")


def emit_html(prediction: Prediction, out: TextIO) -> None:
    """One record of a self-contained HTML page (``mcrf.predict.html``; the page starts with ``header("html")``)."""
    from mcrf.predict.html import emit_record as write

    write(prediction, out)


FORMATS: Dict[str, Callable[[Prediction, TextIO], None]] = {
    "conll": emit_conll,
    "jsonl": emit_jsonl,
    "text": emit_text,
    "html": emit_html,
}


def header(name: str, model: str = "") -> str:
    """What a file of format ``name`` starts with before its first record ("" but for ``html``, whose page
    names ``model``: ``mcrf.predict.html.describe_model``)."""
    from mcrf.predict.html import html_header

    return html_header(model=model) if name == "html" else ""


def writer(name: str) -> Callable[[Prediction, TextIO], None]:
    """The writer of output format ``name``.

    Raises:
        ConfigError: for an unknown format (lists the valid ones).
    """
    if name not in FORMATS:
        raise ConfigError(f"unknown output format {name!r}; expected one of {', '.join(FORMATS)}")
    return FORMATS[name]
