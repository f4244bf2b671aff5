"""Run artefacts: ``train_log.jsonl`` records, ``metrics.json`` and ``training_curves.png``."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Dict, List, Union

from mcrf.errors import DataError, located
from mcrf.io.outputs import open_output, save_text

__all__ = ["append_log", "read_log", "truncate_log", "plot_curves", "card_metrics"]

PathLike = Union[str, os.PathLike]


def append_log(path: PathLike, record: Dict[str, Any]) -> None:
    """Append one JSON record as a line to ``path`` (main process only)."""
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record, sort_keys=True) + "\n")


def read_log(path: PathLike) -> List[Dict[str, Any]]:
    """All records of a ``train_log.jsonl`` (an empty list when the file does not exist).

    A truncated last line (a run killed mid-write) is ignored; any other bad line raises
    ``DataError`` naming ``path:line``.
    """
    path = Path(path)
    if not path.is_file():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as error:
            if number == len(lines):
                break
            raise DataError(located(path, number, f"expected one JSON record per line, got {line[:80]!r}; "
                                          "remove the broken line (or the log) to resume")) from error
    return records


def truncate_log(path: PathLike, max_step: int) -> List[Dict[str, Any]]:
    """Drop records logged after ``max_step`` (work lost by a kill before the resumed checkpoint).

    Returns:
        The kept records (also rewritten to ``path`` atomically).
    """
    kept = [r for r in read_log(path) if int(r.get("step", 0)) <= max_step]
    save_text(path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in kept))
    return kept


def plot_curves(records: List[Dict[str, Any]], path: PathLike) -> None:
    """Plot training loss per epoch and dev F1 per evaluation against epochs into ``path`` (PNG).

    Uses ``train_log.jsonl`` records: ``{"event": "epoch", "epoch", "train_loss"}`` and
    ``{"event": "eval", "epoch", "dev_f1"}`` (``epoch`` may be fractional for step-wise evals).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r for r in records if r.get("event") == "epoch"]
    evals = [r for r in records if r.get("event") == "eval"]
    fig, (ax_loss, ax_f1) = plt.subplots(1, 2, figsize=(10, 4))
    try:
        ax_loss.plot([r["epoch"] for r in epochs], [r["train_loss"] for r in epochs], marker="o")
        ax_loss.set_xlabel("epoch")
        ax_loss.set_ylabel("training loss (mean per step)")
        ax_loss.set_title("training loss")
        ax_f1.plot([r["epoch"] for r in evals], [100 * r["dev_f1"] for r in evals], marker="o", color="C1")
        ax_f1.set_xlabel("epoch")
        ax_f1.set_ylabel("dev span F1 (%)")
        ax_f1.set_title("dev F1")
        for ax in (ax_loss, ax_f1):
            ax.grid(alpha=0.3)
        fig.tight_layout()
        with open_output(path, binary=True) as stream:
            fig.savefig(stream, dpi=100, format="png")
    finally:
        plt.close(fig)


def card_metrics(metrics: Dict[str, Any]) -> Dict[str, Any]:
    """The evaluation results for the model card: scores only (no timings, no settings).

    Args:
        metrics: the run's ``metrics.json`` content (``dev``/``test`` EvalResult dicts, ``best_step``,
            ``config``).
    """
    timing = {"seconds", "sentences_per_second"}
    card: Dict[str, Any] = {}
    for split in ("dev", "test"):
        if metrics.get(split):
            card[split] = {k: v for k, v in metrics[split].items() if k not in timing}
    card["best_step"] = metrics["best_step"]
    card["dataset"] = metrics["config"]["dataset"]
    return card
