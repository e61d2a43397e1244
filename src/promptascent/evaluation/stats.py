"""Confidence intervals and paired comparisons for per-example scores.

Pure Python (no numpy). Every function is deterministic for a fixed `seed`.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import compress

_NAN = float("nan")


@dataclass(frozen=True)
class Interval:
    """A mean with a two-sided confidence interval [low, high] over `n` values.

    For n == 0 every number is nan; for n == 1, low == high == mean.
    """

    mean: float
    low: float
    high: float
    n: int


@dataclass(frozen=True)
class PairedComparison:
    """b versus a on the same examples.

    `mean_diff` is mean(b - a), with a percentile-bootstrap interval [low, high].
    `wins` counts examples where b > a, `losses` where b < a, `ties` where equal.
    `p_value` is two-sided, from a paired sign-flip permutation test of mean(b - a) == 0
    (exact when the non-zero differences allow at most `resamples` sign patterns).
    For n == 0 the numbers are nan.
    """

    mean_diff: float
    low: float
    high: float
    n: int
    wins: int
    losses: int
    ties: int
    p_value: float


def bootstrap_ci(
    values: Sequence[float],
    *,
    confidence: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
) -> Interval:
    """Percentile-bootstrap confidence interval for the mean of `values`.

    Draws `resamples` resamples with replacement (random.Random(seed)) and takes the
    (1 - confidence) / 2 and (1 + confidence) / 2 quantiles of their means, linearly
    interpolated. Raises ValueError for a confidence outside (0, 1), resamples < 1 or a
    non-finite value.
    """
    xs = _checked(values, confidence, resamples)
    n = len(xs)
    if n == 0:
        return Interval(_NAN, _NAN, _NAN, 0)
    mean = math.fsum(xs) / n
    if n == 1 or min(xs) == max(xs):
        return Interval(mean, mean, mean, n)
    means = sorted(_resample_means(xs, resamples, random.Random(seed)))
    low, high = _percentile_bounds(means, confidence)
    return Interval(mean, low, high, n)


def paired_difference(
    a: Sequence[float],
    b: Sequence[float],
    *,
    confidence: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
) -> PairedComparison:
    """Compares paired scores: b[i] and a[i] are two systems on example i.

    The interval is a percentile bootstrap of mean(b - a) (as bootstrap_ci); the p-value
    is a two-sided paired sign-flip permutation test (see PairedComparison). Raises
    ValueError when the lengths differ, or for the reasons bootstrap_ci does.
    """
    if len(a) != len(b):
        raise ValueError(f"paired_difference: lengths differ ({len(a)} vs {len(b)})")
    xa = _checked(a, confidence, resamples)
    xb = _checked(b, confidence, resamples)
    diffs = [y - x for x, y in zip(xa, xb, strict=True)]
    wins = sum(1 for x, y in zip(xa, xb, strict=True) if y > x)
    losses = sum(1 for x, y in zip(xa, xb, strict=True) if y < x)
    ties = len(diffs) - wins - losses
    ci = bootstrap_ci(diffs, confidence=confidence, resamples=resamples, seed=seed)
    p_value = _sign_flip_p_value(diffs, resamples, random.Random(seed)) if diffs else _NAN
    return PairedComparison(
        mean_diff=ci.mean,
        low=ci.low,
        high=ci.high,
        n=ci.n,
        wins=wins,
        losses=losses,
        ties=ties,
        p_value=p_value,
    )


def _checked(values: Sequence[float], confidence: float, resamples: int) -> list[float]:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if resamples < 1:
        raise ValueError(f"resamples must be >= 1, got {resamples}")
    xs = [float(v) for v in values]
    for i, v in enumerate(xs):
        if not math.isfinite(v):
            raise ValueError(f"value {i} is not finite: {v}")
    return xs


def _resample_means(xs: list[float], resamples: int, rng: random.Random) -> list[float]:
    n = len(xs)
    choices = rng.choices
    return [sum(choices(xs, k=n)) / n for _ in range(resamples)]


def _percentile_bounds(sorted_values: list[float], confidence: float) -> tuple[float, float]:
    tail = (1.0 - confidence) / 2.0
    return _quantile(sorted_values, tail), _quantile(sorted_values, 1.0 - tail)


def _quantile(sorted_values: list[float], q: float) -> float:
    """Linear-interpolation quantile (numpy's default) of an ascending list."""
    pos = q * (len(sorted_values) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    frac = pos - lo
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * frac


def _sign_flip_p_value(diffs: list[float], resamples: int, rng: random.Random) -> float:
    """Two-sided p-value of sum(diffs) under random sign flips.

    Zero differences do not change under a flip and are dropped. Flipping the signs of
    a subset S turns the sum T into T - 2 * sum(S). With m non-zero differences, all 2**m
    patterns are enumerated when 2**m <= resamples (exact p-value); otherwise `resamples`
    random patterns are drawn and p = (1 + hits) / (1 + resamples).
    """
    nonzero = [d for d in diffs if d != 0.0]
    m = len(nonzero)
    if m == 0:
        return 1.0
    total = math.fsum(nonzero)
    threshold = abs(total) - 1e-9 * (1.0 + abs(total))

    def extreme(mask: int) -> bool:
        flipped = sum(compress(nonzero, _bits(mask, m)))
        return abs(total - 2.0 * flipped) >= threshold

    if m < 63 and 2**m <= resamples:
        hits = sum(1 for mask in range(2**m) if extreme(mask))
        return hits / 2**m
    hits = sum(1 for _ in range(resamples) if extreme(rng.getrandbits(m)))
    return (1 + hits) / (1 + resamples)


def _bits(mask: int, m: int) -> list[bool]:
    """The m low bits of mask, least significant first."""
    return [c == "1" for c in reversed(format(mask, f"0{m}b"))]


def paired_t_test(a: Sequence[float], b: Sequence[float]) -> float:
    """One-sided p-value of the paired t-test that mean(a - b) > 0 (scipy's
    `ttest_rel(a, b, alternative="greater")`). Fewer than two pairs give 1.0 (no
    evidence); identical differences give 0.0 when they are positive, else 1.0."""
    if len(a) != len(b):
        raise ValueError(f"paired_t_test: lengths differ ({len(a)} vs {len(b)})")
    n = len(a)
    if n < 2:
        return 1.0
    diffs = [x - y for x, y in zip(a, b, strict=True)]
    mean = math.fsum(diffs) / n
    var = math.fsum((d - mean) ** 2 for d in diffs) / (n - 1)
    if var <= 1e-300:
        return 0.0 if mean > 0 else 1.0
    t = mean / math.sqrt(var / n)
    return student_t_sf(t, n - 1)


def student_t_sf(t: float, df: float) -> float:
    """P(T > t) for Student's t with `df` degrees of freedom."""
    if df <= 0:
        raise ValueError(f"student_t_sf: df must be positive, got {df}")
    tail = 0.5 * _betainc(df / 2.0, 0.5, df / (df + t * t))
    return tail if t > 0 else 1.0 - tail


def _betainc(a: float, b: float, x: float) -> float:
    """Regularized incomplete beta I_x(a, b), by its continued fraction."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    # The fraction converges fast for x < (a + 1) / (a + b + 2); use symmetry otherwise.
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _beta_fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _beta_fraction(b, a, 1.0 - x) / b


def _beta_fraction(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz method)."""
    tiny, eps = 1e-300, 1e-15
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 500):
        for num in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < eps:
            break
    return h


def sign_test_p(wins: int, losses: int) -> float:
    """One-sided exact sign test: the probability of at least `wins` wins among
    `wins + losses` non-tied pairs when each is a win with probability 1/2 (ties carry
    no information). 1.0 when no pair differs."""
    if wins < 0 or losses < 0:
        raise ValueError(f"wins and losses must be >= 0, got {wins} and {losses}")
    n = wins + losses
    if n == 0:
        return 1.0
    return sum(math.comb(n, k) for k in range(wins, n + 1)) / 2**n


def benjamini_hochberg(p_values: Sequence[float], q: float = 0.05) -> list[bool]:
    """Which hypotheses the Benjamini-Hochberg procedure rejects at false discovery
    rate `q`: sort the m p-values, find the largest rank k with p_(k) <= k * q / m, and
    reject the k smallest. In the input's order."""
    if not 0.0 < q < 1.0:
        raise ValueError(f"q must be in (0, 1), got {q}")
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    k = 0
    for rank, i in enumerate(order, start=1):
        if p_values[i] <= rank * q / m:
            k = rank
    rejected = [False] * m
    for i in order[:k]:
        rejected[i] = True
    return rejected


def holm(p_values: Sequence[float], alpha: float = 0.05) -> list[bool]:
    """Which hypotheses Holm's step-down procedure rejects at family-wise level `alpha`:
    the k-th smallest of m p-values (k from 1) is rejected while every smaller one was
    and it is at most alpha / (m - k + 1). In the input's order."""
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    m = len(p_values)
    rejected = [False] * m
    for k, i in enumerate(sorted(range(m), key=lambda j: p_values[j])):
        if p_values[i] > alpha / (m - k):
            break
        rejected[i] = True
    return rejected
