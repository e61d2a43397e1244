"""Which two candidates to compare next, and how strong each one is.

Strengths come from a Bradley-Terry model: candidate i beats j with probability
sigma(theta_i - theta_j). It is fitted by Hunter's MM iterations (2004) with a tie
counted as half a win for each side, and with a weak prior: every candidate is also
said to have won and lost `prior` duels against a fixed opponent of strength 0, so
a candidate that won (or lost) everything still has a finite strength, and one never
compared has exactly 0.

The pair rule follows APOHF (Lin et al., 2024, "Prompt Optimization with Human
Feedback"), with Bradley-Terry in place of its neural network:

1. Coverage first: while some candidate has not been in a judged duel, it is paired
   with the candidate it has not met that has been compared least (so every
   candidate is compared within ceil(n / 2) judged duels).
2. Then the first candidate is the strongest (greedy), and the second the one with
   the highest upper bound of its advantage over the first:
   theta_j - theta_first + exploration * sqrt(ln(1 + t) / n_first_j), where t is the
   number of judged duels and n_first_j those between the two; a pair never compared
   has an infinite bound, so unexplored pairs with the leader are tried first.

Ties of the rule are broken by the caller's RNG, so the choice is deterministic for a
seed. Skipped duels are not evidence and change nothing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from random import Random

from promptascent.preference.duel import Record

_TIE = 1e-9


def bradley_terry(
    ids: Sequence[str],
    wins: dict[tuple[str, str], float],
    *,
    prior: float = 0.5,
    iterations: int = 1000,
    tolerance: float = 1e-12,
) -> dict[str, float]:
    """Log-strengths theta (0 = the prior's reference opponent) from `wins[i, j]`, the
    (possibly fractional: ties are halves) wins of i over j."""
    index = {cid: k for k, cid in enumerate(ids)}
    n = len(ids)
    won = [prior] * n
    games: list[dict[int, float]] = [{} for _ in range(n)]
    for (i, j), w in wins.items():
        if w <= 0 or i == j:
            continue
        a, b = index[i], index[j]
        won[a] += w
        games[a][b] = games[a].get(b, 0.0) + w
        games[b][a] = games[b].get(a, 0.0) + w
    strength = [1.0] * n
    for _ in range(iterations):
        change = 0.0
        for a in range(n):
            denominator = 2 * prior / (strength[a] + 1.0)
            denominator += sum(g / (strength[a] + strength[b]) for b, g in games[a].items())
            new = won[a] / denominator
            change = max(change, abs(math.log(new) - math.log(strength[a])))
            strength[a] = new
        if change < tolerance:
            break
    return {cid: math.log(strength[index[cid]]) for cid in ids}


class DuelingBandit:
    """The state of the comparisons among `ids` (order matters only to break ties in
    reports), and the pair rule described in the module docstring."""

    def __init__(self, ids: Sequence[str], *, exploration: float = 1.0, prior: float = 0.5):
        if len(ids) < 2 or len(set(ids)) != len(ids):
            raise ValueError("a dueling bandit needs two or more distinct candidates")
        self.ids = tuple(ids)
        self.exploration = exploration
        self.prior = prior
        self.wins: dict[tuple[str, str], float] = {}  # (i, j) -> wins of i over j
        self.meetings: dict[frozenset[str], int] = {}  # judged duels per pair
        self.judged = 0
        self._strengths: dict[str, float] | None = None

    def observe(self, record: Record) -> None:
        """Adds a verdict (a skip changes nothing)."""
        if not record.judged:
            return
        a, b = record.candidate_a, record.candidate_b
        self.wins[a, b] = self.wins.get((a, b), 0.0) + record.score_a
        self.wins[b, a] = self.wins.get((b, a), 0.0) + 1.0 - record.score_a
        pair = frozenset((a, b))
        self.meetings[pair] = self.meetings.get(pair, 0) + 1
        self.judged += 1
        self._strengths = None

    def compared(self, cid: str) -> int:
        """Judged duels `cid` took part in."""
        return sum(n for pair, n in self.meetings.items() if cid in pair)

    def strengths(self) -> dict[str, float]:
        if self._strengths is None:
            self._strengths = bradley_terry(self.ids, self.wins, prior=self.prior)
        return self._strengths

    def next_pair(self, rng: Random) -> tuple[str, str]:
        """The next two candidates to compare (first, second); see the module docstring."""
        counts = {cid: self.compared(cid) for cid in self.ids}
        unseen = [cid for cid in self.ids if counts[cid] == 0]
        if unseen:
            first = rng.choice(unseen)
            others = [c for c in self.ids if c != first]
            fresh = [c for c in others if frozenset((first, c)) not in self.meetings]
            pool = fresh or others
            fewest = min(counts[c] for c in pool)
            return first, rng.choice([c for c in pool if counts[c] == fewest])
        theta = self.strengths()
        first = _argmax(self.ids, theta, rng)
        log_t = math.log(1 + self.judged)

        def upper(j: str) -> float:
            met = self.meetings.get(frozenset((first, j)), 0)
            if met == 0:
                return math.inf
            return theta[j] - theta[first] + self.exploration * math.sqrt(log_t / met)

        others = [c for c in self.ids if c != first]
        bounds = {c: upper(c) for c in others}
        return first, _argmax(others, bounds, rng)


def _argmax(ids: Sequence[str], value: dict[str, float], rng: Random) -> str:
    best = max(value[c] for c in ids)
    top = [c for c in ids if value[c] >= best - _TIE]
    return top[0] if len(top) == 1 else rng.choice(top)
