"""Racing: score candidates on successive blocks of examples, drop the clearly worse.

Every surviving candidate is scored on the same block, so comparisons are paired.
After each block, candidate i is dropped when at least `survivors` other candidates
are significantly better than it on all examples seen so far (CAPO's rule, Zehle et
al. 2025; with `survivors=1` this is "significantly worse than the best"). The race
stops when `survivors` candidates remain, after `max_blocks` blocks, or when the
optional `afford` check says the next block cannot be paid for; the best `survivors`
by mean score are returned, best first.

The candidates with the highest means can never be dropped (a candidate is only
significantly better than another when its paired mean is higher), so a race never
ends with fewer than `survivors` candidates (if it started with that many).

Pure and deterministic: the score function is the only effect; candidates are scored
in the order given, and ties keep that order.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from promptascent.evaluation.stats import paired_t_test

E = TypeVar("E")

ScoreFn = Callable[[str, Sequence[E]], Sequence[float | None]]
"""`score(candidate_id, examples)`: one score per example, higher is better; None for
an example that could not be scored (e.g. a model error), left out of comparisons."""

PairedTest = Callable[[Sequence[float], Sequence[float]], float]
"""`test(a, b)`: one-sided p-value of "a is better than b" on paired scores a[i], b[i]."""

AffordFn = Callable[[Sequence[str], int], bool]
"""`afford(alive, k)`: whether block k may be run for the candidates still in the race
(e.g. the budget left pays for it); False ends the race before it."""


@dataclass(frozen=True)
class RaceResult:
    """`survivors`: ids, best first. `scores`: every per-example score each candidate
    got, in block order (None: not scored). `eliminated`: for each dropped candidate,
    how many blocks it ran. `blocks`: how many blocks the race ran."""

    survivors: tuple[str, ...]
    scores: dict[str, tuple[float | None, ...]]
    eliminated: dict[str, int]
    blocks: int

    def mean(self, candidate_id: str) -> float:
        """Mean of the candidate's scores (nan when it has none)."""
        return _mean(self.scores[candidate_id])


def race(
    candidates: Sequence[str],
    blocks: Sequence[Sequence[E]],
    score: ScoreFn[E],
    *,
    survivors: int,
    alpha: float = 0.2,
    max_blocks: int | None = None,
    test: PairedTest | None = None,
    afford: AffordFn | None = None,
) -> RaceResult:
    """Races `candidates` (unique ids) over `blocks` of examples.

    `test` defaults to the one-sided paired t-test (`paired_t_test`), as in CAPO;
    a candidate is "significantly better" when its p-value is below `alpha`.
    Raises ValueError for duplicate ids, survivors < 1, alpha outside (0, 1), or a
    score function that returns the wrong number of scores. Exceptions raised by
    `score` (e.g. running out of budget) propagate.
    """
    if len(set(candidates)) != len(candidates):
        raise ValueError("race: candidate ids must be unique")
    if survivors < 1:
        raise ValueError(f"race: survivors must be >= 1, got {survivors}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"race: alpha must be in (0, 1), got {alpha}")
    test = test or paired_t_test
    limit = len(blocks) if max_blocks is None else min(max_blocks, len(blocks))
    alive = list(candidates)
    scores: dict[str, list[float | None]] = {c: [] for c in candidates}
    eliminated: dict[str, int] = {}
    run = 0
    while len(alive) > survivors and run < limit:
        if afford is not None and not afford(tuple(alive), run):
            break
        block = blocks[run]
        for cid in alive:
            got = list(score(cid, block))
            if len(got) != len(block):
                raise ValueError(
                    f"race: score({cid!r}) gave {len(got)} scores for {len(block)} examples"
                )
            scores[cid].extend(got)
        run += 1
        dropped = _losers(alive, scores, survivors, alpha, test)
        for cid in dropped:
            eliminated[cid] = run
        alive = [c for c in alive if c not in dropped]
    ranked = sorted(alive, key=lambda c: -_rank_value(scores[c]))
    for cid in ranked[survivors:]:
        eliminated[cid] = run
    return RaceResult(
        survivors=tuple(ranked[:survivors]),
        scores={c: tuple(s) for c, s in scores.items()},
        eliminated=eliminated,
        blocks=run,
    )


def _losers(
    alive: list[str],
    scores: dict[str, list[float | None]],
    survivors: int,
    alpha: float,
    test: PairedTest,
) -> set[str]:
    """Candidates with at least `survivors` significantly better rivals; never so many
    that fewer than `survivors` remain (a guard for cycles on partly scored examples)."""
    losers = []
    for cid in alive:
        better = 0
        for rival in alive:
            if rival == cid:
                continue
            a, b = _paired(scores[rival], scores[cid])
            if a and test(a, b) < alpha:
                better += 1
                if better >= survivors:
                    losers.append(cid)
                    break
    keep = len(alive) - len(losers)
    if keep < survivors:
        # Spare the best of the losers, by mean, until enough remain.
        spared = sorted(losers, key=lambda c: -_rank_value(scores[c]))[: survivors - keep]
        losers = [c for c in losers if c not in spared]
    return set(losers)


def _paired(
    a: Sequence[float | None], b: Sequence[float | None]
) -> tuple[list[float], list[float]]:
    pairs = [(x, y) for x, y in zip(a, b, strict=True) if x is not None and y is not None]
    return [x for x, _ in pairs], [y for _, y in pairs]


def _mean(values: Sequence[float | None]) -> float:
    xs = [v for v in values if v is not None]
    return math.fsum(xs) / len(xs) if xs else math.nan


def _rank_value(values: Sequence[float | None]) -> float:
    m = _mean(values)
    return -math.inf if math.isnan(m) else m
