"""The preference loop: pick a pair, show a person their outputs on one input, record
the verdict, repeat. Drivable from code: the person is a `Chooser` callback (the
terminal UI is one; a web UI or a scripted test is another).

Outputs come from the task model through the Evaluator, so they are cached, budgeted
and journaled like every other model call. Each record is handed to `on_record` as
soon as it is made (before the next duel is drawn), so quitting or a crash loses no
verdict; a later call with the stored records as `history` continues the same run:
the bandit's state is rebuilt from them, and duel k is drawn from an RNG seeded with
(seed, k), so it is the same duel however often the run was interrupted.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from promptascent.data.example import Example
from promptascent.errors import BudgetExhausted, ModelUnavailable
from promptascent.evaluation.evaluator import Evaluator
from promptascent.preference.bandit import DuelingBandit
from promptascent.preference.duel import CHOICES, Choice, Duel, Record
from promptascent.prompts.prompt import Prompt

Chooser = Callable[[Duel], Choice]
"""Judges a duel: "A" or "B" (that output is better), "tie", "skip" (no verdict) or
"quit" (stop now; nothing is recorded for this duel). May raise to abort the loop:
what was recorded stays recorded."""


@dataclass(frozen=True)
class Standing:
    """One candidate's win record over the judged duels, and its Bradley-Terry
    log-strength (0 for a candidate never compared)."""

    candidate_id: str
    wins: int
    losses: int
    ties: int
    strength: float

    @property
    def duels(self) -> int:
        return self.wins + self.losses + self.ties

    @property
    def win_rate(self) -> float | None:
        """(wins + ties / 2) / duels; None before the first judged duel."""
        return (self.wins + 0.5 * self.ties) / self.duels if self.duels else None

    def record_text(self) -> str:
        return f"{self.wins}-{self.losses}-{self.ties}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "candidate_id": self.candidate_id,
            "wins": self.wins,
            "losses": self.losses,
            "ties": self.ties,
            "duels": self.duels,
            "win_rate": self.win_rate,
            "strength": self.strength,
        }


@dataclass(frozen=True)
class PreferenceOutcome:
    """`status`: "finished" (all rounds recorded), "quit" (the person stopped),
    "budget" (a limit would have been exceeded) or "stopped" (the task model failed
    too often). `standings` are ranked, best first."""

    records: tuple[Record, ...]
    standings: tuple[Standing, ...]
    status: str
    stopped_by: str | None

    @property
    def best(self) -> Standing:
        return self.standings[0]

    @property
    def judged(self) -> int:
        return sum(1 for r in self.records if r.judged)


def standings(ids: Sequence[str], records: Sequence[Record]) -> tuple[Standing, ...]:
    """Win records and strengths, best first: by strength, then win rate; a candidate
    never compared ranks after every compared one; remaining ties keep `ids` order."""
    bandit = DuelingBandit(ids)
    tally = {cid: [0, 0, 0] for cid in ids}
    for r in records:
        if not r.judged or r.candidate_a not in tally or r.candidate_b not in tally:
            continue
        bandit.observe(r)
        a, b = tally[r.candidate_a], tally[r.candidate_b]
        if r.choice == "tie":
            a[2] += 1
            b[2] += 1
        else:
            winner, loser = (a, b) if r.choice == "A" else (b, a)
            winner[0] += 1
            loser[1] += 1
    theta = bandit.strengths()
    rows = [Standing(cid, *_three(tally[cid]), theta[cid]) for cid in ids]
    order = {cid: k for k, cid in enumerate(ids)}
    return tuple(
        sorted(
            rows,
            key=lambda s: (
                s.duels == 0,
                -round(s.strength, 9),
                -(s.win_rate or 0.0),
                order[s.candidate_id],
            ),
        )
    )


def _three(counts: list[int]) -> tuple[int, int, int]:
    return counts[0], counts[1], counts[2]


def duel_rng(seed: int, round_index: int) -> random.Random:
    """The RNG of duel `round_index`: the same duel on a resumed run."""
    return random.Random(f"prefer:{seed}:{round_index}")


def run_preferences(
    candidates: Sequence[tuple[str, Prompt]],
    examples: Sequence[Example],
    evaluator: Evaluator,
    chooser: Chooser,
    *,
    rounds: int,
    seed: int = 0,
    history: Sequence[Record] = (),
    on_record: Callable[[Record], None] | None = None,
    exploration: float = 1.0,
) -> PreferenceOutcome:
    """Runs duels until `rounds` records exist (counting `history`, skips included),
    the chooser quits, or the budget ends (BudgetExhausted and ModelUnavailable end
    the loop cleanly; every record made is kept).

    `candidates` are (candidate id, prompt) pairs, two or more; `examples` the inputs
    duels are drawn from (labels are neither needed nor shown). A duel whose output
    failed (a model error) is recorded as a skip with the error, without asking.
    """
    if len(candidates) < 2:
        raise ValueError("preferences need two or more candidates")
    if not examples:
        raise ValueError("preferences need one or more examples")
    prompts = dict(candidates)
    ids = [cid for cid, _ in candidates]
    bandit = DuelingBandit(ids, exploration=exploration)
    records = list(history)
    for r in records:
        bandit.observe(r)
    status, stopped_by = "finished", None
    try:
        while len(records) < rounds:
            k = len(records)
            rng = duel_rng(seed, k)
            first, second = bandit.next_pair(rng)
            example = examples[rng.randrange(len(examples))]
            a, b = (first, second) if rng.random() < 0.5 else (second, first)
            out_a = evaluator.run_one(prompts[a], example)
            out_b = evaluator.run_one(prompts[b], example)
            error = out_a.error or out_b.error
            if error is not None:
                record = Record(
                    k, example.id, example.input_text, a, b, out_a.output, out_b.output,
                    "skip", error=error,
                )  # fmt: skip
            else:
                duel = Duel(k, example, a, b, out_a.output, out_b.output)
                choice = chooser(duel)
                if choice not in CHOICES:
                    raise ValueError(f"the chooser answered {choice!r}; expected one of {CHOICES}")
                if choice == "quit":
                    status = "quit"
                    break
                record = Record(
                    k, example.id, example.input_text, a, b, duel.output_a, duel.output_b, choice
                )
            records.append(record)
            bandit.observe(record)
            if on_record is not None:
                on_record(record)
    except BudgetExhausted as e:
        status, stopped_by = "budget", e.limit
    except ModelUnavailable as e:
        status, stopped_by = "stopped", str(e)
    return PreferenceOutcome(tuple(records), standings(ids, records), status, stopped_by)
