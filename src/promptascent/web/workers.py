"""Runs started from the web app, each in a worker process: the `promptascent` CLI.

A worker is `python -m promptascent optimize ...` (a new run, `--resume`, or
`refine`), so a run started here is the same run as one started in a terminal: it
holds the run folder's lock (store/run_lock.py) for its whole life, and stopping it
sends SIGINT, which is Ctrl-C: the run records "interrupted" and resumes later like
any interrupted run (`optimize --resume`, or Resume in the web app). A worker's
output goes to `<runs dir>/.serve/<run id>.log` (the dot keeps it out of the run
list); its last line is shown when it ends with an error.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from promptascent.errors import ConfigError, RunInUse
from promptascent.store.run_folders import recorded
from promptascent.store.run_lock import RunLock

RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")
LOGS = ".serve"
STOP_WAIT_SECONDS = 20.0
START_WAIT_SECONDS = 30.0  # a start answers once its run is recorded (or failed)


class Conflict(Exception):
    """The run cannot be started, stopped or resumed now (HTTP 409); one line."""


def check_run_id(run_id: str) -> str:
    """`run_id` if it can name a folder in the runs folder (letters, digits, `.`,
    `_`, `-`; no path), else ConfigError."""
    if not RUN_ID.fullmatch(run_id):
        raise ConfigError(
            f"run id {run_id!r}: use letters, digits, '.', '_' and '-' (200 at most), "
            "starting with a letter or digit"
        )
    return run_id


@dataclass
class Worker:
    run_id: str
    command: str  # optimize | resume | refine
    process: subprocess.Popen[bytes]
    log: Path

    def state(self) -> dict[str, Any]:
        code = self.process.poll()
        state: dict[str, Any] = {"command": self.command, "running": code is None, "exit": code}
        if code not in (None, 0, 130):
            state["error"] = _last_line(self.log)
        return state


class Workers:
    """The worker processes this server started, by run id."""

    def __init__(self, runs_dir: Path, cache_dir: Path) -> None:
        self.runs_dir = runs_dir
        self.cache_dir = cache_dir
        self._workers: dict[str, Worker] = {}
        self._lock = threading.Lock()

    def state(self, run_id: str) -> dict[str, Any] | None:
        worker = self._workers.get(run_id)
        return None if worker is None else worker.state()

    def live(self, run_id: str) -> bool:
        worker = self._workers.get(run_id)
        return worker is not None and worker.process.poll() is None

    def optimize(self, task_file: Path, run_id: str) -> Worker:
        """A new run of `task_file` in folder `run_id`; Conflict if it exists."""
        return self._start(run_id, "optimize", ["optimize", str(task_file), "--run-id", run_id])

    def resume(self, run_id: str) -> Worker:
        """Continues the interrupted run `run_id` (`optimize --resume`)."""
        return self._start(run_id, "resume", ["optimize", "--resume", run_id], new=False)

    def refine(self, run_id: str, candidate: str, new_id: str) -> Worker:
        """A new run `new_id` refining `run_id` from `candidate`'s prompt with the span
        comments stored on it (`refine --candidate --spans`)."""
        args = ["refine", run_id, "--candidate", candidate, "--spans", "--run-id", new_id]
        return self._start(new_id, "refine", args)

    def stop(self, run_id: str) -> None:
        """Ctrl-C for the run's worker; Conflict if no worker of this server runs it."""
        worker = self._workers.get(run_id)
        if worker is None or worker.process.poll() is not None:
            raise Conflict(f"run {run_id} is not running in a worker of this server")
        worker.process.send_signal(signal.SIGINT)

    def stop_all(self) -> None:
        """Stops every live worker as Ctrl-C would, and waits for them to end."""
        live = [w for w in self._workers.values() if w.process.poll() is None]
        for w in live:
            w.process.send_signal(signal.SIGINT)
        for w in live:
            try:
                w.process.wait(STOP_WAIT_SECONDS)
            except subprocess.TimeoutExpired:
                w.process.kill()
                w.process.wait()

    def _start(self, run_id: str, command: str, args: list[str], *, new: bool = True) -> Worker:
        check_run_id(run_id)
        run_dir = self.runs_dir / run_id
        with self._lock:
            if self.live(run_id):
                raise Conflict(f"run {run_id} is already running here")
            if new and recorded(run_dir):
                raise Conflict(f"run {run_id} already exists; resume it instead")
            if not new or run_dir.exists():
                _check_unlocked(run_dir)
            log = self.runs_dir / LOGS / f"{run_id}.log"
            log.parent.mkdir(parents=True, exist_ok=True)
            argv = [sys.executable, "-m", "promptascent", *args]
            argv += ["--runs-dir", str(self.runs_dir), "--cache-dir", str(self.cache_dir), "-q"]
            with log.open("wb") as out:
                process = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    # Its own process group: a Ctrl-C at the server's terminal reaches the
                    # server, which stops its workers itself (stop_all).
                    start_new_session=True,
                    env={**os.environ, "COLUMNS": "200"},
                )
            worker = Worker(run_id, command, process, log)
            self._workers[run_id] = worker
        _wait_started(worker, run_dir)
        return worker


def _wait_started(worker: Worker, run_dir: Path) -> None:
    """Returns once the worker has recorded its run (its page can be shown); a
    worker that ended first raises its last line (a bad task, a run in use) as
    ConfigError, or Conflict when it names a lock."""
    deadline = time.monotonic() + START_WAIT_SECONDS
    while time.monotonic() < deadline:
        if worker.process.poll() is not None:
            if worker.process.returncode == 0:
                return
            line = _last_line(worker.log).removeprefix("error: ")
            raise (Conflict if "in use by" in line else ConfigError)(
                line or f"the worker ended with status {worker.process.returncode}"
            )
        if recorded(run_dir):
            return
        time.sleep(0.05)


def _check_unlocked(run_dir: Path) -> None:
    """Conflict if another live process holds the run's lock (a terminal's run)."""
    try:
        with RunLock(run_dir):
            pass
    except RunInUse as e:
        raise Conflict(str(e)) from None


def _last_line(log: Path) -> str:
    try:
        lines = [x for x in log.read_text("utf-8", "replace").splitlines() if x.strip()]
    except OSError:
        return ""
    return lines[-1].strip() if lines else ""
