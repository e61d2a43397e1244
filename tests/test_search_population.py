"""Population helpers: roulette and tournament selection, elitist survival, dropping
duplicates. Exact, on scripted random draws where the draw matters."""

from __future__ import annotations

import math
import random
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from promptascent.search.population import (
    ROULETTE_FLOOR,
    drop_duplicates,
    fitness_value,
    keep_best,
    roulette_select,
    text_key,
    tournament_select,
)


class Draws(random.Random):
    """A Random whose random() returns the scripted values in turn."""

    def __init__(self, *values: float) -> None:
        super().__init__(0)
        self.values = list(values)

    def random(self) -> float:
        return self.values.pop(0)


def test_roulette_points_land_on_the_wheel_in_proportion_to_fitness() -> None:
    # weights 0.05, 1, 3 (total 4.05): [0, 0.05) -> 0, [0.05, 1.05) -> 1, [1.05, 4.05) -> 2
    fitness = [0.0, 1.0, 3.0]
    assert roulette_select(fitness, 1, Draws(0.01)) == [0]  # 0.0405
    assert roulette_select(fitness, 1, Draws(0.02)) == [1]  # 0.081
    assert roulette_select(fitness, 1, Draws(0.259)) == [1]  # 1.049
    assert roulette_select(fitness, 1, Draws(0.26)) == [2]  # 1.053
    assert roulette_select(fitness, 1, Draws(0.999)) == [2]


def test_roulette_without_replacement_respins_over_the_rest() -> None:
    # First 0.5 * 4.05 = 2.025 -> member 2; then the wheel is 0.05 + 1 = 1.05 wide:
    # 0.04 * 1.05 = 0.042 -> member 0.
    assert roulette_select([0.0, 1.0, 3.0], 2, Draws(0.5, 0.04)) == [2, 0]
    # With replacement the same member can come twice.
    assert roulette_select([0.0, 1.0, 3.0], 2, Draws(0.5, 0.5), distinct=False) == [2, 2]


def test_zero_and_unmeasured_fitness_get_the_floor() -> None:
    # All at the floor: a uniform wheel, thirds.
    for point, expected in ((0.0, 0), (0.34, 1), (0.67, 2)):
        assert roulette_select([0.0, None, math.nan], 1, Draws(point)) == [expected]
    # Negative fitness counts as zero, too.
    assert roulette_select([-1.0, 0.0], 1, Draws(0.49)) == [0]
    assert ROULETTE_FLOOR == 0.05


def test_fitness_floor_is_a_weight_not_an_offset() -> None:
    # max(f, floor): 0.5 and 0.5 stay equal; 0.01 is raised to the floor 0.1.
    assert roulette_select([0.01, 0.5, 0.5], 1, Draws(0.09), floor=0.1) == [0]  # 0.099
    assert roulette_select([0.01, 0.5, 0.5], 1, Draws(0.1), floor=0.1) == [1]  # 0.11


def test_roulette_frequencies_follow_fitness_on_a_real_rng() -> None:
    rng = random.Random(7)
    counts = Counter(roulette_select([0.0, 0.25, 0.75], 1, rng)[0] for _ in range(6000))
    total = 0.05 + 0.25 + 0.75
    for i, w in enumerate((0.05, 0.25, 0.75)):
        assert abs(counts[i] / 6000 - w / total) < 0.02


def test_same_seed_same_parents() -> None:
    fitness = [0.1, 0.4, 0.0, 0.9, 0.3]
    picks = [roulette_select(fitness, 2, random.Random(3)) for _ in range(2)]
    assert picks[0] == picks[1]
    tours = [tournament_select(fitness, 3, random.Random(3)) for _ in range(2)]
    assert tours[0] == tours[1]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: roulette_select([1.0], 2, random.Random(0)), "2 distinct members from 1"),
        (lambda: roulette_select([], 1, random.Random(0)), "empty population"),
        (lambda: roulette_select([1.0], 1, random.Random(0), floor=0), "floor"),
        (lambda: roulette_select([1.0], -1, random.Random(0)), "negative"),
        (lambda: tournament_select([1.0], 1, random.Random(0), size=0), "tournament size"),
        (lambda: keep_best([1], -1, float), "negative"),
    ],
)
def test_impossible_requests_are_value_errors(call: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()  # type: ignore[operator]


def test_selecting_nothing_draws_nothing() -> None:
    rng = random.Random(0)
    state = rng.getstate()
    assert roulette_select([], 0, rng) == [] and tournament_select([1.0], 0, rng) == []
    assert rng.getstate() == state


def test_a_tournament_of_everyone_is_won_by_the_fittest() -> None:
    fitness = [0.2, 0.9, 0.5, 0.9]
    # Ties go to the earlier member; distinct winners: best, then the tied one, then 0.5.
    assert tournament_select(fitness, 3, random.Random(1), size=4) == [1, 3, 2]
    assert tournament_select(fitness, 2, random.Random(1), size=10, distinct=False) == [1, 1]


def test_a_tournament_winner_is_the_fittest_of_its_entrants() -> None:
    fitness = [0.3, 0.1, 0.8, 0.5, 0.0]
    rng, replay = random.Random(11), random.Random(11)
    for _ in range(50):
        (winner,) = tournament_select(fitness, 1, rng, size=2)
        entrants = replay.sample(range(5), 2)
        assert winner == max(entrants, key=lambda i: (fitness[i], -i))


def test_a_tournament_of_one_ignores_fitness() -> None:
    replay = random.Random(5)
    available = [0, 1, 2]
    expected = []
    for _ in range(2):
        (i,) = replay.sample(available, 1)
        expected.append(i)
        available.remove(i)
    assert tournament_select([0.9, 0.0, 0.0], 2, random.Random(5), size=1) == expected
    rng = random.Random(9)
    counts = Counter(tournament_select([0.9, 0.0, 0.0], 1, rng, size=1)[0] for _ in range(900))
    assert all(250 < counts[i] < 350 for i in range(3))


def test_keep_best_is_elitist_and_stable() -> None:
    scores = {"p1": 0.5, "p2": 0.8, "c1": 0.8, "c2": None, "c3": 0.1}
    items = ["p1", "p2", "c1", "c2", "c3"]
    # c1 ties with p2 and comes later: p2 first. The unmeasured c2 ranks last.
    assert keep_best(items, 3, scores.get) == ["p2", "c1", "p1"]
    assert keep_best(items, 10, scores.get) == ["p2", "c1", "p1", "c3", "c2"]
    assert keep_best(items, 0, scores.get) == []
    assert keep_best(["a", "b"], 2, lambda x: math.nan) == ["a", "b"]


def test_drop_duplicates_keeps_the_first() -> None:
    assert drop_duplicates([3, 1, 3, 2, 1]) == [3, 1, 2]
    prompts = ["Answer yes or no.", "answer yes, or no", "Say maybe."]
    assert drop_duplicates(prompts, key=text_key) == ["Answer yes or no.", "Say maybe."]


def test_text_key_ignores_case_punctuation_and_spacing() -> None:
    assert text_key("  Answer: YES,\n or no!  ") == "answer yes or no"
    assert text_key("Answer yes or no.") != text_key("Answer yes or maybe.")


def test_fitness_value() -> None:
    assert fitness_value(None) == 0.0 and fitness_value(math.nan) == 0.0
    assert fitness_value(0.25) == 0.25


fitnesses = st.lists(
    st.one_of(st.none(), st.just(math.nan), st.floats(min_value=-1, max_value=10)), max_size=12
)


@given(fitness=fitnesses, seed=st.integers(0, 2**16), k=st.integers(0, 12))
def test_selection_returns_distinct_valid_indices(
    fitness: list[float | None], seed: int, k: int
) -> None:
    k = min(k, len(fitness))
    for select in (roulette_select, tournament_select):
        picks = select(fitness, k, random.Random(seed))
        assert len(picks) == k and len(set(picks)) == k
        assert all(0 <= i < len(fitness) for i in picks)


@given(fitness=fitnesses, n=st.integers(0, 14))
def test_keep_best_returns_the_fittest_in_order(fitness: list[float | None], n: int) -> None:
    items = list(range(len(fitness)))
    kept = keep_best(items, n, lambda i: fitness[i])
    assert len(kept) == min(n, len(items))
    rank = [-math.inf if f is None or math.isnan(f) else f for f in fitness]
    assert [rank[i] for i in kept] == sorted((rank[i] for i in kept), reverse=True)
    dropped = set(items) - set(kept)
    assert not kept or all(rank[d] <= rank[kept[-1]] for d in dropped)
