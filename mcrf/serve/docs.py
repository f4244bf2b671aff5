"""``GET /docs`` of ``mcrf serve``: the routes and the request bodies on one page, made from the app's
OpenAPI schema and served offline.

FastAPI's own ``/docs`` loads Swagger UI from a CDN, which a server without internet (or a user
behind a firewall) cannot reach, so mcrf turns it off and serves this plain page instead: every route
with its one-line description, the bodies ``POST /predict`` takes, and links to ``/openapi.json``
(the full schema) and ``/`` (the demo page). No script, nothing fetched.
"""

from __future__ import annotations

import html
import json
import re
from typing import Any, Dict

from mcrf.predict.html import asset

__all__ = ["BODIES", "docs_page"]

#: the bodies ``POST /predict`` accepts (its handler reads the raw request, so the schema cannot show them)
BODIES = (
    ("one text", {"text": "Anna Weber flew to Berlin ."}),
    ("several texts", {"texts": ["John Smith .", "Maria Rossi visited Kyoto ."]}),
    ("pre-tokenized words", {"tokens": [["New", "York", "is", "big"]]}),
    ("the Hugging Face inference body (a string or a list of strings)", {"inputs": "Anna Weber flew to Berlin ."}),
)


def _code(text: str) -> str:
    """The docstring markup of a route's description (````x```` or ```x```) as ``<code>``, not literal backticks."""
    return re.sub(r"``(.+?)``|`(.+?)`", lambda m: f"<code>{m.group(1) or m.group(2)}</code>", text)


def docs_page(schema: Dict[str, Any]) -> str:
    """The page for the OpenAPI ``schema`` (``app.openapi()``)."""
    rows = []
    for path, methods in schema.get("paths", {}).items():
        for method, operation in methods.items():
            text = operation.get("description") or operation.get("summary") or ""
            rows.append(f"<tr><td><code>{html.escape(method.upper())} {html.escape(path)}</code></td>"
                        f"<td>{_code(html.escape(text.strip()))}</td></tr>")
    bodies = "".join(f"<li>{html.escape(what)}: <code>{html.escape(json.dumps(body, ensure_ascii=False))}</code></li>"
                     for what, body in BODIES)
    title = html.escape(f"{schema.get('info', {}).get('title', 'mcrf')} {schema.get('info', {}).get('version', '')}")
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{title}: API</title>\n<style>\n{asset('page.css')}</style>\n</head>\n<body>\n"
            f"<h1>{title}: API</h1>\n<p class=\"mcrf-sub\">The full schema: <a href=\"openapi.json\">/openapi.json</a>; "
            "the demo page: <a href=\"./\">/</a>.</p>\n"
            "<table class=\"mcrf-spans\"><thead><tr><th>route</th><th>what it does</th></tr></thead><tbody>"
            + "".join(rows) + "</tbody></table>\n<h2>POST /predict bodies</h2>\n<p>Exactly one of:</p>\n"
            f"<ul>{bodies}</ul>\n<p>The answer: <code>{{\"results\": [record, ...]}}</code>, one record per text "
            "(tokens, tags, spans with character offsets, confidences).</p>\n</body>\n</html>\n")
