"""Population helpers for evolutionary search: parent selection, survivor selection,
and dropping duplicates.

Pure functions. Fitness is higher-is-better; None or NaN means "not measured" (a
candidate whose every example failed). Selection draws only from the `rng` it is
given, so the same seed gives the same parents. Ties keep the earlier member:
callers list parents before children, so an old member is kept over an equally
fit newcomer.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import TypeVar

T = TypeVar("T")

# The weight of a member with zero (or unmeasured) fitness on the roulette wheel:
# small enough that fit members dominate, large enough that an all-zero population
# is drawn uniformly and a poor member can still be a parent now and then.
ROULETTE_FLOOR = 0.05


def fitness_value(fitness: float | None) -> float:
    """A fitness usable in arithmetic: None and NaN become 0.0."""
    if fitness is None or math.isnan(fitness):
        return 0.0
    return fitness


def roulette_select(
    fitness: Sequence[float | None],
    k: int,
    rng: random.Random,
    *,
    floor: float = ROULETTE_FLOOR,
    distinct: bool = True,
) -> list[int]:
    """Indices of `k` members drawn with probability proportional to fitness.

    Each member's weight is max(fitness, floor), so members at zero (or unmeasured,
    or negative) fitness keep a small chance. With `distinct`, a member drawn once
    is not drawn again (k must then be at most the population size). One
    `rng.random()` per draw."""
    if floor <= 0:
        raise ValueError(f"floor must be positive, got {floor}")
    weights = [max(fitness_value(f), floor) for f in fitness]
    return _draw(len(weights), k, distinct, lambda available: _spin(weights, available, rng))


def tournament_select(
    fitness: Sequence[float | None],
    k: int,
    rng: random.Random,
    *,
    size: int = 2,
    distinct: bool = True,
) -> list[int]:
    """Indices of `k` tournament winners: each draw samples `size` members (without
    replacement, from those still available) and keeps the fittest; ties go to the
    earlier member. With `distinct`, a winner is not drawn again."""
    if size < 1:
        raise ValueError(f"tournament size must be at least 1, got {size}")
    values = [fitness_value(f) for f in fitness]

    def play(available: list[int]) -> int:
        entrants = rng.sample(available, min(size, len(available)))
        return min(entrants, key=lambda i: (-values[i], i))

    return _draw(len(values), k, distinct, play)


def keep_best(items: Sequence[T], n: int, fitness: Callable[[T], float | None]) -> list[T]:
    """Elitist survivor selection: the `n` fittest items, fittest first. The sort is
    stable (ties keep the given order) and unmeasured items rank last."""
    if n < 0:
        raise ValueError(f"n must not be negative, got {n}")

    def rank(item: T) -> float:
        f = fitness(item)
        return -math.inf if f is None or math.isnan(f) else f

    return sorted(items, key=rank, reverse=True)[:n]


def drop_duplicates(items: Iterable[T], key: Callable[[T], Hashable] | None = None) -> list[T]:
    """The items in order, without those whose key (default: the item) an earlier
    item already had."""
    seen: set[Hashable] = set()
    out: list[T] = []
    for item in items:
        k = item if key is None else key(item)
        if k in seen:
            continue
        seen.add(k)
        out.append(item)
    return out


def text_key(text: str) -> str:
    """A key under which texts that differ only in case, punctuation or spacing are
    equal: "Answer yes or no." and "answer yes, or no" are one prompt to a search."""
    return re.sub(r"\W+", " ", text.casefold()).strip()


def _draw(n: int, k: int, distinct: bool, pick: Callable[[list[int]], int]) -> list[int]:
    if k < 0:
        raise ValueError(f"k must not be negative, got {k}")
    if k and n == 0:
        raise ValueError("cannot select from an empty population")
    if distinct and k > n:
        raise ValueError(f"cannot select {k} distinct members from {n}")
    available = list(range(n))
    chosen: list[int] = []
    for _ in range(k):
        i = pick(available)
        chosen.append(i)
        if distinct:
            available.remove(i)
    return chosen


def _spin(weights: Sequence[float], available: list[int], rng: random.Random) -> int:
    total = sum(weights[i] for i in available)
    point = rng.random() * total
    acc = 0.0
    for i in available:
        acc += weights[i]
        if point < acc:
            return i
    return available[-1]  # float rounding at the very end of the wheel
