"""``mcrf serve`` run for real: a subprocess on a free loopback port, driven over HTTP with httpx.

One server (module fixture) serves the session's sample model; every endpoint and bad input is
exercised against it, a bounded load test (16 clients x 50 requests) compares every answer with
``mcrf predict --format jsonl`` and reads the micro-batch sizes from ``/stats``, and connections
are dropped mid-request. A second server checks SIGTERM: a request already received is answered,
then the process exits 0.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import threading
import time

import pytest

from extras import extra

httpx = extra("httpx", 'pip install "mcrf[serve]"')  # skips the module where the serve extra is missing
extra("fastapi", 'pip install "mcrf[serve]"')
extra("uvicorn", 'pip install "mcrf[serve]"')

from mcrf import __version__  # noqa: E402
from mcrf.data import load_corpus  # noqa: E402

from serving import ENV, ROOT, ServerProcess, offline_records, same_records  # noqa: E402

LINES = ["John Smith flew to  Paris with Acme Corp .", "", "\tMaria Rossi visited Kyoto, Japan.",
         "São Paulo  hosts the European Union summit", "Anna Weber </script><b>met</b> Helga Eriksen in Oslo ."]


@pytest.fixture(scope="module")
def server(sample_model, tmp_path_factory):
    process = ServerProcess(sample_model, tmp_path_factory.mktemp("serve") / "server.log",
                            "--max-body", "20000", "--max-words", "50", "--max-wait-ms", "10")
    yield process
    code = process.terminate()
    assert code == 0, process.text()
    assert "Traceback" not in process.text()


@pytest.fixture(scope="module")
def pool():
    """40 distinct test sentences of the sample corpus as raw text lines."""
    return [" ".join(sentence.tokens) for sentence in load_corpus("sample").splits["test"][:40]]


def post(server, payload=None, content=None, headers=None):
    body = content if content is not None else json.dumps(payload).encode("utf-8")
    return httpx.post(server.url + "/predict", content=body, timeout=30,
                      headers={"Content-Type": "application/json", **(headers or {})})


# ---------------------------------------------------------------------------- endpoints
def test_health_info_and_the_page(server, sample_model):
    assert httpx.get(server.url + "/health").json() == {"status": "ok"}
    info = httpx.get(server.url + "/info").json()
    config = json.loads((sample_model / "config.json").read_text())
    assert info["labels"] == config["labels"] and info["scheme"] == config["scheme"]
    assert (info["encoder"], info["decoder"], info["mcrf_version"]) == ("bilstm", "mcrf", __version__)
    assert (info["max_words"], info["max_body"]) == (50, 20000)
    page = httpx.get(server.url + "/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "<textarea" in page.text and "<button" in page.text and "mcrfRender" in page.text
    assert "src=" not in page.text and "href=" not in page.text and "//cdn" not in page.text  # nothing fetched


def test_predict_answers_the_records_of_mcrf_predict_jsonl(server, sample_model, tmp_path):
    offline = offline_records(sample_model, LINES, tmp_path)
    assert same_records(post(server, {"texts": LINES}).json()["results"], offline)
    for line, record in zip(LINES, offline):
        assert same_records(post(server, {"text": line}).json()["results"], [record])
    assert any(record["spans"] for record in offline)
    words = [line.split() for line in LINES if line.strip()]
    pretokenized = offline_records(sample_model, [" ".join(w) for w in words], tmp_path, "pretokenized")
    assert same_records(post(server, {"tokens": words}).json()["results"], pretokenized)


def test_docs_is_an_offline_page_naming_the_schema_and_the_demo(server):
    """/docs answered 404 while /openapi.json was 200 (FastAPI's Swagger page needs a CDN, so it was off)."""
    page = httpx.get(server.url + "/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'href="openapi.json"' in page.text and 'href="./"' in page.text
    assert "POST /predict" in page.text and "GET /info" in page.text and "&quot;inputs&quot;" in page.text
    assert "src=" not in page.text and "//cdn" not in page.text and "<script" not in page.text  # nothing fetched
    assert httpx.get(server.url + "/openapi.json").status_code == 200


def test_docs_shows_route_descriptions_without_docstring_backticks():
    """/docs showed ``{&quot;status&quot;: &quot;ok&quot;}`` with the docstring's RST backticks (probe)."""
    from mcrf.serve.docs import docs_page

    page = docs_page({"paths": {"/health": {"get": {"description": 'Liveness: ``{"status": "ok"}``.'}},
                                "/predict": {"post": {"description": "As `mcrf predict --format jsonl` writes it."}}}})
    assert "<code>{&quot;status&quot;: &quot;ok&quot;}</code>" in page and "`" not in page
    assert "<code>mcrf predict --format jsonl</code>" in page


def test_the_hugging_face_inputs_body_is_an_alias_of_text_and_texts(server):
    """``{"inputs": ...}``, the body of Hugging Face's inference API, was 422 (an unknown field)."""
    assert post(server, {"inputs": LINES[0]}).json() == post(server, {"text": LINES[0]}).json()
    assert post(server, {"inputs": LINES}).json() == post(server, {"texts": LINES}).json()
    for body, field in (({"inputs": 5}, "inputs"), ({"inputs": ["a", 3]}, "inputs"), ({"inputs": "a", "text": "b"}, None)):
        answer = post(server, body)
        assert answer.status_code == 422, answer.text
        if field:
            assert any(entry["loc"][1] == field for entry in answer.json()["detail"])


def test_empty_inputs_give_empty_results(server):
    answer = post(server, {"text": ""})
    assert answer.status_code == 200
    assert answer.json() == {"results": [{"text": "", "tokens": [], "tags": [], "spans": [],
                                          "token_confidences": []}]}
    assert post(server, {"texts": []}).json() == {"results": []}
    assert post(server, {"tokens": [[]]}).json()["results"][0]["tokens"] == []


@pytest.mark.parametrize("body, field", [
    (b'{"text": "unterminated', []),
    (b"[1, 2]", []),
    (b'{"text": 5}', ["text"]),
    (b'{"texts": ["fine", 3]}', ["texts", 1]),
    (b'{"texts": "not a list"}', ["texts"]),
    (b'{"tokens": [["New York"]]}', ["tokens"]),
    (b'{"tokens": [[""]]}', ["tokens"]),
    (b'{"txt": "typo"}', ["txt"]),
    (b"{}", []),
    (b'{"text": "a", "texts": ["b"]}', []),
    (b'{"text": "lone \\ud800 surrogate"}', []),  # not valid JSON text for pydantic
], ids=["malformed", "array", "int", "item", "string-for-list", "space-in-word", "empty-word", "unknown-field",
        "nothing", "two-inputs", "surrogate"])
def test_wrong_json_is_422_naming_the_field(server, body, field):
    answer = post(server, content=body)
    assert answer.status_code == 422, answer.text
    detail = answer.json()["detail"]
    assert detail and all(entry["loc"][0] == "body" and entry["msg"] for entry in detail)
    if field:
        assert any(entry["loc"][1:1 + len(field)] == field for entry in detail), detail


def test_limits_and_bad_bytes_are_answered(server):
    big = post(server, {"text": "word " * 5000})  # > 20,000 bytes
    assert big.status_code == 413 and "20000" in big.json()["detail"]
    long = post(server, {"texts": ["short one", " ".join(["w"] * 51)]})
    assert long.status_code == 413 and "text 1 has 51 words" in long.json()["detail"] and "50" in long.json()["detail"]
    assert post(server, {"tokens": [["w"] * 51]}).status_code == 413
    bad = post(server, content=b'{"text": "caf\xe9"}')
    assert bad.status_code == 400 and "UTF-8" in bad.json()["detail"]
    chunked = httpx.post(server.url + "/predict", content=iter([b'{"text": "', b"x" * 30000, b'"}']), timeout=30)
    assert chunked.status_code == 413  # no Content-Length: counted while reading
    assert httpx.get(server.url + "/health").json() == {"status": "ok"}
    assert post(server, {"text": "John Smith flew to Paris ."}).status_code == 200


# ---------------------------------------------------------------------------- load
def test_load_16_clients_x_50_requests_all_equal_to_offline_predict(server, sample_model, pool, tmp_path):
    expected = dict(zip(pool, offline_records(sample_model, pool, tmp_path)))
    before = httpx.get(server.url + "/stats").json()
    failures, mismatches, latencies = [], [], []

    async def client(index: int, http: "httpx.AsyncClient") -> None:
        for step in range(50):
            text = pool[(index * 7 + step) % len(pool)]
            started = time.perf_counter()
            try:
                answer = await http.post("/predict", json={"text": text})
            except httpx.HTTPError as error:
                failures.append(repr(error))
                continue
            latencies.append(time.perf_counter() - started)
            if answer.status_code != 200:
                failures.append((answer.status_code, answer.text))
            elif not same_records(answer.json()["results"], [expected[text]]):
                mismatches.append(text)

    async def main() -> None:
        limits = httpx.Limits(max_connections=16)
        async with httpx.AsyncClient(base_url=server.url, timeout=60, limits=limits) as http:
            await asyncio.wait_for(asyncio.gather(*(client(i, http) for i in range(16))), timeout=300)

    asyncio.run(main())
    assert failures == [] and mismatches == [] and len(latencies) == 800
    after = httpx.get(server.url + "/stats").json()
    assert after["sentences"] - before["sentences"] == 800
    served = {int(size): count - int(before["batch_sizes"].get(size, 0)) for size, count in after["batch_sizes"].items()}
    served = {size: count for size, count in served.items() if count}
    print("micro-batch sizes served (sentences: batches):", served)
    assert sum(size * count for size, count in served.items()) == 800
    assert max(served) > 1 and sum(served.values()) < 800  # requests really were tagged together
    assert max(served) <= 32


# ---------------------------------------------------------------------------- dropped connections
def test_connections_dropped_mid_request_do_not_stop_the_server(server, pool):
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    body = json.dumps({"texts": pool * 4}).encode("utf-8")  # 160 sentences, under --max-body
    assert len(body) < 20000
    head = b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
    # closed mid-body; closed right after the request; closed while the model works on it
    for cut, wait in ((len(body) // 2, 0), (len(body), 0), (len(body), 0.05)):
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(head % len(body) + body[:cut])
            time.sleep(wait)
    time.sleep(0.5)
    assert httpx.get(server.url + "/health").json() == {"status": "ok"}
    answer = post(server, {"texts": pool[:3]})
    assert answer.status_code == 200 and len(answer.json()["results"]) == 3


# ---------------------------------------------------------------------------- shutdown
def test_sigterm_answers_requests_already_received_then_exits_0(sample_model, tmp_path):
    # a long batching window: the request is still waiting for company when SIGTERM comes
    process = ServerProcess(sample_model, tmp_path / "server.log", "--max-wait-ms", "1500")
    answers = []
    thread = threading.Thread(target=lambda: answers.append(post(process, {"text": "John Smith flew to Paris ."})))
    thread.start()
    time.sleep(0.5)
    assert process.terminate() == 0, process.text()
    thread.join(30)
    assert [answer.status_code for answer in answers] == [200]
    assert answers[0].json()["results"][0]["tokens"] == ["John", "Smith", "flew", "to", "Paris", "."]
    assert "Traceback" not in process.text() and "stopped" in process.text()


def test_serve_usage_errors(sample_model, tmp_path):
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    with busy:
        done = subprocess.run([sys.executable, "-m", "mcrf", "serve", "--model", str(sample_model), "--port",
                               str(busy.getsockname()[1])], capture_output=True, text=True, cwd=ROOT, env=ENV, timeout=120)
    # a ConfigError: exit 2 once the CLI maps the UserError family onto exit codes, 1 before
    assert done.returncode in (1, 2) and "cannot listen on 127.0.0.1" in done.stderr and "--port" in done.stderr
    done = subprocess.run([sys.executable, "-m", "mcrf", "serve", "--model", str(sample_model), "--max-batch", "64",
                           "--max-queue", "8"], capture_output=True, text=True, cwd=ROOT, env=ENV, timeout=120)
    assert done.returncode == 2 and "max_queue (8) must be at least max_batch (64)" in done.stderr
    done = subprocess.run([sys.executable, "-m", "mcrf", "serve", "--model", str(tmp_path / "none")],
                          capture_output=True, text=True, cwd=ROOT, env=ENV, timeout=120)
    assert done.returncode == 1 and "Traceback" not in done.stderr


def test_quantize_int8_serves_what_predict_quantize_int8_writes(tmp_path):
    import torch

    import tiny_models as tm
    from mcrf.models import Tagger, TaggerConfig
    from serving import offline_records_with

    # int8 quantizes Linear layers: a tiny BERT tagger (the BiLSTM sample model has none and is refused)
    torch.manual_seed(0)
    sample_model = tmp_path / "model"
    Tagger.build(TaggerConfig(encoder=str(tm.make_bert_dir(tmp_path / "bert")), labels=tm.TOY_LABELS,
                              scheme="BIO")).save_pretrained(sample_model)
    # dynamic int8 quantizes activations with scales taken over the whole forward pass, so the answers depend on
    # what is tagged together: one sentence per pass on both sides (sequential requests, --batch-size 1)
    process = ServerProcess(sample_model, tmp_path / "server.log", "--quantize", "int8")
    try:
        answers = [post(process, {"text": line}) for line in LINES]
    finally:
        assert process.terminate() == 0, process.text()
    assert [answer.status_code for answer in answers] == [200] * len(LINES)
    offline = offline_records_with(sample_model, LINES, tmp_path, "--quantize", "int8", "--batch-size", "1")
    assert same_records([answer.json()["results"][0] for answer in answers], offline)
    done = subprocess.run([sys.executable, "-m", "mcrf", "serve", "--model", str(sample_model), "--quantize", "int8",
                           "--device", "cuda"], capture_output=True, text=True, cwd=ROOT, env=ENV, timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr
