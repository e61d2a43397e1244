"""The Pareto front over examples (GEPA): which candidates are best on at least one
example, and a parent drawn from them.

Input: each candidate's per-example scores (higher is better) on the same examples,
and its aggregate score. An example's front is the set of candidates with the highest
score on it (ties: all of them). A candidate is dominated when every example whose
front holds it also holds another candidate that is not dominated; dominated
candidates are removed one at a time, the lowest aggregate first (gepa's
`remove_dominated_programs`). Every function keeps the candidates' input order, so a
seeded draw is deterministic.
"""

from __future__ import annotations

import random
from collections.abc import Mapping

Scores = Mapping[str, Mapping[str, float]]  # candidate id -> example id -> score


def example_fronts(scores: Scores) -> dict[str, list[str]]:
    """Example id -> the candidates with the highest score on it (input order). An
    example no candidate was scored on has no front."""
    best: dict[str, float] = {}
    for per_example in scores.values():
        for ex, value in per_example.items():
            best[ex] = max(value, best.get(ex, value))
    fronts: dict[str, list[str]] = {ex: [] for ex in best}
    for cand, per_example in scores.items():
        for ex, value in per_example.items():
            if value == best[ex]:
                fronts[ex].append(cand)
    return fronts


def dominators(fronts: Mapping[str, list[str]], aggregate: Mapping[str, float]) -> list[str]:
    """The candidates on some front that are not dominated (module docstring), in the
    order they first appear on the fronts."""
    on_front: list[str] = []
    for front in fronts.values():
        on_front += [c for c in front if c not in on_front]
    # The lowest aggregate is tried first (stable: ties keep the order above).
    order = sorted(on_front, key=lambda c: aggregate.get(c, 0.0))
    dominated: set[str] = set()
    removed = True
    while removed:
        removed = False
        for cand in order:
            if cand in dominated:
                continue
            others = set(order) - dominated - {cand}
            held = [front for front in fronts.values() if cand in front]
            if all(any(o in others for o in front) for front in held):
                dominated.add(cand)
                removed = True
                break
    return [c for c in on_front if c not in dominated]


def front_weights(scores: Scores, aggregate: Mapping[str, float]) -> dict[str, int]:
    """Each non-dominated candidate -> the number of examples on whose front it is
    (after the dominated are removed): how often gepa's selector lists it."""
    fronts = example_fronts(scores)
    kept = dominators(fronts, aggregate)
    return {c: sum(c in front for front in fronts.values()) for c in kept}


def sample_parent(weights: Mapping[str, int], rng: random.Random) -> str | None:
    """A candidate drawn with probability proportional to its weight (gepa lists each
    candidate as often as its weight and picks one); None when there is none."""
    listing = [c for c, w in weights.items() for _ in range(w)]
    return rng.choice(listing) if listing else None


def wins(scores: Scores, a: str, b: str) -> tuple[int, int]:
    """On the examples both are scored on: how many `a` scores higher than `b` on, and
    how many `b` scores higher on. Complementary candidates win some each."""
    sa, sb = scores[a], scores[b]
    common = [ex for ex in sa if ex in sb]
    return sum(sa[ex] > sb[ex] for ex in common), sum(sb[ex] > sa[ex] for ex in common)
