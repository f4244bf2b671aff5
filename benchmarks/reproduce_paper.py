"""Reproduce the Masked CRF paper's ablation on real corpora with a CPU-sized BiLSTM tagger.

For each dataset, three taggers are trained with the same encoder, data and seed:

* a plain CRF objective (``decoder="crf"``), evaluated three ways on the *same* weights, as in
  the paper: Viterbi + ``retain`` post-processing, Viterbi + ``discard``, and masked Viterbi
  (MCRF-decoding);
* the masked objective (``decoder="mcrf"``, MCRF-training);
* a softmax head (with ``retain``), the usual no-CRF baseline.

It reports strict span F1 (seqeval, scheme-aware) on dev and test and the illegal path rate:
the share of test sentences whose decoder output violates the scheme *before* any
post-processing. Real corpora are read from ``--data-dir`` (default ``../shared/data``).

Run:  python benchmarks/reproduce_paper.py --datasets wnut17 atis --epochs 10
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch

from mcrf.data import load_corpus
from mcrf.evaluation import evaluate
from mcrf.models import Tagger
from mcrf.training import TrainConfig, train

from _common import SHARED_DATA


def _train(dataset: str, decoder: str, args, workdir: Path) -> Tagger:
    config = TrainConfig.for_dataset(
        dataset, data_dir=args.data_dir, encoder="bilstm", decoder=decoder, postprocess="retain",
        output_dir=str(workdir / f"{dataset}-{decoder}"), overwrite=True, epochs=args.epochs,
        batch_size=32, lr=args.lr, head_lr=args.lr, layer_decay=1.0, weight_decay=0.0, warmup_ratio=0.05,
        max_grad_norm=5.0, seed=args.seed, patience=None, max_train_sentences=args.max_train_sentences,
    )
    result = train(config)
    return Tagger.from_pretrained(result.model_dir)


def _score(tagger: Tagger, corpus, mode: str, postprocess: str) -> dict:
    """Evaluate ``tagger`` with its CRF in ``mode`` and the given post-processing."""
    tagger.config.postprocess = postprocess
    if tagger.crf is not None:
        tagger.crf.mode = mode
    dev = evaluate(tagger, corpus.splits["dev"], batch_size=64)
    test = evaluate(tagger, corpus.splits["test"], batch_size=64)
    return {"dev_f1": dev.f1, "test_f1": test.f1, "illegal": test.illegal_path_rate}


def run(dataset: str, args, workdir: Path) -> list:
    corpus = load_corpus(dataset, data_dir=args.data_dir)
    rows = []
    crf = _train(dataset, "crf", args, workdir)
    rows.append(("CRF + retain", _score(crf, corpus, "crf", "retain")))
    rows.append(("CRF + discard", _score(crf, corpus, "crf", "discard")))
    rows.append(("MCRF-decoding (same CRF weights)", _score(crf, corpus, "mcrf-decoding", "retain")))
    mcrf = _train(dataset, "mcrf", args, workdir)
    rows.append(("MCRF-training", _score(mcrf, corpus, "mcrf", "retain")))
    softmax = _train(dataset, "softmax", args, workdir)
    rows.append(("softmax + retain", _score(softmax, corpus, "crf", "retain")))
    return [(dataset, name, scores) for name, scores in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["wnut17", "atis"])
    parser.add_argument("--data-dir", default=str(SHARED_DATA))
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--max-train-sentences", type=int, default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args()
    if not Path(args.data_dir).is_dir():
        raise SystemExit(f"real corpora not found at {args.data_dir}; pass --data-dir")
    torch.set_num_threads(args.threads)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for dataset in args.datasets:
            rows += run(dataset, args, Path(tmp))
    print(f"\nBiLSTM tagger, {args.epochs} epochs, seed {args.seed}, best dev checkpoint; F1 in %")
    print("| dataset | model | dev F1 | test F1 | illegal paths (test, before post-processing) |")
    print("|---|---|---|---|---|")
    for dataset, name, s in rows:
        print(f"| {dataset} | {name} | {100 * s['dev_f1']:.2f} | {100 * s['test_f1']:.2f} | {100 * s['illegal']:.2f}% |")
    if args.json:
        Path(args.json).write_text(json.dumps([{"dataset": d, "model": n, **s} for d, n, s in rows], indent=2))


if __name__ == "__main__":
    main()
