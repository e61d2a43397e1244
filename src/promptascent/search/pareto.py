"""The Pareto front of candidates over score (higher is better), prompt length and
cost (both lower is better)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class ParetoPoint:
    """One candidate's objectives: `score` (higher is better), `length` (e.g. prompt
    tokens) and `cost` (e.g. dollars per call), both lower is better."""

    id: str
    score: float
    length: float = 0.0
    cost: float = 0.0

    @property
    def finite(self) -> bool:
        return all(math.isfinite(v) for v in (self.score, self.length, self.cost))


def dominates(a: ParetoPoint, b: ParetoPoint) -> bool:
    """Whether `a` is at least as good as `b` in every objective and better in one."""
    no_worse = a.score >= b.score and a.length <= b.length and a.cost <= b.cost
    better = a.score > b.score or a.length < b.length or a.cost < b.cost
    return no_worse and better


def pareto_front(points: Iterable[ParetoPoint]) -> list[ParetoPoint]:
    """The points no other point dominates, in input order. Points with equal
    objectives do not dominate each other: all are kept. Points with a non-finite
    objective (e.g. a score of nan for a candidate that was never scored) are left out."""
    pts = [p for p in points if p.finite]
    return [p for p in pts if not any(dominates(q, p) for q in pts)]
