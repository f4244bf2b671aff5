"""The demo page and the ``--format html`` page in a real browser: headless Chromium through Selenium.

Types sentences into the page of a running ``mcrf serve``, clicks the button and reads the
highlighted spans, their types, the token confidences and the span table from the DOM; they must
be those of ``mcrf predict --format jsonl`` for the same lines. A screenshot is saved as a test
artifact (``$MCRF_ARTIFACTS/serve.png``, else the test's tmp folder; ``docs/serve.png`` is one).

Marked ``browser``: they run in the default suite where Chromium, its driver and Selenium are
installed and skip with a message elsewhere; CI installs Debian's ``chromium`` and
``chromium-driver`` and runs ``python -m pytest -m browser``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from extras import extra

pytestmark = pytest.mark.browser

if os.environ.get("MCRF_REQUIRE_BROWSER"):  # CI installed Chromium: these tests must run, not skip
    from selenium import webdriver
else:
    webdriver = extra("selenium.webdriver")
extra("fastapi", 'pip install "mcrf[serve]"')

from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions  # noqa: E402
from selenium.webdriver.support.wait import WebDriverWait  # noqa: E402

from mcrf.cli.app import main  # noqa: E402

from serving import ServerProcess, offline_records  # noqa: E402

LINES = ["Anna Weber flew to Berlin on Monday for talks with John Smith .",
         "Maria Rossi visited the Acme Corp office in São Paulo ."]


def _find(*names: str):
    return next((path for path in map(shutil.which, names) if path), None)


@pytest.fixture(scope="module")
def browser():
    chromium = _find("chromium", "chromium-browser", "google-chrome", "chrome")
    driver_path = _find("chromedriver")
    if not chromium or not driver_path:
        (pytest.fail if os.environ.get("MCRF_REQUIRE_BROWSER") else pytest.skip)("no Chromium here (need chromium and chromedriver on PATH; Debian: apt-get install chromium "
                    "chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1100,760", "--lang=en-US"):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=driver_path))
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def server(sample_model, tmp_path_factory):
    process = ServerProcess(sample_model, tmp_path_factory.mktemp("browser") / "server.log")
    yield process
    assert process.terminate() == 0, process.text()


def artifact(tmp_path: Path, name: str) -> Path:
    folder = Path(os.environ.get("MCRF_ARTIFACTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder / name


def rendered(driver) -> list:
    """Per rendered record: the highlighted spans (text, type, shown confidence), token titles, table rows."""
    return driver.execute_script("""
        return [...document.querySelectorAll('section.mcrf-record')].map(section => ({
          marks: [...section.querySelectorAll('mark.mcrf-ent')].map(mark => [
            [...mark.childNodes].filter(n => !(n.classList && n.classList.contains('mcrf-label')))
                                .map(n => n.textContent).join(''),
            mark.dataset.label, mark.querySelector('.mcrf-label').textContent]),
          tokens: [...section.querySelectorAll('.mcrf-tok')].map(t => [t.textContent, t.dataset.tag, t.title]),
          rows: [...section.querySelectorAll('table.mcrf-spans tbody tr')].map(
            row => [...row.cells].map(cell => cell.textContent)),
          text: (() => {  // the line as shown, without the type badges
            const line = section.querySelector('.mcrf-text').cloneNode(true);
            line.querySelectorAll('.mcrf-label').forEach(badge => badge.remove());
            return line.textContent; })(),
        }));""")


def expected(records: list) -> list:
    return [{
        "marks": [[span["text"], span["label"], span["label"]] for span in record["spans"]],
        "tokens": [[token, tag, f"{tag}  confidence {confidence:.4f}"]
                   for token, tag, confidence in zip(record["tokens"], record["tags"], record["token_confidences"])],
        "rows": [[span["text"], span["label"], f"{span['confidence']:.4f}", f"{span['char_start']}–{span['char_end']}"]
                 for span in record["spans"]],
        "text": record["text"],
    } for record in records]


def test_typing_and_clicking_highlights_the_predicted_spans(browser, server, sample_model, tmp_path):
    records = offline_records(sample_model, LINES, tmp_path)
    assert sum(len(record["spans"]) for record in records) >= 2  # something to highlight
    browser.get(server.url + "/")
    box = browser.find_element(By.ID, "mcrf-input")
    box.clear()
    box.send_keys("\n".join(LINES))
    browser.find_element(By.ID, "mcrf-submit").click()
    WebDriverWait(browser, 60).until(expected_conditions.text_to_be_present_in_element(
        (By.ID, "mcrf-status"), "2 line(s) tagged"))
    shown = rendered(browser)
    # confidences may differ in the 4th decimal between batch compositions (see serving.same_record)
    assert [{**r, "tokens": [t[:2] for t in r["tokens"]], "rows": [row[:2] + row[3:] for row in r["rows"]]}
            for r in shown] == [{**r, "tokens": [t[:2] for t in r["tokens"]],
                                 "rows": [row[:2] + row[3:] for row in r["rows"]]} for r in expected(records)]
    for section in shown:
        assert all(title.startswith(f"{tag}  confidence ") for _, tag, title in section["tokens"])
    model = browser.find_element(By.ID, "mcrf-model").text
    assert "bilstm + mcrf (BIO)" in model
    path = artifact(tmp_path, "serve.png")
    assert browser.save_screenshot(str(path)) and path.stat().st_size > 10_000
    print(f"screenshot: {path}")


def test_a_bad_request_shows_the_error_and_the_page_keeps_working(browser, server):
    browser.get(server.url + "/")
    box = browser.find_element(By.ID, "mcrf-input")
    box.clear()
    box.send_keys(" ".join(["word"] * 1001))  # over the default --max-words 1000
    browser.find_element(By.ID, "mcrf-submit").click()
    WebDriverWait(browser, 60).until(expected_conditions.text_to_be_present_in_element(
        (By.ID, "mcrf-status"), "error: text 0 has 1001 words"))
    box.clear()
    box.send_keys(LINES[0])
    browser.find_element(By.ID, "mcrf-submit").click()
    WebDriverWait(browser, 60).until(expected_conditions.text_to_be_present_in_element(
        (By.ID, "mcrf-status"), "1 line(s) tagged"))


def test_the_predict_html_page_renders_the_same_spans(browser, sample_model, tmp_path):
    records = offline_records(sample_model, LINES + ["", "Anna </script><b>bold</b> Weber"], tmp_path)
    page = tmp_path / "predictions.html"
    assert main(["predict", str(tmp_path / "offline_text.txt"), "--model", str(sample_model), "--format", "html",
                 "-o", str(page), "--quiet"]) == 0
    browser.get(page.as_uri())
    WebDriverWait(browser, 30).until(lambda driver: len(rendered(driver)) == len(records))
    assert rendered(browser) == expected(records)  # same process, same batches: exact
    assert browser.find_elements(By.TAG_NAME, "b") == []  # text is shown as text, never as markup
    browser.save_screenshot(str(artifact(tmp_path, "predict-html.png")))
