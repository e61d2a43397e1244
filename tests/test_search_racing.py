"""Racing over blocks of examples: paired comparisons, early elimination of the
clearly worse, equal candidates kept, and the one-sided paired t-test it uses."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from promptascent.evaluation.stats import paired_t_test, student_t_sf
from promptascent.search.racing import race

EXAMPLES = list(range(20))
BLOCKS = [EXAMPLES[i : i + 5] for i in range(0, 20, 5)]


def alternating(e: int) -> float:
    return 1.0 if e % 2 == 0 else 0.0


def worse(e: int) -> float:
    """As `alternating`, but wrong on every fourth example."""
    return 0.0 if e % 4 == 0 else alternating(e)


class Scorer:
    """Scores from per-candidate functions; records every call in order."""

    def __init__(self, table: dict[str, object]) -> None:
        self.table = table
        self.calls: list[tuple[str, int]] = []

    def __call__(self, cid: str, examples: Sequence[int]) -> list[float | None]:
        self.calls.append((cid, examples[0]))
        fn = self.table[cid]
        return [fn(e) for e in examples]  # type: ignore[operator]


def test_student_t_tail_matches_tables() -> None:
    assert student_t_sf(2.0, 10) == pytest.approx(0.036694, abs=1e-6)
    assert student_t_sf(1.812461, 10) == pytest.approx(0.05, abs=1e-6)
    assert student_t_sf(12.706, 1) == pytest.approx(0.025, abs=1e-5)
    assert student_t_sf(-1.812461, 10) == pytest.approx(0.95, abs=1e-6)
    assert student_t_sf(0.0, 5) == 0.5


def test_paired_t_test_is_one_sided() -> None:
    a, b = [1, 1, 0, 1, 1], [0, 0, 0, 1, 0]
    # differences 1,1,0,0,1: t = 0.6 / sqrt(0.3 / 5) = 2.449 on 4 df (scipy: 0.035242)
    assert paired_t_test(a, b) == pytest.approx(0.035242, abs=1e-6)
    assert paired_t_test(b, a) == pytest.approx(1 - 0.035242, abs=1e-6)


def test_paired_t_test_degenerate_cases() -> None:
    assert paired_t_test([1.0], [0.0]) == 1.0  # one pair: no evidence
    assert paired_t_test([1, 1, 1], [0, 0, 0]) == 0.0  # always better by the same amount
    assert paired_t_test([0, 1, 0], [0, 1, 0]) == 1.0  # identical
    assert paired_t_test([0, 0, 0], [1, 1, 1]) == 1.0
    with pytest.raises(ValueError, match="lengths differ"):
        paired_t_test([1, 0], [1])


def test_a_clearly_worse_candidate_is_dropped_early_and_equal_ones_run_on() -> None:
    scorer = Scorer({"a": alternating, "b": alternating, "c": worse})
    result = race(["a", "b", "c"], BLOCKS, scorer, survivors=1, alpha=0.05)
    # after block 1, a - c is 1,0,0,0,1 (p = 0.089); after block 2 (p = 0.04) c goes
    assert result.eliminated["c"] == 2
    assert len(result.scores["c"]) == 10
    # a and b never differ: neither is dropped by the test; both see every block
    assert len(result.scores["a"]) == len(result.scores["b"]) == 20
    assert result.blocks == 4
    # the race ends with one survivor: ties keep the input order
    assert result.survivors == ("a",) and result.eliminated["b"] == 4
    assert scorer.calls[:6] == [("a", 0), ("b", 0), ("c", 0), ("a", 5), ("b", 5), ("c", 5)]
    assert ("c", 10) not in scorer.calls


def test_the_race_stops_when_survivors_remain() -> None:
    scorer = Scorer({"a": alternating, "b": alternating, "c": worse})
    result = race(["a", "b", "c"], BLOCKS, scorer, survivors=2, alpha=0.05)
    assert result.survivors == ("a", "b") and result.blocks == 2
    assert result.eliminated == {"c": 2}


def test_a_candidate_needs_survivors_many_better_rivals_to_go() -> None:
    # c is worse than a but not than the equally bad d: with survivors=2 it needs two
    # significantly better rivals, and it only ever has one.
    always = lambda e: 1.0  # noqa: E731
    never = lambda e: 0.0  # noqa: E731
    scorer = Scorer({"a": always, "c": never, "d": never})
    result = race(["a", "c", "d"], BLOCKS, scorer, survivors=2, alpha=0.05, max_blocks=2)
    assert result.blocks == 2 and result.survivors == ("a", "c")
    assert result.eliminated == {"d": 2}


def test_max_blocks_ends_the_race_and_ranks_by_mean() -> None:
    scorer = Scorer({"x": worse, "y": alternating})
    result = race(["x", "y"], BLOCKS, scorer, survivors=1, alpha=0.001, max_blocks=1)
    assert result.blocks == 1
    assert result.survivors == ("y",)
    assert result.mean("y") == pytest.approx(0.6) and result.mean("x") == pytest.approx(0.2)


def test_nothing_is_scored_when_there_are_no_more_candidates_than_survivors() -> None:
    scorer = Scorer({"a": alternating, "b": worse})
    result = race(["a", "b"], BLOCKS, scorer, survivors=2)
    assert scorer.calls == [] and result.survivors == ("a", "b") and result.blocks == 0
    assert math.isnan(result.mean("a"))


def test_unscored_examples_are_left_out_of_the_comparison() -> None:
    def failing(e: int) -> float | None:
        return None if e % 5 else 1.0  # only the first example of each block scored

    scorer = Scorer({"a": alternating, "f": failing})
    result = race(["a", "f"], BLOCKS, scorer, survivors=1, alpha=0.2)
    # paired examples 0, 5, 10, 15: a scores 1, 0, 1, 0; f scores 1 everywhere
    assert result.scores["f"][:5] == (1.0, None, None, None, None)
    assert result.mean("f") == 1.0
    assert result.survivors == ("f",)


def test_a_custom_test_can_be_given() -> None:
    scorer = Scorer({"a": alternating, "b": alternating})
    result = race(["a", "b"], BLOCKS, scorer, survivors=1, test=lambda x, y: 0.0)
    # a test that always finds a difference drops both... except the best one is spared
    assert result.blocks == 1 and len(result.survivors) == 1


def test_errors_from_the_score_function_propagate() -> None:
    class Stop(Exception):
        pass

    def score(cid: str, examples: Sequence[int]) -> list[float | None]:
        if examples[0] == 5:
            raise Stop
        return [1.0] * len(examples)

    with pytest.raises(Stop):
        race(["a", "b"], BLOCKS, score, survivors=1)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"candidates": ["a", "a"]}, "unique"),
        ({"survivors": 0}, "survivors"),
        ({"alpha": 1.0}, "alpha"),
        ({"alpha": 0.0}, "alpha"),
    ],
)
def test_bad_arguments(kwargs: dict, message: str) -> None:
    args = {"candidates": ["a", "b"], "survivors": 1, **kwargs}
    with pytest.raises(ValueError, match=message):
        race(args.pop("candidates"), BLOCKS, Scorer({"a": worse, "b": worse}), **args)


def test_a_score_function_must_score_every_example() -> None:
    with pytest.raises(ValueError, match="gave 1 scores for 5 examples"):
        race(["a", "b"], BLOCKS, lambda cid, ex: [1.0], survivors=1)


@settings(max_examples=60, deadline=None)
@given(
    table=st.lists(st.lists(st.sampled_from([0.0, 1.0]), min_size=12, max_size=12), min_size=1),
    survivors=st.integers(1, 4),
    alpha=st.sampled_from([0.05, 0.2, 0.45]),
)
def test_race_invariants(table: list[list[float]], survivors: int, alpha: float) -> None:
    ids = [f"c{i}" for i in range(len(table))]
    blocks = [list(range(i, i + 3)) for i in range(0, 12, 3)]

    def score(cid: str, examples: Sequence[int]) -> list[float | None]:
        row = table[int(cid[1:])]
        return [row[e] for e in examples]

    first = race(ids, blocks, score, survivors=survivors, alpha=alpha)
    again = race(ids, blocks, score, survivors=survivors, alpha=alpha)
    assert first == again
    assert len(first.survivors) == min(survivors, len(ids))
    assert set(first.survivors) | set(first.eliminated) == set(ids)
    assert not set(first.survivors) & set(first.eliminated)
    # survivors ran every block; nobody ran more
    for cid in first.survivors:
        assert len(first.scores[cid]) == 3 * first.blocks
    for cid, ran in first.eliminated.items():
        assert len(first.scores[cid]) == 3 * ran <= 3 * first.blocks
    # the best mean among those who ran every block always survives
    full = [c for c in ids if len(first.scores[c]) == 3 * first.blocks]
    if first.blocks:
        top = max(first.mean(c) for c in full)
        assert any(first.mean(c) == top for c in first.survivors)


def test_a_race_stops_before_a_block_it_cannot_afford() -> None:
    scorer = Scorer({"a": alternating, "b": alternating, "c": alternating})
    asked: list[tuple[tuple[str, ...], int]] = []

    def afford(alive: Sequence[str], k: int) -> bool:
        asked.append((tuple(alive), k))
        return k < 2  # the budget pays for two blocks

    result = race(["a", "b", "c"], BLOCKS, scorer, survivors=1, afford=afford)
    assert result.blocks == 2 and asked == [
        (("a", "b", "c"), 0),
        (("a", "b", "c"), 1),
        (("a", "b", "c"), 2),
    ]
    assert {e for _, e in scorer.calls} == {0, 5}  # blocks 0 and 1 only
    assert result.survivors == ("a",) and result.eliminated == {"b": 2, "c": 2}
