"""MaskedCRF (constraints on) vs pytorch-crf: NLL forward+backward and Viterbi decoding.

Timings on shared machines drift, so the layers are timed interleaved in one process
(alternating rounds, median per layer) and only ratios are reported: pytorch-crf time / mcrf
time, for the algorithm MaskedCRF's default ``algorithm="auto"`` picks at that shape
(``mcrf.crf.scan.use_scan``); ``--rule`` times the sequential algorithm against the log-depth
scan over the grid of shapes behind that rule.
Run:  python benchmarks/crf_speed.py [--rounds 7] [--rule] [--validate] [--baseline REV]
(``--rule``: the grid behind the rule; ``--validate``: the NLL with its checks vs read-free;
``--baseline REV``: also time ``mcrf/crf`` as of git revision REV, interleaved in the same process,
and report before/now ratios: ``mcrf/crf`` imports nothing outside itself, so the old copy is
loaded as the package ``mcrf_baseline``)
"""

from __future__ import annotations

import argparse
import importlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from mcrf import MaskedCRF
from mcrf.crf import scan as crf_scan
from mcrf.crf.schemes import scheme_labels

try:
    import torchcrf
except ImportError as err:  # pragma: no cover - benchmark dependency
    raise SystemExit("pytorch-crf is needed: pip install pytorch-crf") from err


def load_baseline(rev: str):
    """``MaskedCRF`` of ``mcrf/crf`` at git revision ``rev``, imported as ``mcrf_baseline.crf``."""
    repo = Path(__file__).resolve().parents[1]
    root = Path(tempfile.mkdtemp(prefix="mcrf-baseline-"))
    package = root / "mcrf_baseline" / "crf"
    package.mkdir(parents=True)
    (root / "mcrf_baseline" / "__init__.py").write_text("")
    names = subprocess.run(["git", "-C", str(repo), "ls-tree", "--name-only", rev, "mcrf/crf/"],
                           check=True, capture_output=True, text=True).stdout.split()
    for name in names:
        if name.endswith(".py"):
            source = subprocess.run(["git", "-C", str(repo), "show", f"{rev}:{name}"],
                                    check=True, capture_output=True, text=True).stdout
            (package / os.path.basename(name)).write_text(source.replace("mcrf.crf", "mcrf_baseline.crf"))
    sys.path.insert(0, str(root))
    return importlib.import_module("mcrf_baseline.crf.layer").MaskedCRF


def _labels(num_tags: int):
    """BIOES for 37 tags (9 types, the README's table); BIO with (K - 1) / 2 types otherwise (9 -> 4 types)."""
    if num_tags == 37:
        return scheme_labels([f"T{i}" for i in range(9)], "BIOES"), "BIOES"
    if num_tags == 9:
        return scheme_labels(["LOC", "MISC", "ORG", "PER"], "BIO"), "BIO"
    return scheme_labels([f"T{i}" for i in range((num_tags - 1) // 2)], "BIO"), "BIO"


def _inputs(batch: int, steps: int, num_tags: int, gen: torch.Generator):
    lengths = torch.randint(steps // 2, steps + 1, (batch,), generator=gen)
    lengths[0] = steps
    mask = torch.arange(steps).unsqueeze(0) < lengths.unsqueeze(1)  # shape: (B, T)
    emissions = torch.randn(batch, steps, num_tags, generator=gen)
    return emissions, mask


def _legal_tags(crf: MaskedCRF, emissions, mask):
    """Gold tags that are legal under the scheme: the constrained Viterbi path of noise."""
    paths, _ = crf.viterbi(emissions + 3 * torch.randn_like(emissions), mask)
    return paths[:, 0].clamp(min=0)


CLOCKS = {"wall": time.perf_counter, "process": time.process_time}
_clock = time.perf_counter
_stat = statistics.median


def _time(fn, repeat: int) -> float:
    start = _clock()
    for _ in range(repeat):
        fn()
    return (_clock() - start) / repeat


def bench(kind: str, batch: int, steps: int, num_tags: int, rounds: int, gen: torch.Generator,
          algorithms=("sequential", "scan"), with_ref: bool = True, baseline=None, validate: bool = True):
    """Seconds per call (the statistic over rounds): ``{"pytorch-crf": ..., ALGORITHM: ...}``, and
    ``"baseline"`` (the ``baseline`` class with the first algorithm) when given."""
    labels, scheme = _labels(num_tags)
    layers = {alg: MaskedCRF(num_tags, batch_first=True, labels=labels, scheme=scheme, algorithm=alg,
                             validate=validate)
              for alg in algorithms}
    if baseline is not None:
        layers["baseline"] = baseline(num_tags, batch_first=True, labels=labels, scheme=scheme,
                                      algorithm=algorithms[0], validate=validate)
    first = next(iter(layers.values()))
    for layer in layers.values():
        layer.load_state_dict(first.state_dict())
    ref = torchcrf.CRF(num_tags, batch_first=True)
    ref.load_state_dict(first.state_dict())
    emissions, mask = _inputs(batch, steps, num_tags, gen)
    tags = _legal_tags(first, emissions, mask)
    em = emissions.clone().requires_grad_(True)
    if baseline is not None:  # the same numbers, or the comparison means nothing
        torch.testing.assert_close(layers["baseline"].loss(emissions, tags, mask), first.loss(emissions, tags, mask))

    def runner(layer, is_ref: bool):
        if kind == "nll":
            def run():
                layer.zero_grad(set_to_none=True)
                em.grad = None
                loss = -layer(em, tags, mask, reduction="sum") if is_ref else layer.loss(em, tags, mask, reduction="sum")
                loss.backward()
        else:
            def run():
                layer.decode(emissions, mask)
        return run

    runs = {name: runner(layer, False) for name, layer in layers.items()}
    if with_ref:
        runs = {"pytorch-crf": runner(ref, True), **runs}
    for run in runs.values():
        run()  # warm-up
    repeat = max(1, int(0.25 / max(min(_time(run, 1) for run in runs.values()), 1e-4)))
    times = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            times[name].append(_time(run, repeat))
    return {name: _stat(t) for name, t in times.items()}


def rule_grid(rounds: int, gen: torch.Generator) -> None:
    """Sequential vs scan over a grid of shapes: the data behind ``crf_scan.use_scan``."""
    print("| task | B x T x K | B*T*K^3 | sequential ms | scan ms | scan faster | rule picks scan |")
    print("|---|---|---:|---:|---:|---|---|")
    for kind in ("nll", "decode"):
        for batch, steps, num_tags in [(1, 16, 9), (1, 64, 9), (1, 256, 9), (4, 128, 9), (8, 64, 9),
                                       (16, 256, 9), (32, 64, 9), (1, 64, 17), (4, 64, 17)]:
            t = bench(kind, batch, steps, num_tags, rounds, gen, with_ref=False)
            work = batch * steps * num_tags ** 3
            picks = crf_scan.use_scan(batch, steps, num_tags, decode=kind == "decode")
            print(f"| {kind} | {batch} x {steps} x {num_tags} | {work:,} | {t['sequential'] * 1e3:.2f} "
                  f"| {t['scan'] * 1e3:.2f} | {t['scan'] < t['sequential']} | {picks} |", flush=True)


def validate_cost(rounds: int, gen: torch.Generator, baseline=None) -> None:
    """MaskedCRF NLL forward+backward with its checks (validate=True) vs read-free (validate=False),
    for both algorithms; with ``baseline``, the same four calls of the old code, interleaved."""
    head = "| B x T x K | algorithm | validate=True ms | validate=False ms | False / True |"
    print(head + (" True: before / now | False: before / now |" if baseline else ""))
    print("|---|---|---:|---:|---:|" + ("---:|---:|" if baseline else ""))
    for batch, steps, num_tags in [(32, 30, 9), (32, 64, 9), (32, 40, 37), (1, 256, 9)]:
        labels, scheme = _labels(num_tags)
        emissions, mask = _inputs(batch, steps, num_tags, gen)
        for algorithm in ("sequential", "scan"):
            kinds = {"now": MaskedCRF} if baseline is None else {"now": MaskedCRF, "before": baseline}
            crfs = {name: cls(num_tags, batch_first=True, labels=labels, scheme=scheme, algorithm=algorithm)
                    for name, cls in kinds.items()}
            for crf in crfs.values():
                crf.load_state_dict(crfs["now"].state_dict())
            tags = _legal_tags(crfs["now"], emissions, mask)
            em = emissions.clone().requires_grad_(True)
            runs = {(name, flag): (lambda crf=crf, flag=flag: crf.loss(em, tags, mask, validate=flag).backward())
                    for name, crf in crfs.items() for flag in (True, False)}
            for run in runs.values():
                run()
            times = {key: [] for key in runs}
            for _ in range(rounds):
                for key, run in runs.items():
                    times[key].append(_time(run, 3))
            t = {key: _stat(v) for key, v in times.items()}
            on, off = t[("now", True)], t[("now", False)]
            row = f"| {batch} x {steps} x {num_tags} | {algorithm} | {on * 1e3:.2f} | {off * 1e3:.2f} | {off / on:.2f} |"
            if baseline:
                row += f" {t[('before', True)] / on:.2f} | {t[('before', False)] / off:.2f} |"
            print(row, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7, help="interleaved timing rounds per row")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rule", action="store_true", help="time sequential vs scan over a grid of shapes")
    parser.add_argument("--validate", action="store_true", help="time the NLL with validate=True vs False")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="wall",
                        help="process: CPU time of this process (robust on a busy machine with --threads 1)")
    parser.add_argument("--stat", choices=["median", "min"], default="median", help="per-layer statistic over rounds")
    parser.add_argument("--baseline", metavar="REV", help="also time mcrf/crf as of this git revision (before/now)")
    args = parser.parse_args()
    global _clock, _stat
    _clock, _stat = CLOCKS[args.clock], getattr(statistics, "median") if args.stat == "median" else min
    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(0)
    if args.rule:
        rule_grid(args.rounds, gen)
        return
    baseline = load_baseline(args.baseline) if args.baseline else None
    if args.validate:
        validate_cost(args.rounds, gen, baseline)
        return
    rows = [
        ("nll", 32, 64, 9), ("nll", 64, 256, 37), ("nll", 512, 128, 9),
        ("decode", 32, 64, 9), ("decode", 512, 128, 9),
    ]
    print(f"torch {torch.__version__}, {args.threads} threads, {args.rounds} interleaved rounds, "
          f"{args.stat} of {args.clock} time")
    extra = f" {args.baseline} / now |" if baseline else ""
    print(f"| task | B x T x K | pytorch-crf ms | mcrf ms | algorithm (auto) | speed-up |{extra}")
    print("|---|---|---:|---:|---|---:|" + ("---:|" if baseline else ""))
    for kind, batch, steps, num_tags in rows:
        # the packed length of the longest sequence is T: the rule sees (B, T, K)
        auto = "scan" if crf_scan.use_scan(batch, steps, num_tags, decode=kind == "decode") else "sequential"
        t = bench(kind, batch, steps, num_tags, args.rounds, gen, algorithms=(auto,), baseline=baseline)
        task = "NLL fwd+bwd" if kind == "nll" else "decode"
        before = f" {t['baseline'] / t[auto]:.2f} |" if baseline else ""
        print(
            f"| {task} | {batch} x {steps} x {num_tags} | {t['pytorch-crf'] * 1e3:.2f} | {t[auto] * 1e3:.2f} "
            f"| {auto} | {t['pytorch-crf'] / t[auto]:.1f}x |{before}",
            flush=True,
        )


if __name__ == "__main__":
    main()
