"""The run's events, translated once for every tracker, and the guard that keeps a
failing tracker from touching the run.

`Tracking` is an event sink (subscribed by the runner) and a context manager (the
runner enters it for the run's duration, so it sees how the run ended, Ctrl-C and
errors included). A tracker that raises is dropped after one `TrackerFailed` event;
the run, its store and its result are never affected.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import TracebackType
from typing import Any

from promptascent.events import (
    CandidateEvaluated,
    CandidateProposed,
    Event,
    EventBus,
    ModelCalled,
    RunFinished,
    RunStarted,
    TrackerFailed,
)
from promptascent.tracking.base import CandidateScore, RunEnd, TrackedRun, Tracker
from promptascent.tracking.params import run_params
from promptascent.tracking.registry import create_tracker


class Tracking:
    """The trackers named in `names` for one run (see Runner._run). `models`: the
    model id of each role whose backend the settings gave as an object."""

    def __init__(
        self,
        names: tuple[str, ...] | list[str],
        *,
        run_id: str,
        run_dir: Path,
        config: dict[str, Any],
        seed_prompt: str,
        resumed: bool,
        bus: EventBus,
        models: dict[str, str] | None = None,
    ) -> None:
        self.run_dir = run_dir
        self.bus = bus
        self.run = TrackedRun(
            run_id=run_id,
            task=str(config["task"]["name"]),
            params=run_params(config, models),
            seed_prompt=seed_prompt,
            resumed=resumed,
        )
        self.trackers: list[Tracker] = []
        for name in names:
            try:
                self.trackers.append(create_tracker(name))
            except Exception as e:
                bus(TrackerFailed(name, _why(e)))
        self._candidates: dict[str, dict[str, Any]] = {}
        self._in_event = False
        self._ended = False

    def __call__(self, event: Event) -> None:
        if not self.trackers:
            return
        self._in_event = True
        try:
            if isinstance(event, RunStarted):
                self._each(lambda t: t.start(self.run))
            elif isinstance(event, CandidateProposed):
                self._candidates[event.candidate_id] = {
                    "index": len(self._candidates),
                    "id": event.candidate_id,
                    "operation": event.operation,
                    "step": event.step,
                    "parents": list(event.parents),
                    "scores": {},
                }
            elif isinstance(event, CandidateEvaluated):
                self._record(event)
            elif isinstance(event, ModelCalled):
                self._each(lambda t: t.model_call(event))
            elif isinstance(event, RunFinished):
                self._end(event.status)
        finally:
            self._in_event = False

    def _record(self, event: CandidateEvaluated) -> None:
        cand = self._candidates.get(event.candidate_id)
        if cand is None:  # not proposed through the pool: nothing to number it by
            return
        cand["scores"][event.split] = event.score
        score = CandidateScore(
            index=cand["index"],
            candidate_id=event.candidate_id,
            operation=cand["operation"],
            step=cand["step"],
            split=event.split,
            score=event.score,
            n=event.n,
        )
        self._each(lambda t: t.record(score))

    def _end(self, status: str) -> None:
        if self._ended:
            return
        self._ended = True
        end = RunEnd(
            status=status,
            result=_read_json(self.run_dir / "result.json"),
            best_prompt=_read_text(self.run_dir / "best_prompt.txt"),
            candidates=list(self._candidates.values()),
        )
        self._each(lambda t: t.finish(end))

    def __enter__(self) -> Tracking:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """A run that raised ends as interrupted (Ctrl-C) or failed; its trackers are
        told so. Raises nothing: the run's own error is the one to report."""
        if kind is None or self._ended:
            return
        self._ended = True
        status = "interrupted" if issubclass(kind, KeyboardInterrupt) else "failed"
        end = RunEnd(status=status, candidates=list(self._candidates.values()))
        self._each(lambda t: t.finish(end))

    def _each(self, call: Any) -> None:
        for tracker in list(self.trackers):
            try:
                call(tracker)
            except Exception as e:
                self.trackers.remove(tracker)
                warning = TrackerFailed(tracker.name, _why(e))
                # Inside an event the bus is locked: the warning follows that event.
                if self._in_event:
                    self.bus.later(warning)
                else:
                    self.bus(warning)


def _why(error: Exception) -> str:
    return f"{type(error).__name__}: {error}"[:500]


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        return None
