"""Length-bucketed batch sampling with dynamic padding.

CoNLL-style sentences are short (median ~10 words) but a few are long; padding every
batch to the longest sentence in the corpus wastes most of the compute. ``LengthBucketSampler``
groups sentences of similar length into the same batch, so the collator (which pads to the
longest sentence *in the batch*) pads very little, while the batch order stays random.

The sampler is a plain batch sampler (an iterable of index lists), so it plugs into
``torch.utils.data.DataLoader(dataset, batch_sampler=sampler, collate_fn=...)`` and into
🤗 Accelerate's ``prepare``: Accelerate shards it batch-wise across processes (process ``i``
takes batches ``i, i+n, ...``). Every process must build the sampler with the same ``seed``
and call ``set_epoch`` with the same epoch so they agree on the batch order.

Note for Accelerate: the sampler exposes ``batch_size = None`` on purpose. Accelerate's
``BatchSamplerShard`` drops any group of batches whose last batch is not exactly
``batch_size`` long; with length bucketing the one short batch can land anywhere in the
shuffled order, so we declare batches as variable-sized (Accelerate then cycles whole
batches to even out the processes instead of dropping any). The configured size is
``max_batch_size``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import torch

from mcrf.errors import ConfigError

__all__ = ["LengthBucketSampler", "SentenceDataset", "sentence_lengths", "padding_efficiency", "budget_batches",
           "BATCH_WORDS"]

#: padded words per forward pass in prediction (``budget_batches``): 32 sentences of 128 words
BATCH_WORDS = 4096


class SentenceDataset(torch.utils.data.Dataset):
    """A map-style dataset over an in-memory list of items (e.g. ``Sentence`` objects).

    The collator turns a list of items into a padded batch; the dataset only indexes.
    """

    def __init__(self, items: Sequence[object]) -> None:
        self.items = list(items)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> object:
        return self.items[index]


def sentence_lengths(sentences: Sequence[object]) -> list[int]:
    """Number of words of each sentence (anything with a ``tokens`` sequence)."""
    return [len(s.tokens) for s in sentences]  # type: ignore[attr-defined]


def budget_batches(lengths: Sequence[int], batch_size: int, max_words: int | None = BATCH_WORDS) -> list[list[int]]:
    """Cut positions ``0..n-1`` of length-sorted items into consecutive batches bounded by count and padded size.

    A batch holds at most ``batch_size`` items, and its padded size (items x its longest, the last
    one when ``lengths`` ascend) at most ``max_words``; an item longer than ``max_words`` goes alone.
    So the memory of one forward pass follows the words in it, not only the sentence count.

    Args:
        lengths: words of each item, ascending.
        batch_size: most items per batch.
        max_words: most padded words per batch; ``None``: no bound.

    >>> budget_batches([1, 2, 2, 3, 3, 9], batch_size=4, max_words=8)
    [[0, 1, 2], [3, 4], [5]]
    >>> budget_batches([1, 1, 1, 1, 1], batch_size=2, max_words=None)
    [[0, 1], [2, 3], [4]]
    """
    batches: list[list[int]] = []
    current: list[int] = []
    for position, length in enumerate(lengths):
        if current and (len(current) == batch_size
                        or (max_words is not None and (len(current) + 1) * max(length, 1) > max_words)):
            batches.append(current)
            current = []
        current.append(position)
    if current:
        batches.append(current)
    return batches


class LengthBucketSampler(torch.utils.data.Sampler):
    """Batch sampler that groups items of similar length.

    With ``bucket=True`` and ``shuffle=True`` (training): the indices are shuffled, cut into
    pools of ``max_batch_size * pool_factor`` items, each pool is sorted by length and cut into
    batches, and finally the batch order is shuffled. Different epochs (``set_epoch``) give
    different, reproducible batches. With ``bucket=False`` batches are plain random slices of
    a shuffled order. With ``shuffle=False`` (evaluation) the batches are deterministic: sorted
    by length when ``bucket=True``, in input order otherwise.

    Args:
        lengths: length of each item (e.g. words per sentence); item ``i`` has length ``lengths[i]``.
        batch_size: maximum number of items per batch (>= 1). Only one batch per pool can be
            smaller (none when ``drop_last=True``).
        shuffle: shuffle items and batch order (seeded by ``seed`` and the epoch).
        bucket: group by length (True) or not (False).
        seed: base seed; the generator for epoch ``e`` is seeded with ``seed + e``.
        drop_last: drop a batch smaller than ``batch_size``.
        pool_factor: pool size in batches for ``bucket=True, shuffle=True``; larger pools pad
            less but mix lengths less.

    Raises:
        ValueError: on a non-positive ``batch_size``/``pool_factor`` or a negative length.
    """

    def __init__(
        self,
        lengths: Sequence[int],
        batch_size: int,
        *,
        shuffle: bool = True,
        bucket: bool = True,
        seed: int = 0,
        drop_last: bool = False,
        pool_factor: int = 50,
    ) -> None:
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise ConfigError(f"expected batch_size to be an integer >= 1, got {batch_size!r}")
        if not isinstance(pool_factor, int) or pool_factor < 1:
            raise ConfigError(f"expected pool_factor to be an integer >= 1, got {pool_factor!r}")
        lengths = [int(n) for n in lengths]
        bad = next((i for i, n in enumerate(lengths) if n < 0), None)
        if bad is not None:
            raise ValueError(f"expected non-negative lengths, got {lengths[bad]} at index {bad}")
        self.lengths = lengths
        self.max_batch_size = batch_size
        # Deliberately None: see the module docstring (Accelerate treats batches as variable-sized).
        self.batch_size = None
        self.shuffle = shuffle
        self.bucket = bucket
        self.seed = int(seed)
        self.drop_last = drop_last
        self.pool_factor = pool_factor
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose (reproducible) batch order ``__iter__`` yields."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        n = len(self.lengths)
        if self.drop_last:
            return n // self.max_batch_size
        if not (self.bucket and self.shuffle):
            return math.ceil(n / self.max_batch_size)
        pool = self.max_batch_size * self.pool_factor
        full, rest = divmod(n, pool)
        return full * math.ceil(pool / self.max_batch_size) + math.ceil(rest / self.max_batch_size)

    def batches(self) -> list[list[int]]:
        """All batches of the current epoch, in order (what ``__iter__`` yields)."""
        n = len(self.lengths)
        size = self.max_batch_size
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        if self.shuffle:
            order = torch.randperm(n, generator=generator).tolist()
        else:
            order = list(range(n))
        if not self.bucket:
            batches = [order[i : i + size] for i in range(0, n, size)]
        elif not self.shuffle:
            order.sort(key=lambda i: self.lengths[i])
            batches = [order[i : i + size] for i in range(0, n, size)]
        else:
            pool = size * self.pool_factor
            batches = []
            for start in range(0, n, pool):
                chunk = sorted(order[start : start + pool], key=lambda i: self.lengths[i])
                batches.extend(chunk[i : i + size] for i in range(0, len(chunk), size))
        if self.drop_last:
            batches = [b for b in batches if len(b) == size]
        if self.shuffle:
            perm = torch.randperm(len(batches), generator=generator).tolist()
            batches = [batches[i] for i in perm]
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        yield from self.batches()

    def state_dict(self) -> dict[str, int]:
        """Sampler state for checkpoints (``accelerator.register_for_checkpointing``)."""
        return {"epoch": self.epoch, "seed": self.seed}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Restore ``state_dict()`` output."""
        self.epoch = int(state["epoch"])
        self.seed = int(state["seed"])


def padding_efficiency(lengths: Sequence[int], batches: Sequence[Sequence[int]]) -> float:
    """Share of real (non-padding) positions when each batch is padded to its longest item.

    Args:
        lengths: item lengths.
        batches: index lists, e.g. ``list(sampler)``.

    Returns:
        ``sum(real) / sum(padded)`` in ``[0, 1]`` (1.0 for no batches or only empty items).
    """
    real = padded = 0
    for batch in batches:
        sizes = [lengths[i] for i in batch]
        real += sum(sizes)
        padded += max(sizes, default=0) * len(sizes)
    return real / padded if padded else 1.0

