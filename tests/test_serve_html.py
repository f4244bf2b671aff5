"""``mcrf predict --format html``: one self-contained page holding the jsonl records, and the demo page's files."""

from __future__ import annotations

import html.parser
import json
import re

from mcrf.cli.app import main
from mcrf.models import Tagger
from mcrf.predict.html import asset, data_element, demo_page, describe_model, html_header

from serving import offline_records

LINES = ["John Smith flew to  Paris with Acme Corp .", "", "Anna </script><!-- Weber --> met Helga Eriksen ."]


class Scripts(html.parser.HTMLParser):
    """The JSON data elements, the external references and the tags of a page, as a browser parses them."""

    def __init__(self) -> None:
        super().__init__()
        self.data, self.external, self.tags, self._in_data = [], [], [], False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append(tag)
        self.external += [value for key, value in attrs.items() if key in ("src", "href") and value]
        self._in_data = tag == "script" and attrs.get("class") == "mcrf-data"

    def handle_endtag(self, tag):
        self._in_data = False

    def handle_data(self, data):
        if self._in_data:
            self.data.append(json.loads(data))


def parse(page: str) -> Scripts:
    parser = Scripts()
    parser.feed(page)
    parser.close()
    return parser


def test_predict_html_is_one_self_contained_page_of_the_jsonl_records(sample_model, tmp_path, capsys):
    records = offline_records(sample_model, LINES, tmp_path)
    source = tmp_path / "offline_text.txt"
    target = tmp_path / "page.html"
    assert main(["predict", str(source), "--model", str(sample_model), "--format", "html", "-o", str(target)]) == 0
    page = target.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and page.count("<!DOCTYPE html>") == 1
    parsed = parse(page)
    assert parsed.data == records  # the records, intact, in input order (empty line included)
    assert parsed.external == [] and "http" not in page.replace("http-equiv", "")  # nothing fetched
    assert "</script><!--" not in page  # the line's own markup cannot end the data element early
    assert asset("page.css") in page and asset("page.js") in page


def test_empty_input_still_gives_a_page(sample_model, tmp_path, capsys):
    empty = tmp_path / "empty.txt"
    empty.write_text("", encoding="utf-8")
    assert main(["predict", str(empty), "--model", str(sample_model), "--format", "html"]) == 0
    out = capsys.readouterr().out
    model = describe_model(Tagger.from_pretrained(sample_model), str(sample_model))
    assert out == html_header(model=model) and parse(out).data == []


def test_the_page_shows_the_spans_without_javascript_and_names_the_model(sample_model, tmp_path, capsys):
    """The --format html page was blank without JavaScript, and did not say which model tagged it."""
    records = offline_records(sample_model, LINES, tmp_path)
    source = tmp_path / "offline_text.txt"
    assert main(["predict", str(source), "--model", str(sample_model), "--format", "html"]) == 0
    page = capsys.readouterr().out
    assert f"<p class=\"mcrf-sub mcrf-model\">Model: {html.escape(str(sample_model))} (bilstm encoder, mcrf " \
           "decoder, BIO tags, saved by mcrf " in page
    without_script = re.sub(r"<script.*?</script>", "", page, flags=re.S)  # what a browser without JS shows
    assert without_script.count("<noscript>") == len(records)
    for record in records:
        for span in record["spans"]:
            marked = (f"<mark class=\"mcrf-ent\" data-label=\"{span['label']}\">{html.escape(span['text'])}"
                      f"<span class=\"mcrf-label\">{span['label']}</span></mark>")
            assert marked in without_script
            assert f"<td class=\"mcrf-span-label\">{span['label']}</td><td class=\"mcrf-num\">" \
                   f"{span['confidence']:.4f}</td>" in without_script
    assert any(record["spans"] for record in records)
    assert "/script&gt;&lt;!-- Weber --&gt; met" in without_script  # the line's markup stays text


def test_demo_page_and_data_elements():
    page = demo_page()
    parsed = parse(page)
    assert {"textarea", "button", "form"} <= set(parsed.tags) and parsed.external == []
    record = {"text": "a </script> b", "tokens": ["a", "</script>", "b"], "tags": ["O", "O", "O"], "spans": [],
              "token_confidences": [1.0, 1.0, 1.0]}
    element = data_element(record)
    assert "</script>" not in element[:-len("</script>\n")] and parse(element).data == [record]
