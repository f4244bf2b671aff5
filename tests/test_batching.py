"""LengthBucketSampler: every item exactly once, bucketing pads less, seeds, Accelerate sharding."""

from __future__ import annotations

import random

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mcrf.data.batching import LengthBucketSampler, SentenceDataset, padding_efficiency


def _flat(batches):
    return sorted(i for b in batches for i in b)


@settings(max_examples=40, deadline=None)
@given(
    lengths=st.lists(st.integers(0, 60), min_size=0, max_size=200),
    batch_size=st.integers(1, 17),
    shuffle=st.booleans(),
    bucket=st.booleans(),
    pool_factor=st.integers(1, 5),
)
def test_every_item_exactly_once(lengths, batch_size, shuffle, bucket, pool_factor):
    sampler = LengthBucketSampler(lengths, batch_size, shuffle=shuffle, bucket=bucket, seed=3,
                                  pool_factor=pool_factor)
    batches = list(sampler)
    assert _flat(batches) == list(range(len(lengths)))
    assert len(batches) == len(sampler)
    assert all(1 <= len(b) <= batch_size for b in batches)


@settings(max_examples=25, deadline=None)
@given(lengths=st.lists(st.integers(0, 60), min_size=1, max_size=150), batch_size=st.integers(1, 9))
def test_drop_last_keeps_only_full_batches(lengths, batch_size):
    sampler = LengthBucketSampler(lengths, batch_size, drop_last=True, seed=1, pool_factor=2)
    batches = list(sampler)
    assert all(len(b) == batch_size for b in batches)
    assert len(batches) == len(sampler) == len(lengths) // batch_size
    assert len(set(_flat(batches))) == len(_flat(batches))


def test_bucketing_pads_far_less_than_random_batches():
    rng = random.Random(0)
    lengths = [max(1, int(rng.expovariate(1 / 14))) for _ in range(3000)]
    bucketed = list(LengthBucketSampler(lengths, 32, bucket=True, seed=0))
    plain = list(LengthBucketSampler(lengths, 32, bucket=False, seed=0))
    assert padding_efficiency(lengths, bucketed) > 0.85
    assert padding_efficiency(lengths, plain) < 0.6
    # within a batch, bucketed lengths are close together
    spreads = [max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in bucketed]
    assert sorted(spreads)[len(spreads) // 2] <= 2


def test_seed_and_epoch_give_reproducible_and_different_orders():
    lengths = list(range(100)) * 3
    a = LengthBucketSampler(lengths, 8, seed=5)
    b = LengthBucketSampler(lengths, 8, seed=5)
    assert list(a) == list(b)
    first = list(a)
    a.set_epoch(1)
    assert list(a) != first
    b.load_state_dict(a.state_dict())
    assert list(b) == list(a)
    c = LengthBucketSampler(lengths, 8, seed=6)
    assert list(c) != first


def test_eval_order_is_deterministic_and_sorted():
    lengths = [5, 1, 3, 9, 2, 2, 7]
    sampler = LengthBucketSampler(lengths, 3, shuffle=False, bucket=True)
    assert list(sampler) == [[1, 4, 5], [2, 0, 6], [3]]
    sampler = LengthBucketSampler(lengths, 3, shuffle=False, bucket=False)
    assert list(sampler) == [[0, 1, 2], [3, 4, 5], [6]]


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_bad_batch_size_is_a_clear_error(bad):
    with pytest.raises(ValueError, match="batch_size"):
        LengthBucketSampler([1, 2], bad)


def test_negative_length_is_a_clear_error():
    with pytest.raises(ValueError, match="index 1"):
        LengthBucketSampler([1, -2], 4)


def test_works_as_dataloader_batch_sampler_with_dynamic_padding():
    lengths = [3, 7, 1, 4, 4, 2, 9, 6]
    items = [list(range(n)) for n in lengths]

    def collate(batch):
        width = max(len(x) for x in batch)
        return torch.tensor([x + [-1] * (width - len(x)) for x in batch])  # shape: (B, width)

    sampler = LengthBucketSampler(lengths, 3, shuffle=False)
    loader = torch.utils.data.DataLoader(SentenceDataset(items), batch_sampler=sampler, collate_fn=collate)
    widths = [t.shape[1] for t in loader]
    assert widths == [3, 6, 9]


@pytest.mark.parametrize("num_processes", [2, 3])
def test_accelerate_sharding_covers_every_item(num_processes):
    """Accelerate's BatchSamplerShard (what ``prepare`` wraps a batch sampler in) loses nothing."""
    from accelerate.data_loader import BatchSamplerShard

    rng = random.Random(1)
    lengths = [rng.randint(1, 40) for _ in range(101)]
    sampler = LengthBucketSampler(lengths, 8, seed=2, pool_factor=3)
    shards = [list(BatchSamplerShard(sampler, num_processes, rank, even_batches=True))
              for rank in range(num_processes)]
    assert len({len(s) for s in shards}) == 1  # every process gets the same number of steps
    seen = [i for shard in shards for b in shard for i in b]
    assert set(seen) == set(range(len(lengths)))  # nothing lost (a few cycled batches may repeat)
    assert len(seen) - len(lengths) <= 8 * (num_processes - 1)
    assert all(len(s) == len(BatchSamplerShard(sampler, num_processes, 0)) for s in shards)
