"""One (objective, seed) cell: train it (resuming an interrupted run), decode each variant, save ``cell.json``.

A cell's folder is a normal ``mcrf train`` run folder (``model/``, ``last/``, ``metrics.json``,
``train_log.jsonl``) plus ``cell.json``, written atomically last: its presence marks the cell
finished (``last/`` is then deleted: a finished cell is never resumed). Interrupted before that, the next run resumes the training from ``last/`` (or, when
training had finished, only redoes the decoding).
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from mcrf.compare.stats import sentence_counts
from mcrf.compare.variants import VARIANTS
from mcrf.io.outputs import save_text
from mcrf.training import TrainConfig

__all__ = ["CELL_FILE", "SET_PER_CELL", "cell_name", "describe", "read_cell", "run_cell", "train_speed"]

logger = logging.getLogger(__name__)

CELL_FILE = "cell.json"
#: ``TrainConfig`` fields each cell sets itself: not flags of ``mcrf compare``, not in ``CompareConfig.train``,
#: not in the shared settings of ``compare.json`` and ``results.json``.
SET_PER_CELL = ("decoder", "postprocess", "seed", "output_dir", "resume", "overwrite")
#: Sidecar recording the step the last training process started from (see ``train_speed``).
START_FILE = "compare_start.json"


def cell_name(objective: str, seed: int) -> str:
    """Folder name of a cell: ``crf-seed1``."""
    return f"{objective}-seed{seed}"


def read_cell(folder: Path) -> "Dict[str, Any] | None":
    """The finished cell's record, or ``None`` when the cell has not finished."""
    path = folder / CELL_FILE
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def _train(config: TrainConfig) -> Tuple[Dict[str, Any], int]:
    """Train (or resume, or reuse a finished run in) ``config.output_dir``.

    Returns:
        The run's ``metrics.json`` and the step the last training process started from (0 for
        a fresh run, the checkpoint's step after a resume), kept in ``START_FILE`` so a reused
        finished run still knows which steps its ``train_seconds`` covers.
    """
    from mcrf.training import checkpoint, train
    from mcrf.io.files import write_json

    folder = Path(config.output_dir)
    metrics_path, start_path = folder / "metrics.json", folder / START_FILE
    if metrics_path.is_file() and (folder / "model").is_dir() and start_path.is_file():
        logger.info("%s: training had finished, reusing its model", folder)
        start = json.loads(start_path.read_text(encoding="utf-8"))["start_step"]
        return json.loads(metrics_path.read_text(encoding="utf-8")), start
    resume = checkpoint.find_checkpoint(folder, "last") is not None
    start = checkpoint.read_last(folder)["state"]["global_step"] if resume else 0
    if resume:
        logger.info("%s: resuming the interrupted training at step %d", folder, start)
    folder.mkdir(parents=True, exist_ok=True)
    write_json(start_path, {"start_step": start})
    return train(replace(config, resume=resume, overwrite=not resume)).metrics, start


def train_speed(metrics: Dict[str, Any], log_path: Path, train_sentences: int,
                start_step: int = 0) -> Optional[float]:
    """Training sentences/s: sentences stepped over, divided by training time minus dev evaluations.

    ``metrics.json``'s ``train_seconds`` is the wall time of the last training process, which ran
    from ``start_step`` (0, or the step it resumed at) to ``global_step``; the dev evaluations it
    ran (``train_log.jsonl`` records after ``start_step``, each timed by its
    ``dev_sentences_per_second``) are taken back out. Checkpoint writing stays in. ``None`` when
    that process took no training step (it resumed a run interrupted after its last step).
    """
    dev_sentences = metrics["dev"]["num_sentences"]
    records = [json.loads(line) for line in log_path.read_text(encoding="utf-8").splitlines() if line.strip()]
    eval_seconds = sum(dev_sentences / r["dev_sentences_per_second"] for r in records
                       if r.get("event") == "eval" and r.get("step", 0) > start_step
                       and r.get("dev_sentences_per_second"))
    batch_size = metrics["config"]["batch_size"]
    steps_per_epoch = max(1, -(-train_sentences // batch_size))
    stepped = (metrics["global_step"] - start_step) / steps_per_epoch * train_sentences
    if stepped <= 0:
        return None
    return stepped / max(metrics["train_seconds"] - eval_seconds, 1e-9)


def describe(record: Dict[str, Any]) -> str:
    """One line about a finished cell: its training and each variant's dev F1."""
    scores = ", ".join(f"{name} {100 * entry['dev']['result']['f1']:.2f}" for name, entry in record["variants"].items()
                       if "dev" in entry)
    return (f"{record['objective']}, seed {record['seed']}: {record['global_step']} steps "
            f"(best {record['best_step']}) in {record['train_seconds']:.0f} s; dev F1 {scores}")


def _decode(tagger: Any, sentences: Sequence[Any], variant_name: str, batch_size: int,
            counts: bool) -> Dict[str, Any]:
    """Decode ``sentences`` the way ``variant_name`` does: the ``EvalResult`` dict, and with ``counts``
    the per-sentence ``[tp, pred, gold]`` span counts the paired tests resample."""
    from mcrf.evaluation import score_predictions

    variant = VARIANTS[variant_name]
    if tagger.crf is not None:
        tagger.crf.mode = variant.mode
    tagger.config.postprocess = variant.postprocess
    start = time.perf_counter()
    decoded = tagger.predict(list(sentences), batch_size=batch_size)
    seconds = time.perf_counter() - start
    gold = [s.tags for s in sentences]
    pred = [d.tags for d in decoded]
    result = score_predictions(gold, pred, tagger.config.scheme, raw_illegal=[d.raw_illegal for d in decoded],
                               seconds=seconds)
    entry: Dict[str, Any] = {"result": result.to_dict()}
    if counts:
        entry["counts"] = sentence_counts(gold, pred, tagger.config.scheme)
    return entry


def run_cell(config: TrainConfig, splits: Dict[str, List[Any]], folder: Path) -> Dict[str, Any]:
    """Train one cell and decode every variant of its objective on dev and test.

    Args:
        config: the cell's full training settings (``decoder`` = objective, ``seed``,
            ``output_dir`` = ``folder``).
        splits: ``train``/``dev``/``test`` sentences as training sees them (after
            ``max_train_sentences``/``max_eval_sentences``); ``test`` may be empty.
        folder: the cell's folder.

    Returns:
        The record written to ``folder/cell.json``: per variant, dev and test ``EvalResult``
        dicts, per-sentence test span counts; training time, steps and sentences/s.
    """
    from mcrf.models import Tagger
    from mcrf.io.files import write_json

    metrics, start_step = _train(config)
    tagger = Tagger.from_pretrained(str(folder / "model"))
    record: Dict[str, Any] = {
        "objective": config.decoder, "seed": config.seed, "train_config": config.to_dict(),
        "best_step": metrics["best_step"], "global_step": metrics["global_step"],
        "train_seconds": metrics["train_seconds"],
        "train_sentences_per_second": train_speed(metrics, folder / "train_log.jsonl", len(splits["train"]),
                                                  start_step),
        "variants": {},
    }
    for name, variant in VARIANTS.items():
        if variant.objective != config.decoder:
            continue
        entry = {}
        for split in ("dev", "test"):
            if splits.get(split):
                entry[split] = _decode(tagger, splits[split], name, config.eval_batch_size, counts=split == "test")
        record["variants"][name] = entry
    # one line: thousands of count triples (mcrf.io.outputs: temporary, fsync, rename)
    save_text(folder / CELL_FILE, json.dumps(record, separators=(",", ":"), sort_keys=True) + "\n")
    # the finished cell needs no resume state (optimizer moments: twice the model's size)
    for name in ("last", "last.old"):
        if (folder / name).is_dir():
            shutil.rmtree(folder / name)
    return record
