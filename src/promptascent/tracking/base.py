"""What a tracker is told about a run, and the contract it keeps.

A tracker is a thin adapter to an outside tool (MLflow, OpenTelemetry): the run's
events are translated once (tracking/sink.py) into the four calls below, so a
tracker knows nothing of optimizers or the event bus. Any method may raise: the run
goes on without that tracker (sink.py warns once through the run's events).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from promptascent.events import ModelCalled


@dataclass(frozen=True)
class TrackedRun:
    """A run as it starts. `params` are flat, secret-free strings (params.py);
    `resumed`: this process continues an interrupted run."""

    run_id: str
    task: str
    params: dict[str, str]
    seed_prompt: str
    resumed: bool = False


@dataclass(frozen=True)
class CandidateScore:
    """One recorded evaluation of a candidate on a split. `index` numbers the run's
    candidates in the order they were proposed (the seed is 0)."""

    index: int
    candidate_id: str
    operation: str
    step: int
    split: str
    score: float
    n: int


@dataclass(frozen=True)
class RunEnd:
    """How a run ended. `status`: finished, budget or stopped (the run's result
    status), interrupted (Ctrl-C) or failed (an error). `result` is the run's
    result.json and `best_prompt` its best_prompt.txt, when it wrote them;
    `candidates`: every candidate's id, operation, step, parents and scores by split."""

    status: str
    result: dict[str, Any] | None = None
    best_prompt: str | None = None
    candidates: list[dict[str, Any]] = field(default_factory=list)


class Tracker(Protocol):
    """Receives one run: `start` first, `record` per evaluation and `model_call` per
    model call (the ModelCalled event as it is), `finish` last (also after a failure).
    Called on a thread of its own (tracking/sink.py), one call at a time, in the order
    of the run's events."""

    name: str

    def start(self, run: TrackedRun) -> None: ...

    def record(self, score: CandidateScore) -> None: ...

    def model_call(self, call: ModelCalled) -> None: ...

    def finish(self, end: RunEnd) -> None: ...


def final_metrics(result: dict[str, Any]) -> dict[str, float]:
    """From a run's result.json: the test scores with their intervals, the paired
    difference, and the usage and cost per role, as flat names (test.best.ci_low,
    usage.task.dollars)."""
    out: dict[str, float] = {}
    test = result.get("test") or {}
    for which in ("seed", "best"):
        summary = test.get(which)
        if summary:
            for key in ("mean", "ci_low", "ci_high", "n"):
                if summary.get(key) is not None:
                    out[f"test.{which}.{key}"] = float(summary[key])
    diff = test.get("difference")
    if diff:
        for key in ("mean", "ci_low", "ci_high", "p_value"):
            if diff.get(key) is not None:
                out[f"test.difference.{key}"] = float(diff[key])
    for role, usage in (result.get("usage") or {}).items():
        for key, value in usage.items():
            if isinstance(value, (int, float)):
                out[f"usage.{role}.{key}"] = float(value)
    return out
