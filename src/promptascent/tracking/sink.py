"""The run's events, translated once for every tracker, and the guard that keeps a
failing or hanging tracker from touching the run.

`Tracking` is an event sink (subscribed by the runner) and a context manager (the
runner enters it for the run's duration, so it sees how the run ended, Ctrl-C and
errors included). The trackers are called on a thread of their own, in the order of
the run's events: the run's threads only queue the calls, so a slow or unreachable
tracking server (MLflow retries for minutes) never holds up the run or the event bus.
At the end the run waits up to `FINISH_WAIT_S` for the trackers to finish, then goes
on without them. A tracker that raises, or has not finished by then, is dropped after
one `TrackerFailed` event; the run, its store and its result are never affected.
"""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Callable
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

# How long the end of a run waits for its trackers to send what is queued.
FINISH_WAIT_S = 30.0


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
        # Calls for the worker thread; None stops it. Failures it meets wait in
        # `_failed` until one of the run's threads sends them (the worker never sends
        # an event: the bus may be locked by a thread that waits for the worker).
        self._calls: queue.Queue[Callable[[], None] | None] = queue.Queue()
        self._failed: list[TrackerFailed] = []
        self._lock = threading.Lock()
        self._worker: threading.Thread | None = None
        if self.trackers:
            self._worker = threading.Thread(
                target=self._work, name=f"trackers-{run_id}", daemon=True
            )
            self._worker.start()

    def __call__(self, event: Event) -> None:
        if self._worker is None:
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
            self._warn()
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
        self._close()

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
        if self._ended:
            return
        self._ended = True
        if self._worker is None:
            return
        if kind is not None:
            status = "interrupted" if issubclass(kind, KeyboardInterrupt) else "failed"
            end = RunEnd(status=status, candidates=list(self._candidates.values()))
            self._each(lambda t: t.finish(end))
        self._close()
        self._warn()

    def _each(self, call: Callable[[Tracker], None]) -> None:
        """Queues `call` for every tracker still on (the worker runs it)."""
        self._calls.put(lambda: self._call_each(call))

    def _call_each(self, call: Callable[[Tracker], None]) -> None:
        for tracker in list(self.trackers):
            try:
                call(tracker)
            except Exception as e:
                self._drop(tracker, _why(e))

    def _drop(self, tracker: Tracker, why: str) -> None:
        with self._lock:
            if tracker in self.trackers:
                self.trackers.remove(tracker)
                self._failed.append(TrackerFailed(tracker.name, why))

    def _work(self) -> None:
        while (call := self._calls.get()) is not None:
            call()

    def _close(self) -> None:
        """Waits up to FINISH_WAIT_S for the queued calls; a tracker still busy then is
        dropped (its record of the run may lack the end)."""
        done = threading.Event()
        self._calls.put(done.set)
        self._calls.put(None)
        if not done.wait(FINISH_WAIT_S):
            for tracker in list(self.trackers):
                self._drop(
                    tracker,
                    f"did not finish within {FINISH_WAIT_S:g} s (its record of this run may "
                    "be incomplete)",
                )

    def _warn(self) -> None:
        """Sends the failures the worker met: after the event in hand when inside one
        (the bus is locked), else at once."""
        with self._lock:
            failed, self._failed = self._failed, []
        for warning in failed:
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
