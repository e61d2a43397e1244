"""Sizing the final selection to the budget left (search/final.py): the whole final
when it fits, then fewer finalists, then fewer dev examples, then none; examples
already scored are free."""

from __future__ import annotations

from promptascent.search.final import FinalPlan, plan_final

ORDER = [f"e{i}" for i in range(10)]
SCREENED = set(ORDER[:4])  # every finalist was screened on the first 4


def test_a_budget_that_covers_the_whole_final_gets_it() -> None:
    plan = plan_final([SCREENED] * 3, ORDER, 18, forced=1)
    assert plan == FinalPlan(finalists=3, examples=10, cost=18, total=10) and plan.whole


def test_no_budget_limit_gets_the_whole_final() -> None:
    assert plan_final([SCREENED] * 3, ORDER, None, forced=1).whole


def test_a_shorter_budget_drops_the_worst_ranked_finalists_first() -> None:
    plan = plan_final([SCREENED] * 4, ORDER, 13, forced=1)
    assert (plan.finalists, plan.examples, plan.cost) == (2, 10, 12)


def test_then_the_seed_and_the_best_get_part_of_dev_the_screened_examples_first() -> None:
    plan = plan_final([SCREENED] * 4, ORDER, 7, forced=1)
    assert (plan.finalists, plan.examples, plan.cost) == (2, 7, 6)
    assert not plan.whole and not plan.screening_only


def test_forced_finalists_are_never_dropped() -> None:
    plan = plan_final([SCREENED] * 4, ORDER, 13, forced=2)
    assert (plan.finalists, plan.examples, plan.cost) == (3, 8, 12)


def test_a_budget_that_adds_no_example_only_allows_screening() -> None:
    plan = plan_final([SCREENED] * 3, ORDER, 1, forced=1)
    assert plan.screening_only and plan.cost == 0


def test_examples_a_finalist_has_a_score_on_are_not_paid_again() -> None:
    known = [set(ORDER), SCREENED]  # the seed was scored on everything already
    plan = plan_final(known, ORDER, 6, forced=1)
    assert plan.whole and plan.cost == 6


def test_a_lone_finalist_gets_the_whole_final_or_none() -> None:
    assert plan_final([SCREENED], ORDER, 6, forced=1).whole
    assert plan_final([SCREENED], ORDER, 5, forced=1).screening_only
