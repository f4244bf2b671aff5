"""Self-contained HTML views of predictions: the ``mcrf serve`` demo page and ``mcrf predict --format html``.

Both use one renderer, ``mcrf/predict/page/page.js`` with ``page.css`` (packaged files read with
``importlib.resources``, inlined into the page: no CDN, no build step, nothing fetched). It draws
each record — the object ``mcrf predict --format jsonl`` writes — with entities highlighted by
type, every token shaded by its marginal confidence (exact value in its tooltip), and a table
of the spans.

``mcrf predict --format html`` streams: ``html_header()`` (the page head with the inlined CSS
and JavaScript, and the model's name) is written once, then ``emit_record`` writes each record as a
JSON data element that the script renders when the page has loaded, followed by the same record
rendered here as plain HTML inside ``<noscript>`` (the text with its entities marked, and the table
of spans), so the page shows the spans with JavaScript off too. HTML allows the closing
``</body></html>`` tags to be omitted, so the file is a complete page after every record.
"""

from __future__ import annotations

import html
import json
from importlib.resources import files
from typing import TextIO

from mcrf.models.decoding import Prediction
from mcrf.predict.records import to_record

__all__ = ["asset", "html_header", "emit_record", "demo_page", "data_element", "static_record", "describe_model"]


def asset(name: str) -> str:
    """The text of a packaged page file (``page.css``, ``page.js``, ``demo.html``).

    Raises:
        FileNotFoundError: the file is not in the installed package (a broken install).
    """
    return (files("mcrf.predict") / "page" / name).read_text(encoding="utf-8")


def _head(title: str) -> str:
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            f"<title>{html.escape(title)}</title>\n<style>\n{asset('page.css')}</style>\n"
            f"<script>\n{asset('page.js')}</script>\n</head>\n<body>\n")


def describe_model(tagger, where: str) -> str:
    """One line naming a model for a page: where it was loaded from and what it is."""
    config = tagger.config
    return (f"{where} ({config.encoder} encoder, {config.decoder} decoder, {config.scheme} tags, "
            f"saved by mcrf {config.mcrf_version})")


def html_header(title: str = "mcrf predictions", model: str = "") -> str:
    """The start of a ``--format html`` page: head with inlined CSS/JS, the model's name (``describe_model``)
    when given, and the results container."""
    named = f"<p class=\"mcrf-sub mcrf-model\">Model: {html.escape(model)}</p>\n" if model else ""
    return (_head(title) + f"<h1>{html.escape(title)}</h1>\n{named}<p class=\"mcrf-sub\">Entities are highlighted by type; "
            "a token's shading grows as the model's marginal confidence in its tag falls; hover a token for its "
            "tag and confidence.</p>\n<div id=\"mcrf-results\"></div>\n")


def demo_page() -> str:
    """The demo page of ``mcrf serve`` (``GET /``): a text box, a button, and the same renderer."""
    return _head("mcrf") + asset("demo.html") + "</body>\n</html>\n"


def data_element(record: dict) -> str:
    """A record as ``<script type="application/json" class="mcrf-data">`` (``<`` escaped: no early end tag)."""
    payload = json.dumps(record, ensure_ascii=False).replace("<", "\\u003c")
    return f"<script type=\"application/json\" class=\"mcrf-data\">{payload}</script>\n"


def static_record(record: dict) -> str:
    """A record as plain HTML, no script needed: its text with each entity marked and labelled, and the
    table of its spans (what ``page.js`` draws, without the per-token confidence shading)."""
    text, pieces, position = record["text"], [], 0
    rows = []
    for span in record["spans"]:
        start, end, label = span["char_start"], span["char_end"], html.escape(span["label"])
        pieces.append(html.escape(text[position:start]))
        pieces.append(f"<mark class=\"mcrf-ent\" data-label=\"{label}\">{html.escape(text[start:end])}"
                      f"<span class=\"mcrf-label\">{label}</span></mark>")
        position = end
        rows.append(f"<tr><td class=\"mcrf-span-text\">{html.escape(span['text'])}</td>"
                    f"<td class=\"mcrf-span-label\">{label}</td><td class=\"mcrf-num\">{span['confidence']:.4f}</td>"
                    f"<td class=\"mcrf-num\">{start}–{end}</td></tr>")
    pieces.append(html.escape(text[position:]))
    if rows:
        table = ("<table class=\"mcrf-spans\"><thead><tr><th>entity</th><th>type</th><th>confidence</th>"
                 f"<th>characters</th></tr></thead><tbody>{''.join(rows)}</tbody></table>")
    else:
        table = f"<div class=\"mcrf-none\">{'no entities' if record['tokens'] else 'empty line'}</div>"
    return f"<section class=\"mcrf-record\"><div class=\"mcrf-text\">{''.join(pieces)}</div>{table}</section>"


def emit_record(prediction: Prediction, out: TextIO) -> None:
    """One prediction of a ``--format html`` page (after ``html_header()``): its record, rendered on load by the
    script, and as plain HTML for a reader without JavaScript."""
    record = to_record(prediction)
    out.write(data_element(record))
    out.write(f"<noscript>{static_record(record)}</noscript>\n")
