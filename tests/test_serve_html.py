"""``mcrf predict --format html``: one self-contained page holding the jsonl records, and the demo page's files."""

from __future__ import annotations

import html.parser
import json

from mcrf.cli.app import main
from mcrf.predict.html import asset, data_element, demo_page, html_header

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
    assert out == html_header() and parse(out).data == []


def test_demo_page_and_data_elements():
    page = demo_page()
    parsed = parse(page)
    assert {"textarea", "button", "form"} <= set(parsed.tags) and parsed.external == []
    record = {"text": "a </script> b", "tokens": ["a", "</script>", "b"], "tags": ["O", "O", "O"], "spans": [],
              "token_confidences": [1.0, 1.0, 1.0]}
    element = data_element(record)
    assert "</script>" not in element[:-len("</script>\n")] and parse(element).data == [record]
