"""Events a run emits: they feed the run store, progress display and reports.

Library code never prints; it emits events. A sink is any callable taking an Event.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Event:
    ts: float = field(default_factory=time.time, kw_only=True)

    @property
    def kind(self) -> str:
        return type(self).__name__

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **asdict(self)}


@dataclass(frozen=True)
class RunStarted(Event):
    run_id: str
    optimizer: str


@dataclass(frozen=True)
class PhaseStarted(Event):
    """A named part of the run begins (e.g. "search", "test"), with its planned work."""

    phase: str
    total: int | None = None


@dataclass(frozen=True)
class CandidateProposed(Event):
    candidate_id: str
    parents: tuple[str, ...]
    operation: str
    step: int


@dataclass(frozen=True)
class CandidateEvaluated(Event):
    candidate_id: str
    split: str
    score: float
    n: int
    unparsed: int
    errors: int


@dataclass(frozen=True)
class ExampleScored(Event):
    """One example finished (for progress bars)."""

    prompt_id: str
    cached: bool


@dataclass(frozen=True)
class StepFinished(Event):
    step: int
    best_candidate_id: str
    best_score: float


@dataclass(frozen=True)
class ReplyRejected(Event):
    """An optimizer-model reply could not be used (empty, unparseable, duplicate)."""

    reason: str
    step: int


@dataclass(frozen=True)
class BudgetStopped(Event):
    limit: str


@dataclass(frozen=True)
class SearchStopped(Event):
    """The search ended early for a reason other than the budget (e.g. a failing model)."""

    reason: str


@dataclass(frozen=True)
class BudgetSpent(Event):
    """What the run has spent so far, against its limits: emitted by the runner after
    each scored example and each candidate evaluation (`after` names the event it
    follows). `calls` and `task_calls` are logical calls (cache hits included), as the
    call limits count them; `dollars` as the dollar limit counts them; `limits` holds
    the run's `calls`, `task_calls` and `dollars` limits that are set."""

    after: str
    calls: int
    task_calls: int
    dollars: float
    limits: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class RunResumed(Event):
    run_id: str
    resumes: int


@dataclass(frozen=True)
class RunFinished(Event):
    run_id: str
    status: str
    best_candidate_id: str | None


@dataclass(frozen=True)
class ModelCalled(Event):
    """One model call through a ModelClient ended (`ts`: when; it took `seconds`):
    `operation` complete or loglik; `cached`: answered by the run's journal or a
    cache, not the model; `error`: the ModelError it raised, if any (a call refused by
    the budget before it was made is no call). For tracing (tracking/otel.py); the run
    store keeps none (one per call is too many)."""

    role: str
    model: str
    operation: str
    prompt_tokens: int
    completion_tokens: int
    cached: bool
    seconds: float
    error: str | None = None


@dataclass(frozen=True)
class TrackerFailed(Event):
    """An experiment tracker (promptascent.tracking: mlflow, wandb, otel) raised; the run goes
    on without it. Sent once per tracker: it gets no more events after this."""

    tracker: str
    error: str


EventSink = Callable[[Event], None]


class EventBus:
    """Fans events out to subscribers, in order, from any thread. `follow_up(event)`,
    if given, may answer an event with another one, sent right after it under the same
    lock (so no other event comes between them)."""

    def __init__(self, follow_up: Callable[[Event], Event | None] | None = None) -> None:
        self._sinks: list[EventSink] = []
        self._lock = threading.Lock()
        self._follow_up = follow_up
        self._later: list[Event] = []

    def subscribe(self, sink: EventSink) -> None:
        self._sinks.append(sink)

    def __call__(self, event: Event) -> None:
        with self._lock:
            for sink in self._sinks:
                sink(event)
            then = self._follow_up(event) if self._follow_up else None
            if then is not None:
                for sink in self._sinks:
                    sink(then)
            while self._later:
                queued = self._later.pop(0)
                for sink in self._sinks:
                    sink(queued)

    def later(self, event: Event) -> None:
        """For a sink, while it handles an event: sends `event` to every sink once the
        event in hand (and its follow-up) has reached them all. A sink cannot send an
        event directly: the bus holds its lock while a sink runs."""
        self._later.append(event)


def ignore(event: Event) -> None:
    """A sink that drops everything."""
