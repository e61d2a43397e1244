"""Best-arm identification on synthetic arms of known means: the strategies find the
best arms with high probability (fixed seeds), keep to their budget, compare arms on
common minibatches, and are deterministic."""

from __future__ import annotations

import random
from collections.abc import Sequence

import pytest

from promptascent.search.bandits import (
    UCB,
    BestArmIdentification,
    SuccessiveRejects,
    make_selector,
)
from promptascent.search.minibatch import minibatches

STRATEGIES: dict[str, BestArmIdentification] = {
    "ucb": UCB(),
    "ucb-e": UCB(1.0, "ucb-e"),
    "successive-rejects": SuccessiveRejects(),
}
MEANS = {"a": 0.3, "b": 0.45, "c": 0.5, "d": 0.55, "e": 0.75}


class BernoulliArms:
    """Arm `x` scores 1 on item i with probability MEANS[x], fixed per (world, x, i);
    records every pull."""

    def __init__(self, means: dict[str, float], world: int) -> None:
        self.means = means
        self.world = world
        self.log: list[tuple[str, tuple[int, ...]]] = []

    def __call__(self, arm: str, batch: Sequence[int]) -> list[float]:
        self.log.append((arm, tuple(batch)))
        return [
            1.0 if random.Random(f"{self.world}/{arm}/{i}").random() < self.means[arm] else 0.0
            for i in batch
        ]


def run(
    strategy: BestArmIdentification,
    seed: int,
    *,
    budget: int,
    keep: int = 1,
    means: dict[str, float] = MEANS,
    items: int = 200,
    size: int = 4,
) -> tuple[tuple[str, ...], BernoulliArms, int]:
    arms = BernoulliArms(means, seed)
    batches = minibatches(range(items), size, random.Random(seed))
    sel = strategy.select(
        list(means), arms, batches, budget=budget, keep=keep, rng=random.Random(seed)
    )
    return sel.selected, arms, sel.spent


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_finds_the_best_arm_on_fixed_seeds(name: str) -> None:
    found = [run(STRATEGIES[name], seed, budget=200)[0][0] for seed in range(20)]
    assert found.count("e") >= 19  # deterministic: ucb and successive rejects get 20


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_keeps_the_top_two(name: str) -> None:
    means = {"a": 0.2, "b": 0.3, "c": 0.7, "d": 0.8, "f": 0.25}
    kept = [run(STRATEGIES[name], seed, budget=240, keep=2, means=means)[0] for seed in range(20)]
    assert sum(set(k) == {"c", "d"} for k in kept) >= 19
    assert all(len(k) == 2 for k in kept)


@pytest.mark.parametrize("name", list(STRATEGIES))
@pytest.mark.parametrize("budget", [20, 23, 57, 200])
def test_the_budget_holds_and_every_arm_is_tried(name: str, budget: int) -> None:
    _, arms, spent = run(STRATEGIES[name], 7, budget=budget)
    used = sum(len(batch) for _, batch in arms.log)
    assert used == spent <= budget
    assert {arm for arm, _ in arms.log} == set(MEANS)


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_arms_share_minibatches_and_never_see_an_item_twice(name: str) -> None:
    batches = minibatches(range(12), 4, random.Random(0))  # 3 batches
    arms = BernoulliArms(MEANS, 0)
    sel = STRATEGIES[name].select(
        list(MEANS), arms, batches, budget=10_000, keep=1, rng=random.Random(0)
    )
    for arm in MEANS:
        seen = [batch for a, batch in arms.log if a == arm]
        assert seen == [tuple(b) for b in batches[: len(seen)]]  # k-th pull on batch k
    assert max(sel.pulls.values()) == 3  # then the arm is exhausted: never pulled again


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_same_seed_same_pulls(name: str) -> None:
    first = run(STRATEGIES[name], 3, budget=150)[1].log
    second = run(STRATEGIES[name], 3, budget=150)[1].log
    assert first == second


def test_ucb1_pulls_by_the_upper_bound() -> None:
    """a always scores 1, b always 0, batches of one item, c = 1:
    after one pull each, index(a) = 1 + sqrt(ln 2), index(b) = sqrt(ln 2) -> a;
    then 1 + sqrt(ln 3 / 2) > sqrt(ln 3) -> a."""
    log: list[str] = []

    def pull(arm: str, batch: Sequence[int]) -> list[float]:
        log.append(arm)
        return [1.0 if arm == "a" else 0.0] * len(batch)

    batches = [[0], [1], [2], [3]]
    sel = UCB().select(["b", "a"], pull, batches, budget=4, keep=1, rng=random.Random(0))
    assert log == ["b", "a", "a", "a"]
    assert sel.selected == ("a",) and sel.means == {"a": 1.0, "b": 0.0}
    assert sel.pulls == {"a": 3, "b": 1} and sel.spent == 4


def test_ucb_e_explores_more_with_a_larger_constant() -> None:
    def pulls_of_worse_arm(c: float) -> int:
        log: list[str] = []

        def pull(arm: str, batch: Sequence[int]) -> list[float]:
            log.append(arm)
            return [0.6 if arm == "a" else 0.4] * len(batch)

        UCB(c, "ucb-e").select(
            ["a", "b"], pull, [[i] for i in range(40)], budget=40, keep=1, rng=random.Random(0)
        )
        return log.count("b")

    assert pulls_of_worse_arm(0.0) == 1  # greedy after the first pull
    assert pulls_of_worse_arm(0.5) < pulls_of_worse_arm(2.0)


def test_successive_rejects_phases() -> None:
    """K = 3, keep 1, budget 8 batches: L = 1 + 1/3; n_1 = floor(8 / (4/3 * 3)) = 2,
    n_2 = floor(8 / (4/3 * 2)) = 3. Each arm gets 2 batches, the worst goes, the two
    left get a third: 8 batches in all."""
    values = {"x": 0.2, "y": 0.9, "z": 0.5}
    log: list[str] = []

    def pull(arm: str, batch: Sequence[int]) -> list[float]:
        log.append(arm)
        return [values[arm]] * len(batch)

    sel = SuccessiveRejects().select(
        list(values), pull, [[i] for i in range(10)], budget=8, keep=1, rng=random.Random(0)
    )
    assert log == ["x", "x", "y", "y", "z", "z", "y", "z"]
    assert sel.selected == ("y",) and sel.pulls == {"x": 2, "y": 3, "z": 3}


def test_successive_rejects_reject_the_later_arm_on_a_tie() -> None:
    def pull(arm: str, batch: Sequence[int]) -> list[float]:
        return [0.5] * len(batch)

    sel = SuccessiveRejects().select(
        ["p", "q", "r"], pull, [[0], [1]], budget=6, keep=2, rng=random.Random(0)
    )
    assert sel.selected == ("p", "q")


def test_selection_ties_go_to_the_arm_listed_first() -> None:
    def pull(arm: str, batch: Sequence[int]) -> list[float]:
        return [1.0] * len(batch)

    sel = UCB().select(["s", "t", "u"], pull, [[0], [1]], budget=6, keep=2, rng=random.Random(5))
    assert sel.selected == ("s", "t")


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_failed_items_are_not_scores(name: str) -> None:
    """An arm whose pulls return no scores ranks last; partial scores are averaged."""

    def pull(arm: str, batch: Sequence[int]) -> list[float]:
        if arm == "broken":
            return []
        return [1.0] * (len(batch) - 1) if arm == "flaky" else [0.5] * len(batch)

    sel = STRATEGIES[name].select(
        ["broken", "flaky", "steady"],
        pull,
        [[0, 1], [2, 3], [4, 5]],
        budget=18,
        keep=2,
        rng=random.Random(0),
    )
    assert sel.selected == ("flaky", "steady")
    assert sel.means["broken"] is None and sel.means["flaky"] == 1.0


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_nothing_to_choose_pulls_nothing(name: str) -> None:
    def pull(arm: str, batch: Sequence[int]) -> list[float]:
        raise AssertionError("pulled")

    sel = STRATEGIES[name].select(["a", "b"], pull, [], budget=0, keep=2, rng=random.Random(0))
    assert sel.selected == ("a", "b") and sel.spent == 0


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_bad_arguments_are_errors(name: str) -> None:
    s = STRATEGIES[name]
    rng = random.Random(0)
    with pytest.raises(ValueError, match="budget"):
        s.select(["a", "b", "c"], lambda a, b: [1.0], [[0, 1]], budget=5, keep=1, rng=rng)
    with pytest.raises(ValueError, match="distinct"):
        s.select(["a", "a"], lambda a, b: [1.0], [[0]], budget=5, keep=1, rng=rng)
    with pytest.raises(ValueError, match="keep"):
        s.select(["a", "b"], lambda a, b: [1.0], [[0]], budget=5, keep=0, rng=rng)
    with pytest.raises(ValueError, match="non-empty"):
        s.select(["a", "b"], lambda a, b: [1.0], [[]], budget=5, keep=1, rng=rng)


def test_make_selector() -> None:
    assert make_selector("ucb", 2.0) == UCB(2.0, "ucb1")
    assert make_selector("ucb-e") == UCB(1.0, "ucb-e")
    assert isinstance(make_selector("successive-rejects"), SuccessiveRejects)
    with pytest.raises(ValueError, match="unknown"):
        make_selector("thompson")
