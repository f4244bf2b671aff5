"""Word masks for prediction without labels, and a collator that pads them.

With ``labels`` the model reads its CRF positions from them; without (``Trainer.predict`` on raw text, your
own loop) it needs a ``word_mask`` input, true at the first sub-word of each word. ``word_starts`` gives it
per row of a fast tokenizer's encoding (for a ``datasets.map``, before padding), ``word_mask`` as a padded
``(B, S)`` tensor, and ``DataCollatorForMaskedCRF`` pads a ``word_mask`` column as
``DataCollatorForTokenClassification`` pads ``labels`` (which it does as well)::

    def tokenize(examples):
        encoding = tokenizer(examples["tokens"], is_split_into_words=True, truncation=True)
        encoding["word_mask"] = mcrf.hf.word_starts(encoding)
        return encoding

    trainer = Trainer(model=model, data_collator=mcrf.hf.DataCollatorForMaskedCRF(tokenizer), ...)
    trainer.predict(unlabelled.map(tokenize, batched=True, remove_columns=["tokens"]))
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List

import torch
from torch import Tensor
from transformers import DataCollatorForTokenClassification

__all__ = ["word_starts", "word_mask", "DataCollatorForMaskedCRF"]


def word_starts(encoding: Any) -> List[List[bool]]:
    """Per row, true at the first sub-word of each word (rows as long as the encoding's, padded or not).

    Args:
        encoding: what a fast tokenizer returns for words (``is_split_into_words=True``): ``word_ids(i)`` per row.
    """
    rows = []
    for i in range(len(encoding["input_ids"])):
        previous, row = None, []
        for word in encoding.word_ids(i):
            row.append(word is not None and word != previous)
            previous = word
        rows.append(row)
    return rows


def word_mask(encoding: Any) -> Tensor:
    """``(B, S)`` bool: true at the first sub-word of each word of a fast tokenizer's batch encoding.

    Args:
        encoding: what ``tokenizer(words, is_split_into_words=True, padding=True, return_tensors="pt")``
            returns (``word_ids(i)`` per row).
    """
    return torch.tensor(word_starts(encoding), dtype=torch.bool)  # shape: (B, S)


@dataclass
class DataCollatorForMaskedCRF(DataCollatorForTokenClassification):
    """``DataCollatorForTokenClassification`` that also pads a ``word_mask`` column (with false, on the
    tokenizer's padding side) into a ``(B, S)`` bool tensor; rows without one are collated as by its parent."""

    def torch_call(self, features: List[Dict[str, Any]]) -> Dict[str, Any]:
        if not features or "word_mask" not in features[0]:
            return super().torch_call(features)
        masks = [[bool(x) for x in feature["word_mask"]] for feature in features]
        batch = super().torch_call([{k: v for k, v in f.items() if k != "word_mask"} for f in features])
        length = batch["input_ids"].shape[1]
        left = self.tokenizer.padding_side == "left"
        rows = [[False] * (length - len(m)) + m if left else m + [False] * (length - len(m)) for m in masks]
        batch["word_mask"] = torch.tensor(rows, dtype=torch.bool)  # shape: (B, S)
        return batch
