"""One prediction as the JSON record of ``mcrf predict --format jsonl`` (also the HTML page's data and ``mcrf serve``'s answer).

Its own module so that the output formats (``mcrf.predict.formats``) and the HTML page (``mcrf.predict.html``)
both build on it without importing each other.
"""

from __future__ import annotations

from typing import Dict, List, Tuple

from mcrf.models.decoding import Prediction

__all__ = ["Offsets", "sentence_text", "to_record"]

Offsets = Tuple[Tuple[int, int], ...]


def sentence_text(tokens: Tuple[str, ...], text: "str | None", offsets: "Offsets | None") -> Tuple[str, Offsets]:
    """The string a sentence's character offsets refer to, and those offsets.

    Args:
        tokens: the words.
        text: the original line (raw-text input) or ``None``.
        offsets: ``(start, end)`` of each word in ``text``, or ``None``.

    Returns:
        ``(text, offsets)``: the original ones when both are known, else the words joined by
        single spaces with the offsets of each word in that string.
    """
    if text is not None and offsets is not None:
        return text, offsets
    spans: List[Tuple[int, int]] = []
    position = 0
    for token in tokens:
        spans.append((position, position + len(token)))
        position += len(token) + 1
    return " ".join(tokens), tuple(spans)


def to_record(prediction: Prediction, digits: int = 4) -> Dict[str, object]:
    """The ``jsonl`` object of one prediction (see the module docstring for the keys).

    Args:
        prediction: sentence and its decoded tags.
        digits: decimals kept of the confidences.
    """
    sentence, decoded = prediction.sentence, prediction.decoded
    text, offsets = sentence_text(sentence.tokens, sentence.text, sentence.offsets)
    spans = []
    for label, start, end, confidence in decoded.spans:
        char_start, char_end = offsets[start][0], offsets[end - 1][1]
        spans.append({
            "label": label, "start": start, "end": end, "char_start": char_start, "char_end": char_end,
            "text": text[char_start:char_end], "confidence": round(float(confidence), digits),
        })
    return {
        "text": text,
        "tokens": list(sentence.tokens),
        "tags": list(decoded.tags),
        "spans": spans,
        "token_confidences": [round(float(c), digits) for c in decoded.token_confidence],
    }
