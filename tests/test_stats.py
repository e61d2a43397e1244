"""Tests for promptascent.evaluation.stats."""

from __future__ import annotations

import math
import random
import time

import pytest

from promptascent.evaluation.stats import (
    Interval,
    PairedComparison,
    benjamini_hochberg,
    bootstrap_ci,
    holm,
    paired_difference,
    sign_test_p,
)


def test_empty_and_single() -> None:
    empty = bootstrap_ci([])
    assert empty.n == 0
    assert math.isnan(empty.mean) and math.isnan(empty.low) and math.isnan(empty.high)
    assert bootstrap_ci([0.25]) == Interval(0.25, 0.25, 0.25, 1)


def test_all_equal_values_give_zero_width() -> None:
    assert bootstrap_ci([0.7] * 50) == Interval(0.7, 0.7, 0.7, 50)


def test_interval_contains_mean_and_is_deterministic() -> None:
    rng = random.Random(5)
    values = [float(rng.random() < 0.6) for _ in range(300)]
    ci = bootstrap_ci(values, seed=3)
    assert ci == bootstrap_ci(values, seed=3)
    assert ci != bootstrap_ci(values, seed=4)
    assert ci.n == 300
    assert ci.mean == pytest.approx(sum(values) / 300)
    assert ci.low < ci.mean < ci.high
    # Normal approximation: half-width about 1.96 * sqrt(p(1-p)/n) = 0.055.
    assert ci.high - ci.low == pytest.approx(2 * 1.96 * math.sqrt(0.24 / 300), rel=0.2)
    narrow = bootstrap_ci(values, confidence=0.5, seed=3)
    assert ci.low < narrow.low < narrow.high < ci.high


def test_two_point_quantiles() -> None:
    # Resample means of [0, 1] (n=2) are 0, 0.5 or 1 with probability 1/4, 1/2, 1/4.
    ci = bootstrap_ci([0.0, 1.0], confidence=0.4, resamples=4000)
    assert (ci.low, ci.high) == (0.5, 0.5)
    wide = bootstrap_ci([0.0, 1.0], confidence=0.99, resamples=4000)
    assert (wide.low, wide.high) == (0.0, 1.0)


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_ci([1.0], confidence=1.0)
    with pytest.raises(ValueError, match="resamples"):
        bootstrap_ci([1.0], resamples=0)
    with pytest.raises(ValueError, match="not finite"):
        bootstrap_ci([1.0, float("nan")])
    with pytest.raises(ValueError, match="lengths differ"):
        paired_difference([1.0], [1.0, 0.0])


def test_bootstrap_is_fast() -> None:
    values = [random.Random(1).random() for _ in range(300)]
    start = time.perf_counter()
    bootstrap_ci(values, resamples=2000)
    assert time.perf_counter() - start < 0.2


def test_paired_counts_and_direction() -> None:
    a = [1.0, 0.0, 0.0, 1.0, 0.5]
    b = [1.0, 1.0, 1.0, 0.0, 0.5]
    result = paired_difference(a, b)
    assert (result.n, result.wins, result.losses, result.ties) == (5, 2, 1, 2)
    assert result.mean_diff == pytest.approx(0.2)


def test_paired_clear_difference_excludes_zero() -> None:
    rng = random.Random(2)
    a = [float(rng.random() < 0.3) for _ in range(300)]
    b = [float(rng.random() < 0.8) for _ in range(300)]
    result = paired_difference(a, b, seed=1)
    assert result.low > 0
    assert result.p_value < 0.01
    assert result == paired_difference(a, b, seed=1)
    flipped = paired_difference(b, a, seed=1)
    assert flipped.high < 0
    assert (flipped.wins, flipped.losses) == (result.losses, result.wins)


def test_paired_exact_sign_flip_p_value() -> None:
    # Five wins, no losses: only the all-positive and all-negative of 2**5 sign patterns
    # are as extreme, so p = 2 / 32 exactly.
    result = paired_difference([0.0] * 5, [1.0] * 5)
    assert result.p_value == pytest.approx(2 / 32)
    assert (result.low, result.high) == (1.0, 1.0)


def test_paired_no_difference() -> None:
    result = paired_difference([0.5, 1.0, 0.0], [0.5, 1.0, 0.0])
    assert result == PairedComparison(0.0, 0.0, 0.0, 3, 0, 0, 3, 1.0)
    empty = paired_difference([], [])
    assert empty.n == 0 and math.isnan(empty.mean_diff) and math.isnan(empty.p_value)


def test_paired_noise_is_not_significant() -> None:
    rng = random.Random(9)
    a = [float(rng.random() < 0.5) for _ in range(200)]
    b = [float(rng.random() < 0.5) for _ in range(200)]
    result = paired_difference(a, b)
    assert result.low < 0 < result.high
    assert result.p_value > 0.5


def test_the_sign_test_is_the_exact_binomial_tail() -> None:
    assert sign_test_p(0, 0) == 1.0
    assert sign_test_p(3, 0) == 1 / 8
    assert sign_test_p(0, 3) == 1.0
    # 17 wins and 2 losses: P(X >= 17), X ~ Bin(19, 1/2) = (1 + 19 + 171) / 2**19
    assert sign_test_p(17, 2) == pytest.approx(191 / 2**19)
    assert sign_test_p(5, 5) == pytest.approx(638 / 1024)
    with pytest.raises(ValueError):
        sign_test_p(-1, 2)


def test_benjamini_hochberg_rejects_up_to_the_largest_rank_under_its_line() -> None:
    # m = 5, q = 0.05: the lines are 0.01, 0.02, 0.03, 0.04, 0.05. Rank 3 (0.025) is
    # the largest under its line, so ranks 1-3 are rejected, rank 2 (0.021 > 0.02)
    # included: the step-up rule.
    p = [0.045, 0.005, 0.021, 0.025, 0.9]
    assert benjamini_hochberg(p) == [False, True, True, True, False]
    assert benjamini_hochberg([0.2, 0.3]) == [False, False]
    assert benjamini_hochberg([]) == []
    # one hypothesis: the plain level
    assert benjamini_hochberg([0.049]) == [True]
    with pytest.raises(ValueError):
        benjamini_hochberg([0.1], q=0)


def test_holm_steps_down_and_stops_at_the_first_p_over_its_level() -> None:
    # m = 4, alpha = 0.05: levels 0.0125, 0.0167, 0.025, 0.05 for the sorted p-values
    assert holm([0.01, 0.04, 0.015, 0.02]) == [True, True, True, True]
    # 0.02 > 0.0167 stops the procedure: 0.03 is not rejected though under 0.05
    assert holm([0.01, 0.02, 0.03, 0.9]) == [True, False, False, False]
    assert holm([]) == []
    with pytest.raises(ValueError):
        holm([0.1], alpha=1.5)
