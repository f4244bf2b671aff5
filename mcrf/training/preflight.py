"""What ``train`` checks and builds before and around its loop: the output folder, the splits,
label warnings, divergence, the Accelerator.

Split from ``loop.py`` so the loop reads as the loop: nothing here trains. ``mcrf compare``
selects its sentences with the same ``select_splits``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import torch

from mcrf.io import runfolder
from mcrf.errors import ConfigError, DataError, InputNotFound, TrainingDiverged
from mcrf.training import checkpoint
from mcrf.training.config import TrainConfig

logger = logging.getLogger(__name__)

__all__ = ["TRAIN_OUTPUTS", "STALE_ON_OVERWRITE", "select_splits", "check_output_dir", "warn_about_labels",
           "diverged", "non_finite", "make_accelerator"]

#: every name ``train`` writes in its output folder: a folder holding any of them is refused
#: without overwrite (or resume); the user's other files are never touched.
TRAIN_OUTPUTS = tuple(f"{name}{suffix}" for name in ("last", "best", "model") for suffix in ("", ".old", ".tmp")) + (
    "train_log.jsonl", "metrics.json", "training_curves.png")
#: what overwrite removes when the run starts; ``model/``, ``metrics.json`` and the plot stay
#: usable until the new run replaces them atomically at its end.
STALE_ON_OVERWRITE = tuple(name for name in TRAIN_OUTPUTS if name not in ("model", "metrics.json",
                                                                          "training_curves.png"))


def select_splits(corpus: Any, config: TrainConfig) -> Tuple[List[Any], List[Any], List[Any]]:
    """The sentences a run trains, picks its checkpoint and tests on.

    Args:
        corpus: a loaded ``Corpus`` (``.splits``: split name -> sentences).
        config: ``max_train_sentences`` / ``max_eval_sentences`` cut train and dev/test (first N).

    Returns:
        ``(train, dev, test)`` lists; ``test`` is empty when the corpus has none.

    Raises:
        DataError: train or dev is missing or empty.
    """
    splits = corpus.splits
    for name in ("train", "dev"):
        if not splits.get(name):
            raise DataError(
                f"expected a non-empty '{name}' split in dataset {config.dataset!r}, got splits "
                f"{sorted(k for k, v in splits.items() if v)}; provide {name} data (dev is needed to pick "
                "the best checkpoint)"
            )
    train = list(splits["train"])[: config.max_train_sentences]
    dev = list(splits["dev"])[: config.max_eval_sentences]
    test = list(splits.get("test") or [])[: config.max_eval_sentences]
    return train, dev, test


def check_output_dir(config: TrainConfig, output_dir: Path) -> None:
    """Refuse a used folder without resume/overwrite, and a resume with nothing to resume.

    A run interrupted before its first ``last/`` checkpoint can only start over: both the
    plain rerun and ``--resume`` say ``--overwrite``, never each other.
    """
    resumable = checkpoint.find_checkpoint(output_dir, "last") is not None
    if config.resume:
        if resumable:
            return
        found = runfolder.used_outputs(output_dir, TRAIN_OUTPUTS)
        if found:
            raise InputNotFound(f"nothing to resume in {output_dir}: it holds {', '.join(found)} but no checkpoint "
                                "(last/), the run stopped before its first one; pass --overwrite (overwrite=True) "
                                "instead of --resume to start over, or choose another output_dir")
        raise InputNotFound(f"nothing to resume in {output_dir}: no checkpoint (last/) there; drop --resume "
                            "(resume=False) to start a fresh run, or point output_dir at the interrupted run")
    if config.overwrite:
        return
    fix = ("pass --resume (resume=True) to continue it, --overwrite (overwrite=True) to start over, or choose "
           "another output_dir" if resumable else
           "it has no checkpoint to resume (last/); pass --overwrite (overwrite=True) to start over, or choose "
           "another output_dir")
    runfolder.require_unused(output_dir, TRAIN_OUTPUTS, fix=fix)


def warn_about_labels(train: List[Any], held_out: Dict[str, List[Any]], dataset: str) -> None:
    """Warn when training cannot learn what dev/test score: no entity tags at all, or unseen types."""
    from mcrf.crf.schemes import entity_types

    def types(sentences: List[Any]) -> List[str]:
        return entity_types({tag for sentence in sentences for tag in sentence.tags})

    seen = set(types(train))
    if not seen:
        logger.warning("the training data of %s has no entity tags (every tag is O): the model will tag "
                       "everything O and score F1 0; check the tag column (--tag-column) and the files", dataset)
        return
    for split, sentences in held_out.items():
        unseen = [t for t in types(sentences) if t not in seen]
        if unseen:
            many = len(unseen) > 1
            logger.warning("entity %s %s of %s %s in %s but never in the training sentences: the model cannot "
                           "learn %s and %s as missed", "types" if many else "type",
                           ", ".join(unseen[:20]) + (f" (+{len(unseen) - 20} more)" if len(unseen) > 20 else ""),
                           dataset, "occur" if many else "occurs", split, "them" if many else "it",
                           "they count" if many else "it counts")


def diverged(step: int, what: str) -> TrainingDiverged:
    """The error for a run whose ``what`` (``"loss"``, ``"CRF transitions"``) became non-finite at ``step``."""
    return TrainingDiverged(f"training diverged at step {step} (non-finite {what}); lower --lr / --head-lr and "
                            "start over with --overwrite")


def non_finite(tagger: Any) -> Optional[str]:
    """The first non-finite parameter of ``tagger`` as words (``"CRF transitions"``), or ``None``.

    CRF parameters are looked at first: they are the first to blow up, and what the loss and
    Viterbi need to be finite. One host synchronisation for all parameters.
    """
    named = sorted(tagger.named_parameters(), key=lambda item: not item[0].startswith("crf."))
    finite = torch.stack([torch.isfinite(p.detach()).all() for _, p in named])  # shape: (P,)
    if bool(finite.all()):
        return None
    name = named[int((~finite).nonzero()[0])][0]
    return f"CRF {name.split('.', 1)[1]}" if name.startswith("crf.") else f"parameter {name}"


def make_accelerator(config: TrainConfig):
    """``Accelerator(mixed_precision=..., cpu=..., log_with=None)``, callable again in the same process.

    Accelerate keeps the precision process-wide and refuses a different one later (a second
    ``train`` in a notebook, tests, benchmarks); then only that part of its state is reset — the
    process group and device (``PartialState``) stay.
    """
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    shared = AcceleratorState._shared_state
    if shared and shared.get("_mixed_precision") != config.mixed_precision:
        AcceleratorState._reset_state(reset_partial_state=False)
    # Accelerate only treats a torchrun/accelerate-launch job as multi-process CPU training
    # (gloo) when told cpu=True; on a machine without any accelerator that is the only device.
    has_accelerator = getattr(torch, "accelerator", None)
    available = has_accelerator.is_available() if has_accelerator else torch.cuda.is_available()
    accelerator = Accelerator(mixed_precision=config.mixed_precision, cpu=config.cpu or not available,
                              log_with=None)
    if config.mixed_precision == "fp16" and accelerator.device.type == "cpu":
        # Accelerate would silently train in float32 here
        raise ConfigError("mixed_precision='fp16' needs a GPU, got the CPU; use 'bf16' or 'no' on CPU")
    return accelerator
