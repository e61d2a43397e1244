"""The Pareto front over score (higher is better), length and cost (lower is better)."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from promptascent.search.pareto import ParetoPoint, dominates, pareto_front


def test_dominance_needs_no_worse_everywhere_and_better_somewhere() -> None:
    base = ParetoPoint("a", 0.8, 100, 1.0)
    assert dominates(ParetoPoint("b", 0.9, 100, 1.0), base)
    assert dominates(ParetoPoint("b", 0.8, 90, 1.0), base)
    assert dominates(ParetoPoint("b", 0.8, 100, 0.5), base)
    assert not dominates(ParetoPoint("b", 0.8, 100, 1.0), base)  # equal
    assert not dominates(ParetoPoint("b", 0.9, 120, 1.0), base)  # a trade-off
    assert not dominates(base, ParetoPoint("b", 0.9, 120, 1.0))


def test_front_keeps_trade_offs_in_input_order() -> None:
    points = [
        ParetoPoint("long-best", 0.9, 300),
        ParetoPoint("dominated", 0.7, 200),
        ParetoPoint("short", 0.7, 50),
        ParetoPoint("middle", 0.8, 120),
        ParetoPoint("worse-middle", 0.75, 150),
    ]
    assert [p.id for p in pareto_front(points)] == ["long-best", "short", "middle"]


def test_cost_is_a_third_objective() -> None:
    points = [ParetoPoint("cheap", 0.8, 100, 0.1), ParetoPoint("dear", 0.8, 100, 0.5)]
    assert [p.id for p in pareto_front(points)] == ["cheap"]


def test_equal_points_are_all_kept_and_unscored_points_left_out() -> None:
    points = [
        ParetoPoint("a", 0.5, 10),
        ParetoPoint("b", 0.5, 10),
        ParetoPoint("never-scored", math.nan, 1),
    ]
    assert [p.id for p in pareto_front(points)] == ["a", "b"]
    assert pareto_front([]) == []


objectives = st.tuples(
    st.sampled_from([0.0, 0.25, 0.5, 0.75, 1.0]), st.integers(1, 6), st.integers(0, 3)
)


@given(st.lists(objectives, max_size=15))
def test_front_is_exactly_the_non_dominated_points(values: list[tuple[float, int, int]]) -> None:
    points = [ParetoPoint(str(i), s, length, cost) for i, (s, length, cost) in enumerate(values)]
    front = pareto_front(points)
    ids = {p.id for p in front}
    for p in points:
        dominated = any(dominates(q, p) for q in points)
        assert (p.id in ids) == (not dominated)
    # every point off the front is dominated by a point on it
    for p in points:
        if p.id not in ids:
            assert any(dominates(q, p) for q in front)
