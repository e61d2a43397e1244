"""Duels and the person's verdicts on them: pure values.

A duel shows one input and the outputs of two candidate prompts on it, under the
neutral labels "A" and "B" (which candidate is shown where is drawn per duel, so a
habit of picking the left or the first one cannot favour a prompt). A record is a duel
with its verdict, as it is stored in the run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from promptascent.data.example import Example

Choice = Literal["A", "B", "tie", "skip", "quit"]
CHOICES: tuple[str, ...] = get_args(Choice)
Verdict = Literal["A", "B", "tie", "skip"]  # what is recorded: "quit" records nothing


@dataclass(frozen=True)
class Duel:
    """What the person judges: one input and two outputs. `candidate_a` and
    `candidate_b` are the ids of the prompts shown as A and B (not shown to the
    person: the outputs are judged blind). `round` counts duels in the run, from 0."""

    round: int
    example: Example
    candidate_a: str
    candidate_b: str
    output_a: str
    output_b: str


@dataclass(frozen=True)
class Record:
    """A recorded duel. `choice` is "A" or "B" (that output was better), "tie", or
    "skip" (no verdict; also recorded, with `error`, when a model call failed and the
    person was not asked). Skips count as rounds but never as wins, losses or ties."""

    round: int
    example_id: str
    input: str
    candidate_a: str
    candidate_b: str
    output_a: str
    output_b: str
    choice: Verdict
    error: str | None = None
    ts: float = field(default_factory=time.time)

    @property
    def judged(self) -> bool:
        """Whether the record is evidence about the two prompts (a win or a tie)."""
        return self.choice in ("A", "B", "tie")

    @property
    def winner(self) -> str | None:
        """The id of the preferred candidate (None for a tie or a skip)."""
        return {"A": self.candidate_a, "B": self.candidate_b}.get(self.choice)

    @property
    def score_a(self) -> float:
        """Candidate A's share of the win: 1, 0 or 1/2 (a tie counts as half a win)."""
        return {"A": 1.0, "B": 0.0}.get(self.choice, 0.5)

    def to_dict(self) -> dict[str, Any]:
        return {
            "round": self.round,
            "example_id": self.example_id,
            "input": self.input,
            "candidate_a": self.candidate_a,
            "candidate_b": self.candidate_b,
            "output_a": self.output_a,
            "output_b": self.output_b,
            "choice": self.choice,
            "error": self.error,
            "ts": self.ts,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Record:
        return cls(
            round=int(d["round"]),
            example_id=str(d["example_id"]),
            input=str(d["input"]),
            candidate_a=str(d["candidate_a"]),
            candidate_b=str(d["candidate_b"]),
            output_a=str(d["output_a"]),
            output_b=str(d["output_b"]),
            choice=d["choice"],
            error=d.get("error"),
            ts=float(d.get("ts") or 0.0),
        )
