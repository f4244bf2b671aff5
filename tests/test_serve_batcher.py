"""The micro-batcher and the app's failure answers, in process.

``MicroBatcher`` with a recording ``tag`` function (what gets batched together, the limits,
cancellation, a failing request among good ones, draining on stop); the app in a uvicorn thread
with a tagger that fails on one word (500, logged, the server goes on) or blocks (503 with
Retry-After when the queue is full); ``import mcrf`` and the CLI parser load no FastAPI.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time
from concurrent.futures import CancelledError

import pytest

from mcrf.data.text import tokenize_line
from mcrf.serve.batcher import MicroBatcher, QueueFull, tag_records
from mcrf.serve.config import ServeConfig

from serving import ROOT


def sentences(*texts):
    return [tokenize_line(text) for text in texts]


class Recorder:
    """A ``tag`` function that records each batch's texts; fails on BOOM, waits while ``gate`` is closed."""

    def __init__(self) -> None:
        self.batches = []
        self.gate = threading.Event()
        self.gate.set()

    def __call__(self, tagger, batch, batch_size):
        self.gate.wait(30)
        self.batches.append([s.text for s in batch])
        if any("BOOM" in s.tokens for s in batch):
            raise RuntimeError("exploded on BOOM\nsecond line")
        return [{"text": s.text} for s in batch]


def test_requests_queued_together_are_one_batch_and_max_batch_is_kept():
    recorder = Recorder()
    batcher = MicroBatcher(None, max_batch=4, max_wait_ms=50, max_queue=100, tag=recorder)
    futures = [batcher.submit(sentences(f"s{i}")) for i in range(6)] + [batcher.submit(sentences("a", "b", "c"))]
    batcher.start()
    assert [f.result(10) for f in futures[:2]] == [[{"text": "s0"}], [{"text": "s1"}]]
    assert futures[6].result(10) == [{"text": "a"}, {"text": "b"}, {"text": "c"}]
    batcher.stop(10)
    assert recorder.batches == [["s0", "s1", "s2", "s3"], ["s4", "s5"], ["a", "b", "c"]]
    stats = batcher.stats()
    assert stats["batch_sizes"] == {"2": 1, "3": 1, "4": 1} and stats["requests_per_batch"] == {"1": 1, "2": 1, "4": 1}
    assert stats["sentences"] == 9 and stats["queued_sentences"] == 0


def test_a_lone_request_waits_at_most_max_wait_ms():
    recorder = Recorder()
    batcher = MicroBatcher(None, max_batch=32, max_wait_ms=200, max_queue=100, tag=recorder)
    batcher.start()
    started = time.monotonic()
    first = batcher.submit(sentences("one"))
    time.sleep(0.05)
    second = batcher.submit(sentences("two"))  # arrives inside the first one's window: same batch
    first.result(10), second.result(10)
    waited = time.monotonic() - started
    batcher.stop(10)
    assert recorder.batches == [["one", "two"]]
    assert 0.15 <= waited < 5


def test_a_full_queue_refuses_and_stop_drains_what_was_queued():
    recorder = Recorder()
    recorder.gate.clear()  # the model is busy
    batcher = MicroBatcher(None, max_batch=2, max_wait_ms=0, max_queue=4, tag=recorder)
    batcher.start()
    busy = batcher.submit(sentences("busy"))
    time.sleep(0.2)  # the worker took it and is stuck in the model
    queued = [batcher.submit(sentences("q1", "q2")), batcher.submit(sentences("q3"))]
    with pytest.raises(QueueFull, match="max_queue 4"):
        batcher.submit(sentences("x", "y"))
    cancelled = batcher.submit(sentences("gone"))
    assert cancelled.cancel()
    stopper = threading.Thread(target=batcher.stop, args=(30,))
    stopper.start()
    recorder.gate.set()
    stopper.join(30)
    assert busy.result(1) == [{"text": "busy"}]
    assert [f.result(1) for f in queued] == [[{"text": "q1"}, {"text": "q2"}], [{"text": "q3"}]]
    with pytest.raises(CancelledError):
        cancelled.result(1)
    assert ["gone"] not in recorder.batches


def test_a_failing_request_fails_alone_and_the_worker_goes_on(caplog):
    recorder = Recorder()
    batcher = MicroBatcher(None, max_batch=8, max_wait_ms=100, max_queue=100, tag=recorder)
    good, bad, other = (batcher.submit(sentences(t)) for t in ("fine one", "a BOOM here", "fine two"))
    with caplog.at_level(logging.ERROR, logger="mcrf.serve.batcher"):
        batcher.start()
        assert good.result(10) == [{"text": "fine one"}] and other.result(10) == [{"text": "fine two"}]
        with pytest.raises(RuntimeError, match="exploded"):
            bad.result(10)
        assert batcher.submit(sentences("later")).result(10) == [{"text": "later"}]
    batcher.stop(10)
    assert recorder.batches[0] == ["fine one", "a BOOM here", "fine two"]  # tried together, then one by one
    assert ["a BOOM here"] in recorder.batches and batcher.stats()["failed_requests"] == 1
    assert any(record.exc_info for record in caplog.records)  # logged with its traceback


def test_tag_records_are_the_jsonl_records(sample_model):
    from mcrf.predict.formats import to_record
    from mcrf.models import Tagger
    from mcrf.predict.stream import predict_stream

    tagger = Tagger.from_pretrained(sample_model)
    batch = sentences("John Smith flew to Paris .", "", "Maria Rossi visited Kyoto , Japan .")
    assert tag_records(tagger, batch, 2) == [to_record(p) for p in predict_stream(tagger, batch, 2, 1)]


# ---------------------------------------------------------------------------- the app in a thread
class FlakyTagger:
    """A real tagger that raises on the word BOOM and blocks while ``gate`` is closed."""

    def __init__(self, tagger) -> None:
        self.tagger, self.config = tagger, tagger.config
        self.gate = threading.Event()
        self.gate.set()

    def predict(self, batch, batch_size=32, max_words=None):
        self.gate.wait(30)
        if any("BOOM" in s.tokens for s in batch):
            raise RuntimeError("exploded on BOOM\nwith a second line")
        return self.tagger.predict(batch, batch_size=batch_size, max_words=max_words)


@pytest.fixture
def flaky_server(sample_model):
    from extras import extra

    extra("fastapi", 'pip install "mcrf[serve]"')
    httpx = extra("httpx", 'pip install "mcrf[serve]"')
    from mcrf.models import Tagger
    from mcrf.serve.app import create_app

    from serving import ThreadServer

    tagger = FlakyTagger(Tagger.from_pretrained(sample_model))
    server = ThreadServer(create_app(tagger, ServeConfig(max_batch=2, max_queue=3, max_wait_ms=20, retry_after=7)))
    yield server, tagger, httpx
    tagger.gate.set()
    server.close()


def test_a_model_failure_is_a_one_line_500_and_the_server_goes_on(flaky_server, caplog):
    server, _, httpx = flaky_server
    with caplog.at_level(logging.ERROR, logger="mcrf.serve.batcher"):
        answer = httpx.post(server.url + "/predict", json={"text": "a BOOM here"}, timeout=30)
    assert answer.status_code == 500
    assert answer.json() == {"detail": "internal error while tagging: RuntimeError: exploded on BOOM with a second line"}
    assert any("Traceback" in record.getMessage() or record.exc_info for record in caplog.records)
    fine = httpx.post(server.url + "/predict", json={"text": "John Smith flew to Paris ."}, timeout=30)
    assert fine.status_code == 200 and len(fine.json()["results"][0]["tags"]) == 6


def test_a_full_queue_answers_503_with_retry_after(flaky_server):
    server, tagger, httpx = flaky_server
    tagger.gate.clear()
    answers = {}

    def send(name, texts):
        answers[name] = httpx.post(server.url + "/predict", json={"texts": texts}, timeout=60)

    first = threading.Thread(target=send, args=("first", ["one"]))
    first.start()
    time.sleep(0.3)  # the worker is inside the model with the first request
    second = threading.Thread(target=send, args=("second", ["two", "three", "four"]))  # fills the queue (3)
    second.start()
    time.sleep(0.3)
    refused = httpx.post(server.url + "/predict", json={"text": "five"}, timeout=30)
    assert refused.status_code == 503 and refused.headers["retry-after"] == "7"
    assert "busy" in refused.json()["detail"]
    too_many = httpx.post(server.url + "/predict", json={"texts": ["a"] * 4}, timeout=30)
    assert too_many.status_code == 413 and "split the request" in too_many.json()["detail"]
    tagger.gate.set()
    first.join(30), second.join(30)
    assert answers["first"].status_code == answers["second"].status_code == 200
    assert len(answers["second"].json()["results"]) == 3


def test_import_mcrf_and_the_cli_parser_load_no_web_framework():
    code = ("import sys, mcrf, mcrf.serve, mcrf.predict.html, mcrf.cli.app\n"
            "mcrf.cli.app.build_parser()\n"
            "loaded = [m for m in ('fastapi', 'uvicorn', 'starlette', 'httpx') if m in sys.modules]\n"
            "assert not loaded, loaded\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr


def test_serve_without_fastapi_names_the_extra(sample_model, monkeypatch, capsys):
    from mcrf.cli.app import main

    monkeypatch.setitem(sys.modules, "fastapi", None)  # import fastapi -> ImportError
    monkeypatch.delitem(sys.modules, "mcrf.serve.app", raising=False)
    code = main(["serve", "--model", str(sample_model)])
    err = capsys.readouterr().err
    assert code != 0 and 'pip install "mcrf[serve]"' in err and "Traceback" not in err
