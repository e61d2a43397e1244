"""Best-arm identification: choosing the best few candidates (arms) with a fixed budget
of evaluations on minibatches, as ProTeGi's selection step does (Pryzant et al., 2023,
section 2.2; Audibert & Bubeck, 2010, "Best Arm Identification in Multi-Armed Bandits").

The strategies are pure: `pull` is their only effect, and their only randomness is
the `rng` passed in. Their shared contract (see `BestArmIdentification.select`):

- Arms are distinct, hashable ids. `pull(arm, batch)` returns the arm's scores on
  the items of `batch`, higher is better, in [0, 1] for the confidence bounds to be
  calibrated. It may return fewer scores than items (a failed item is not a score);
  only returned scores enter an arm's mean.
- Common minibatches: an arm's k-th pull is on `batches[k]`, for every arm. So arms
  are compared on the same items, an arm never sees an item twice, and an arm that
  has been pulled on every batch is not pulled again (its mean is then exact).
- `budget` counts items pulled (one arm on one item: one task-model call), summed
  over all pulls; it is never exceeded. It must cover one batch per arm.
- The result keeps the `keep` best arms by empirical mean, best first; ties go to
  the arm listed first, arms never scored come last.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Generic, Literal, Protocol, TypeVar

A = TypeVar("A", bound=Hashable)
E = TypeVar("E")

Pull = Callable[[A, Sequence[E]], Sequence[float]]


@dataclass(frozen=True)
class Selection(Generic[A]):
    """What a strategy chose, and what it saw."""

    selected: tuple[A, ...]  # the kept arms, best first
    means: dict[A, float | None]  # empirical mean per arm; None if never scored
    pulls: dict[A, int]  # batches each arm was pulled on
    spent: int  # items pulled in total (<= budget)


class BestArmIdentification(Protocol):
    def select(
        self,
        arms: Sequence[A],
        pull: Pull[A, E],
        batches: Sequence[Sequence[E]],
        *,
        budget: int,
        keep: int,
        rng: random.Random,
    ) -> Selection[A]:
        """The `keep` best of `arms`, found by pulling them on `batches` within
        `budget` items (see the module docstring). With `len(arms) <= keep` nothing
        is pulled and every arm is kept, in the given order. Raises ValueError on
        duplicate arms, `keep < 1`, empty batches, or a budget below one batch per
        arm."""
        ...


class _Tracker(Generic[A, E]):
    """Per-arm sums, score counts and pulls over common minibatches, and the spend."""

    def __init__(
        self, arms: Sequence[A], pull: Pull[A, E], batches: Sequence[Sequence[E]], budget: int
    ) -> None:
        self.arms = list(arms)
        self._pull = pull
        self.batches = batches
        self.budget = budget
        self.total = dict.fromkeys(self.arms, 0.0)
        self.scored = dict.fromkeys(self.arms, 0)
        self.items = dict.fromkeys(self.arms, 0)  # items pulled, scored or not
        self.pulls = dict.fromkeys(self.arms, 0)
        self.spent = 0

    def can_pull(self, arm: A) -> bool:
        k = self.pulls[arm]
        return k < len(self.batches) and self.spent + len(self.batches[k]) <= self.budget

    def pull(self, arm: A) -> None:
        batch = self.batches[self.pulls[arm]]
        scores = list(self._pull(arm, batch))
        self.spent += len(batch)
        self.pulls[arm] += 1
        self.items[arm] += len(batch)
        self.total[arm] += sum(scores)
        self.scored[arm] += len(scores)

    def mean(self, arm: A) -> float | None:
        n = self.scored[arm]
        return self.total[arm] / n if n else None

    def ranked(self, among: Sequence[A]) -> list[A]:
        """Best mean first; ties keep the order of `arms`; never scored last."""
        order = {a: i for i, a in enumerate(self.arms)}

        def key(a: A) -> tuple[int, float, int]:
            m = self.mean(a)
            return (m is None, -(m or 0.0), order[a])

        return sorted(among, key=key)

    def selection(self, among: Sequence[A], keep: int) -> Selection[A]:
        return Selection(
            tuple(self.ranked(among)[:keep]),
            {a: self.mean(a) for a in self.arms},
            dict(self.pulls),
            self.spent,
        )


def _check(arms: Sequence[A], batches: Sequence[Sequence[E]], budget: int, keep: int) -> bool:
    """Validates the arguments; True when there is anything to choose."""
    if keep < 1:
        raise ValueError(f"keep must be at least 1, got {keep}")
    if len(set(arms)) != len(arms):
        raise ValueError("arms must be distinct")
    if len(arms) <= keep:
        return False
    if not batches or any(len(b) == 0 for b in batches):
        raise ValueError("the batches must be non-empty")
    if budget < len(arms) * len(batches[0]):
        raise ValueError(
            f"a budget of {budget} items cannot pull {len(arms)} arms once "
            f"on a batch of {len(batches[0])}"
        )
    return True


@dataclass(frozen=True)
class UCB:
    """Upper confidence bound sampling, then the best means (ProTeGi's Algorithm 2).

    Every arm is pulled once; then each step pulls the open arm with the highest index,
    ties broken at random with `rng`:

    - "ucb1": mean + c * sqrt(ln t / n), t the items pulled so far over all arms;
    - "ucb-e": mean + c * sqrt(c / n), ProTeGi's form of UCB-E (Audibert, Bubeck and
      Munos, 2010: mean + sqrt(a / n), with a = c**3).

    n is the items the arm was pulled on; the mean is over its scores. It stops when no
    arm can be pulled within the budget (or every arm has seen every batch).
    """

    exploration: float = 1.0  # c
    variant: Literal["ucb1", "ucb-e"] = "ucb1"

    def select(
        self,
        arms: Sequence[A],
        pull: Pull[A, E],
        batches: Sequence[Sequence[E]],
        *,
        budget: int,
        keep: int,
        rng: random.Random,
    ) -> Selection[A]:
        tracker = _Tracker(arms, pull, batches, budget)
        if not _check(arms, batches, budget, keep):
            return tracker.selection(arms, keep)
        for arm in arms:
            tracker.pull(arm)
        c = self.exploration
        while True:
            open_arms = [a for a in arms if tracker.can_pull(a)]
            if not open_arms:
                break
            t = max(tracker.spent, 1)
            index: dict[A, float] = {}
            for a in open_arms:
                n = tracker.items[a]
                mean = tracker.mean(a) or 0.0
                spread = math.log(t) if self.variant == "ucb1" else c
                index[a] = mean + c * math.sqrt(spread / n)
            top = max(index.values())
            tied = [a for a in open_arms if index[a] == top]
            tracker.pull(tied[0] if len(tied) == 1 else rng.choice(tied))
        return tracker.selection(arms, keep)


@dataclass(frozen=True)
class SuccessiveRejects:
    """Successive rejects (Audibert and Bubeck, 2010; ProTeGi's Algorithm 3), stopped
    when `keep` arms are left: in phase k = 1 .. K - keep every surviving arm is pulled
    up to n_k batches in all, then the one with the lowest mean is rejected (ties:
    the one listed last). n_k = floor(B / (L * (K + 1 - k))), B the budget in batches,
    L = 1 + sum(1/j for j = keep+2 .. K), which spends at most B (for keep = 1, L is
    the paper's log-bar(K) = 1/2 + sum(1/j for j = 2 .. K)). Every arm gets at least
    one batch; n_k never decreases. `rng` is unused: it is deterministic."""

    def select(
        self,
        arms: Sequence[A],
        pull: Pull[A, E],
        batches: Sequence[Sequence[E]],
        *,
        budget: int,
        keep: int,
        rng: random.Random,
    ) -> Selection[A]:
        tracker = _Tracker(arms, pull, batches, budget)
        if not _check(arms, batches, budget, keep):
            return tracker.selection(arms, keep)
        k_arms = len(arms)
        budget_batches = budget // max(len(b) for b in batches)
        log_bar = 1.0 + sum(1.0 / j for j in range(keep + 2, k_arms + 1))
        alive = list(arms)
        target = 0
        for phase in range(1, k_arms - keep + 1):
            planned = math.floor(budget_batches / (log_bar * (k_arms + 1 - phase)))
            target = min(max(1, target, planned), len(batches))
            for arm in alive:
                while tracker.pulls[arm] < target and tracker.can_pull(arm):
                    tracker.pull(arm)
            alive.remove(tracker.ranked(alive)[-1])
        return tracker.selection(alive, keep)


def make_selector(name: str, exploration: float = 1.0) -> BestArmIdentification:
    """A strategy by name: "ucb" (UCB1), "ucb-e", or "successive-rejects"."""
    if name == "ucb":
        return UCB(exploration, "ucb1")
    if name == "ucb-e":
        return UCB(exploration, "ucb-e")
    if name == "successive-rejects":
        return SuccessiveRejects()
    raise ValueError(f"unknown selector {name!r}; known: ucb, ucb-e, successive-rejects")
