"""What ``train`` checks about its data and its parameters: the splits, label warnings, divergence.

Nothing here trains. ``mcrf compare`` selects its sentences with the same ``select_splits``.
"""

from __future__ import annotations

import logging
from typing import Any, Dict, List, Optional, Tuple

import torch

from mcrf.errors import DataError, TrainingDiverged
from mcrf.training.config import TrainConfig

logger = logging.getLogger(__name__)

__all__ = ["select_splits", "used_splits", "warn_about_labels", "diverged", "non_finite"]


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


def used_splits(config: TrainConfig) -> Dict[str, Optional[int]]:
    """How many first sentences of each split ``select_splits`` reads (``load_corpus(used=...)``: repairs of
    gold sentences a run never reads are not reported)."""
    return {"train": config.max_train_sentences, "dev": config.max_eval_sentences, "test": config.max_eval_sentences}


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
