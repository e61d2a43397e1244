"""The preference loop in the browser: the terminal `prefer` session, judged by clicks.

A session runs `preference.session` (start_preferences / resume_preferences) in a
thread of the server, exactly as `promptascent prefer` runs it, so every verdict is
stored as the terminal stores it, the run holds its folder's lock, and a session
paused (or ended by the server stopping) resumes like any interrupted one. The
chooser hands each duel to the page and waits for the person's verdict.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from promptascent.config.task import load_task
from promptascent.errors import PromptascentError
from promptascent.preference.duel import Choice, Duel, Record
from promptascent.preference.session import PreferResult, resume_preferences, start_preferences
from promptascent.run_settings import RunSettings
from promptascent.web.workers import Conflict, check_run_id

VERDICTS: tuple[Choice, ...] = ("A", "B", "tie", "skip")
ANSWER_WAIT_SECONDS = 30.0


class WebChooser:
    """A `Chooser` that waits for a verdict from the page. `close()` makes it answer
    "quit" (the session ends, keeping every verdict recorded)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.pending: Duel | None = None
        self._verdict: Choice | None = None
        self._closed = False
        self.changes = 0  # bumped whenever a duel is posed, recorded, or the session ends

    def __call__(self, duel: Duel) -> Choice:
        with self._cond:
            self.pending, self._verdict = duel, None
            self._changed()
            while self._verdict is None and not self._closed:
                self._cond.wait()
            verdict: Choice = self._verdict or "quit"
            self.pending = None
            return verdict

    def answer(self, round_: int, choice: Choice) -> bool:
        """Gives the verdict on duel `round_`; False when that duel is not the one
        waiting (answered already, or another)."""
        with self._cond:
            if self.pending is None or self.pending.round != round_ or self._verdict:
                return False
            self._verdict = choice
            self._cond.notify_all()
            return True

    def wait_change(self, seen: int, timeout: float) -> None:
        """Waits until something changed since `seen` (or `timeout`)."""
        with self._cond:
            self._cond.wait_for(lambda: self.changes != seen, timeout)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._changed()

    def _changed(self) -> None:
        self.changes += 1
        self._cond.notify_all()


@dataclass
class Session:
    run_id: str
    chooser: WebChooser
    thread: threading.Thread | None = None
    result: PreferResult | None = None
    error: str | None = None
    recorded: list[Record] = field(default_factory=list)

    @property
    def live(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def state(self) -> dict[str, Any]:
        duel = self.chooser.pending
        return {
            "run_id": self.run_id,
            "live": self.live,
            "duel": None
            if duel is None
            else {
                "round": duel.round,
                "input": duel.example.input_text,
                "output_a": duel.output_a,
                "output_b": duel.output_b,
            },
            "recorded": len(self.recorded),
            "status": self.result.status if self.result else None,
            "error": self.error,
        }


class PreferenceSessions:
    """The preference sessions this server runs, by run id."""

    def __init__(self, settings: RunSettings) -> None:
        self.settings = settings
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    def get(self, run_id: str) -> Session | None:
        return self._sessions.get(run_id)

    def start(
        self, task_file: Path, run_id: str, *, from_run: Path | None, candidates: int, rounds: int
    ) -> Session:
        """A new preference run of `task_file` (ConfigError when it is invalid)."""
        task = load_task(task_file)
        check_run_id(run_id)

        def work(session: Session) -> PreferResult:
            return start_preferences(
                task,
                session.chooser,
                from_run=from_run,
                candidates=candidates,
                rounds=rounds,
                settings=self.settings,
                run_id=run_id,
                on_record=session.recorded.append,
            )

        return self._launch(run_id, work)

    def resume(self, run_dir: Path) -> Session:
        """Continues the preference run in `run_dir` with its own configuration."""

        def work(session: Session) -> PreferResult:
            return resume_preferences(
                run_dir, session.chooser, settings=self.settings, on_record=session.recorded.append
            )

        return self._launch(run_dir.name, work)

    def answer(self, run_id: str, round_: int, choice: Choice) -> dict[str, Any]:
        """Gives the verdict and waits until it is stored (and the next duel is posed,
        or the session ended); Conflict when that duel is not waiting."""
        session = self._sessions.get(run_id)
        if session is None or not session.live:
            raise Conflict(f"no preference session of run {run_id} is running here")
        changes = session.chooser.changes
        if not session.chooser.answer(round_, choice):
            raise Conflict(f"duel {round_ + 1} of run {run_id} is not waiting for a verdict")
        # The next change is the next duel or the end, both after the verdict is stored.
        session.chooser.wait_change(changes, ANSWER_WAIT_SECONDS)
        return session.state()

    def pause(self, run_id: str) -> None:
        session = self._sessions.get(run_id)
        if session is None or not session.live:
            raise Conflict(f"no preference session of run {run_id} is running here")
        session.chooser.close()
        assert session.thread is not None
        session.thread.join(ANSWER_WAIT_SECONDS)

    def close_all(self) -> None:
        for session in list(self._sessions.values()):
            session.chooser.close()
        for session in list(self._sessions.values()):
            if session.thread is not None:
                session.thread.join(ANSWER_WAIT_SECONDS)

    def _launch(self, run_id: str, work: Callable[[Session], PreferResult]) -> Session:
        with self._lock:
            old = self._sessions.get(run_id)
            if old is not None and old.live:
                raise Conflict(f"a preference session of run {run_id} is already running here")
            session = Session(run_id, WebChooser())

            def target() -> None:
                try:
                    session.result = work(session)
                except PromptascentError as e:
                    session.error = str(e)
                except Exception as e:  # shown on the page; the session's status says failed
                    session.error = f"{type(e).__name__}: {e}"
                finally:
                    session.chooser.close()

            session.thread = threading.Thread(target=target, name=f"prefer-{run_id}", daemon=True)
            self._sessions[run_id] = session
            session.thread.start()
            return session
