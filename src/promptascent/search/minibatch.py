"""Seeded minibatch sampling: every draw comes from the `random.Random` passed in, so
the same seed gives the same batches."""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from typing import TypeVar

T = TypeVar("T")


def sample_minibatch(items: Sequence[T], size: int, rng: random.Random) -> list[T]:
    """`size` items drawn without replacement, in the order drawn; all of them,
    shuffled, when `size >= len(items)`."""
    if size < 1:
        raise ValueError(f"minibatch size must be at least 1, got {size}")
    return rng.sample(list(items), min(size, len(items)))


def iter_minibatches(
    items: Sequence[T],
    size: int,
    rng: random.Random,
    *,
    epochs: int | None = 1,
    drop_last: bool = False,
) -> Iterator[list[T]]:
    """Consecutive batches of `size` from a fresh seeded shuffle of `items` per epoch:
    within an epoch no item repeats. The last batch of an epoch is smaller when `size`
    does not divide `len(items)`, unless `drop_last`. `epochs=None` never ends (on
    non-empty items)."""
    if size < 1:
        raise ValueError(f"minibatch size must be at least 1, got {size}")
    if epochs is not None and epochs < 0:
        raise ValueError(f"epochs must not be negative, got {epochs}")
    pool = list(items)
    if not pool:
        return
    epoch = 0
    while epochs is None or epoch < epochs:
        order = rng.sample(pool, len(pool))
        for start in range(0, len(order), size):
            batch = order[start : start + size]
            if drop_last and len(batch) < size:
                break
            yield batch
        epoch += 1
        if drop_last and len(pool) < size:
            return  # no full batch will ever come: end instead of looping forever


def minibatches(items: Sequence[T], size: int, rng: random.Random) -> list[list[T]]:
    """One epoch of `iter_minibatches` as a list: a seeded partition of `items`."""
    return list(iter_minibatches(items, size, rng))
