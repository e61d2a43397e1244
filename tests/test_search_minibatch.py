"""Seeded minibatch sampling: same seed, same batches; no repeats within an epoch."""

from __future__ import annotations

import random
from itertools import islice

import pytest

from promptascent.search.minibatch import iter_minibatches, minibatches, sample_minibatch


def test_sample_minibatch_draws_without_replacement_and_is_seeded() -> None:
    items = list(range(20))
    batch = sample_minibatch(items, 5, random.Random(3))
    assert len(batch) == 5 and len(set(batch)) == 5 and set(batch) <= set(items)
    assert batch == sample_minibatch(items, 5, random.Random(3))
    assert batch != sample_minibatch(items, 5, random.Random(4))


def test_sample_minibatch_larger_than_the_items_returns_them_all_shuffled() -> None:
    batch = sample_minibatch("abc", 10, random.Random(0))
    assert sorted(batch) == ["a", "b", "c"]
    assert sample_minibatch([], 3, random.Random(0)) == []


def test_one_epoch_partitions_the_items() -> None:
    batches = minibatches(range(10), 4, random.Random(1))
    assert [len(b) for b in batches] == [4, 4, 2]
    assert sorted(x for b in batches for x in b) == list(range(10))
    assert batches == list(iter_minibatches(range(10), 4, random.Random(1)))


def test_drop_last_and_several_epochs() -> None:
    batches = list(iter_minibatches(range(10), 4, random.Random(1), epochs=2, drop_last=True))
    assert [len(b) for b in batches] == [4, 4, 4, 4]
    first, second = batches[:2], batches[2:]
    assert len({x for b in first for x in b}) == 8 and len({x for b in second for x in b}) == 8
    assert first != second  # each epoch reshuffles


def test_endless_epochs_and_degenerate_inputs() -> None:
    endless = iter_minibatches([1, 2, 3], 2, random.Random(0), epochs=None)
    assert len(list(islice(endless, 7))) == 7
    assert list(iter_minibatches([], 2, random.Random(0), epochs=None)) == []
    # no full batch can ever come: ends instead of looping
    assert list(iter_minibatches([1], 2, random.Random(0), epochs=None, drop_last=True)) == []


@pytest.mark.parametrize("size", [0, -1])
def test_bad_sizes_are_errors(size: int) -> None:
    with pytest.raises(ValueError):
        sample_minibatch([1, 2], size, random.Random(0))
    with pytest.raises(ValueError):
        minibatches([1, 2], size, random.Random(0))
