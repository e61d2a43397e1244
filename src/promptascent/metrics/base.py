"""The metric contract."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from promptascent.data.example import Example


@dataclass(frozen=True)
class Score:
    """A metric's verdict on one output.

    `value` is in [0, 1], higher is better. `parsed` is False when the output could not
    be read as an answer at all (for choice accuracy: it names no valid choice); such an
    output scores 0 and is counted as unparsed, never mapped to a default class.
    `prediction` is what the metric read from the output, for reports. `feedback` is an
    optional sentence on what was wrong (or right) with the output, for an optimizer
    that reflects on its failures (GEPA); it never changes the score, and two verdicts
    that differ only in it are equal.
    """

    value: float
    parsed: bool = True
    prediction: str | None = None
    feedback: str | None = field(default=None, compare=False)


@runtime_checkable
class Metric(Protocol):
    name: str
    needs_target: bool

    def score(self, output: str, example: Example) -> Score:
        """Scores one output. Raises MetricError if the example lacks what the metric needs."""
        ...
