"""MaskedCRF (constraints on) vs pytorch-crf: NLL forward+backward and Viterbi decoding.

Timings on shared machines drift, so both layers are timed interleaved in one process
(alternating rounds, median per layer) and only the ratio pytorch-crf time / mcrf time is
reported. Run:  python benchmarks/crf_speed.py [--rounds 7]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from mcrf import MaskedCRF
from mcrf.schemes import scheme_labels

try:
    import torchcrf
except ImportError as err:  # pragma: no cover - benchmark dependency
    raise SystemExit("pytorch-crf is needed: pip install pytorch-crf") from err


def _labels(num_tags: int):
    """A BIO (9, 37 tags with 4 / 18 types) or BIOES (37 tags, 9 types) label list."""
    if num_tags == 9:
        return scheme_labels(["LOC", "MISC", "ORG", "PER"], "BIO"), "BIO"
    types = [f"T{i}" for i in range(9)]
    return scheme_labels(types, "BIOES"), "BIOES"


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


def _time(fn, repeat: int) -> float:
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - start) / repeat


def bench(kind: str, batch: int, steps: int, num_tags: int, rounds: int, gen: torch.Generator):
    labels, scheme = _labels(num_tags)
    ours = MaskedCRF(num_tags, batch_first=True, labels=labels, scheme=scheme)
    ref = torchcrf.CRF(num_tags, batch_first=True)
    ref.load_state_dict(ours.state_dict())
    emissions, mask = _inputs(batch, steps, num_tags, gen)
    tags = _legal_tags(ours, emissions, mask)
    em = emissions.clone().requires_grad_(True)

    if kind == "nll":
        def run_ours():
            ours.zero_grad(set_to_none=True)
            em.grad = None
            ours.loss(em, tags, mask, reduction="sum").backward()

        def run_ref():
            ref.zero_grad(set_to_none=True)
            em.grad = None
            (-ref(em, tags, mask, reduction="sum")).backward()
    else:
        def run_ours():
            ours.decode(emissions, mask)

        def run_ref():
            ref.decode(emissions, mask)

    run_ours(), run_ref()  # warm-up
    repeat = max(1, int(0.25 / max(_time(run_ref, 1), 1e-4)))
    t_ours, t_ref = [], []
    for _ in range(rounds):
        t_ref.append(_time(run_ref, repeat))
        t_ours.append(_time(run_ours, repeat))
    return statistics.median(t_ref), statistics.median(t_ours)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7, help="interleaved timing rounds per row")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(0)
    rows = [
        ("nll", 32, 64, 9), ("nll", 64, 256, 37), ("nll", 512, 128, 9),
        ("decode", 32, 64, 9), ("decode", 512, 128, 9),
    ]
    print(f"torch {torch.__version__}, {args.threads} threads, {args.rounds} interleaved rounds, median")
    print("| task | B x T x K | pytorch-crf ms | mcrf ms | speed-up |")
    print("|---|---|---|---|---|")
    for kind, batch, steps, num_tags in rows:
        t_ref, t_ours = bench(kind, batch, steps, num_tags, args.rounds, gen)
        task = "NLL fwd+bwd" if kind == "nll" else "decode"
        print(
            f"| {task} | {batch} x {steps} x {num_tags} | {t_ref * 1e3:.2f} | {t_ours * 1e3:.2f} "
            f"| {t_ref / t_ours:.1f}x |",
            flush=True,
        )


if __name__ == "__main__":
    main()
