"""Sizing the final selection to the task calls the budget has left.

After the search, the finalists (the seed first, then the best candidates of the
search, best first) are scored on more dev examples than they were screened on, and
the best there wins. The full final scores every finalist on the whole dev split; a
small budget cannot pay for that. `plan_final` decides, by these rules (the first
that fits wins):

1. every finalist on every example;
2. fewer finalists, the worst ranked dropped first (never the `forced` ones, never
   fewer than `forced + 1`), on every example;
3. `forced + 1` finalists (at least two) on the longest prefix of the examples that
   the budget pays for, if that prefix is longer than the one they were all screened
   on: a smaller final, but still more paired evidence than the screening;
4. none: the budget adds no evidence, and the winner is chosen on the screening
   scores (`FinalPlan.screening_only`).

A single finalist (nothing to choose between) gets rule 1 or nothing.

Pure: it only counts. A finalist is never charged for an example it already has a
score on (Optimizer.evaluate reuses those).
"""

from __future__ import annotations

from collections.abc import Sequence, Set
from dataclasses import dataclass


@dataclass(frozen=True)
class FinalPlan:
    """`finalists`: how many of the finalists (in the order given) are scored;
    `examples`: on how many of the examples (in the order given); `cost`: the task
    calls that takes; `total`: how many examples there were."""

    finalists: int
    examples: int
    cost: int
    total: int

    @property
    def screening_only(self) -> bool:
        """No final selection: the budget left adds no evidence."""
        return self.finalists == 0

    @property
    def whole(self) -> bool:
        """The finalists are scored on every example (the whole dev split)."""
        return not self.screening_only and self.examples == self.total


def final_cost(known: Sequence[Set[str]], order: Sequence[str], finalists: int, m: int) -> int:
    """Task calls to score the first `finalists` on the first `m` examples of `order`:
    the examples each lacks a score on (`known[i]`: the ids finalist i has one on)."""
    prefix = order[:m]
    return sum(sum(1 for x in prefix if x not in known[i]) for i in range(finalists))


def plan_final(
    known: Sequence[Set[str]], order: Sequence[str], budget: int | None, *, forced: int
) -> FinalPlan:
    """The final selection that fits `budget` task calls (None: no limit), by the rules
    of the module docstring. `known[i]`: the example ids finalist i already has a score
    on (finalists in rank order, the `forced` ones first); `order`: the example ids the
    final may use, in the order it takes them (the screened ones first)."""
    n, total = len(known), len(order)
    full = final_cost(known, order, n, total)
    if budget is None or full <= budget:
        return FinalPlan(n, total, full, total)
    least = min(n, max(forced + 1, 2))
    for k in range(n - 1, least - 1, -1):
        cost = final_cost(known, order, k, total)
        if cost <= budget:
            return FinalPlan(k, total, cost, total)
    if least < 2:
        return FinalPlan(0, 0, 0, total)
    common = _common_prefix(known[:least], order)
    best = None
    for m in range(common + 1, total):
        cost = final_cost(known, order, least, m)
        if cost > budget:
            break
        best = FinalPlan(least, m, cost, total)
    return best or FinalPlan(0, 0, 0, total)


def _common_prefix(known: Sequence[Set[str]], order: Sequence[str]) -> int:
    """How many leading examples of `order` every finalist already has a score on."""
    for m, x in enumerate(order):
        if any(x not in k for k in known):
            return m
    return len(order)
