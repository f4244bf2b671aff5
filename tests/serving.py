"""Helpers of the server tests: ``mcrf serve`` in a subprocess, an app in a thread, offline records.

Every server listens on 127.0.0.1 with port 0 (the kernel picks a free port; the subprocess logs it).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import List, Optional

import httpx

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
LISTENING = re.compile(r"on (http://\S+?:\d+) ")


class ServerProcess:
    """``python -m mcrf serve --model MODEL --port 0 ARGS`` with its log in ``log``; ``url`` once it listens."""

    def __init__(self, model: Path, log: Path, *args: str, timeout: float = 120.0) -> None:
        self.log = log
        self._handle = log.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mcrf", "serve", "--model", str(model), "--port", "0", "--threads", "1", *args],
            stdout=self._handle, stderr=subprocess.STDOUT, env=ENV, cwd=ROOT)
        self.url = self._wait_listening(timeout)

    def _wait_listening(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = LISTENING.search(self.text())
            if match:
                url = match.group(1)
                while time.monotonic() < deadline:  # the socket is bound before uvicorn starts serving
                    try:
                        if httpx.get(url + "/health", timeout=5).status_code == 200:
                            return url
                    except httpx.TransportError:
                        time.sleep(0.1)
            if self.proc.poll() is not None:
                raise RuntimeError(f"mcrf serve exited with {self.proc.returncode}:\n{self.text()}")
            time.sleep(0.1)
        self.proc.kill()
        raise RuntimeError(f"mcrf serve did not start listening in {timeout} s:\n{self.text()}")

    def text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def terminate(self, timeout: float = 60.0) -> int:
        """SIGTERM, wait; the exit code (the process is killed if it does not stop in ``timeout``)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise
        finally:
            self._handle.close()


class ThreadServer:
    """A FastAPI app served by uvicorn in a thread of this process on 127.0.0.1 (a free port)."""

    def __init__(self, app) -> None:
        import uvicorn

        from mcrf.serve.app import bind

        self.sock = bind("127.0.0.1", 0)
        self.url = "http://127.0.0.1:%d" % self.sock.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(app, log_config=None, lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the in-process server did not start")
            time.sleep(0.02)

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)
        self.sock.close()


def offline_records(model: Path, lines: List[str], tmp: Path, input_format: str = "text",
                    name: Optional[str] = None) -> List[dict]:
    """What ``mcrf predict --format jsonl`` writes for ``lines`` (one record per line)."""
    return offline_records_with(model, lines, tmp, "--input-format", input_format,
                                name=name or f"offline_{input_format}.txt")


def offline_records_with(model: Path, lines: List[str], tmp: Path, *flags: str,
                         name: str = "offline_text.txt") -> List[dict]:
    """What ``mcrf predict --format jsonl FLAGS`` writes for ``lines``, the input kept as ``tmp/name``."""
    from mcrf.cli.app import main

    source = tmp / name
    source.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    target = source.with_suffix(".jsonl")
    assert main(["predict", str(source), "--model", str(model), "--format", "jsonl", "-o", str(target), "--quiet",
                 *flags]) == 0
    return [json.loads(line) for line in target.read_text(encoding="utf-8").splitlines()]


def same_record(got: dict, want: dict) -> bool:
    """Equal records, confidences allowed one unit of their 4th decimal apart.

    Batched float arithmetic depends on what else is in the batch (padding, kernel blocking), by
    ~1e-7; rounded to 4 decimals that occasionally flips the last digit. Everything else — text,
    tokens, tags, span boundaries, labels, offsets — must be identical.
    """
    def close(a, b):
        return abs(a - b) <= 1.0001e-4

    strip = lambda record: {**record, "token_confidences": None,  # noqa: E731
                            "spans": [{**span, "confidence": None} for span in record["spans"]]}
    return (strip(got) == strip(want)
            and len(got["token_confidences"]) == len(want["token_confidences"])
            and all(close(a, b) for a, b in zip(got["token_confidences"], want["token_confidences"]))
            and all(close(a["confidence"], b["confidence"]) for a, b in zip(got["spans"], want["spans"])))


def same_records(got: List[dict], want: List[dict]) -> bool:
    """``same_record`` for each pair, and as many of each."""
    return len(got) == len(want) and all(same_record(a, b) for a, b in zip(got, want))
