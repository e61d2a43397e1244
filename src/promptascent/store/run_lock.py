"""One process per run: an OS file lock on the run folder.

A process that works on a run (a new run, a resume, a preference session) holds an
exclusive `fcntl.flock` on `run.lock` in the run folder for the whole run. The OS
drops the lock when the process ends, however it ends (SIGKILL, a crash, a power
loss), so a lock is never stale and needs no cleaning up. While it is held, another
process that wants the run gets `RunInUse`, naming the run and the holder's process
id (written into the lock file), and touches nothing in the folder. The lock is
taken before anything in the folder is read for changing (a resume's clearing of
what it re-derives), so one process never wipes another's records.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path
from types import TracebackType

from promptascent.errors import RunInUse
from promptascent.store.files import fsync_dir

LOCKFILE = "run.lock"
# The run folders this process holds the lock of now (resolved paths): for `holder`, since
# a process id in a lock file says nothing when it is this process's own.
_HELD: set[Path] = set()
_PID_WAIT_SECONDS = 0.5  # the holder writes its pid right after taking the lock


class RunLock:
    """`with RunLock(run_dir):` holds the run folder's lock (creating the folder) for the
    block; RunInUse if another live process holds it. Not reentrant: a second RunLock on
    the same folder in the same process is refused too."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.path = run_dir / LOCKFILE
        self._fd: int | None = None

    def acquire(self) -> None:
        if not self.run_dir.is_dir():
            self.run_dir.mkdir(parents=True, exist_ok=True)
            fsync_dir(self.run_dir.parent)  # the new run folder survives a power loss
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            who = f"process {holder}" if holder else "another process"
            raise RunInUse(
                f"run {self.run_dir.name} ({self.run_dir}) is in use by {who}; wait for it "
                "to end, or stop it (a stopped process leaves no lock behind)"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        _HELD.add(self.run_dir.resolve())

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            _HELD.discard(self.run_dir.resolve())
            os.close(fd)  # closing the last descriptor drops the lock

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def _holder(fd: int) -> int | None:
    """The process id the lock's holder wrote (None if it has not written it yet)."""
    deadline = time.monotonic() + _PID_WAIT_SECONDS
    while True:
        text = os.pread(fd, 64, 0).decode("ascii", "replace").strip()
        if text.isdigit():
            return int(text)
        if time.monotonic() > deadline:
            return None
        time.sleep(0.02)


def holder(run_dir: Path) -> int | None:
    """The process id of the live process that holds (or last held) the run's lock, None
    when that process has ended, the run was never locked, or this process held it and
    let it go. Read from the lock file, not by taking the lock, so that looking never
    gets in the way of a run starting. (A process id the system has since given to
    another process reads as live.)"""
    try:
        text = (run_dir / LOCKFILE).read_text(encoding="ascii", errors="replace").strip()
    except OSError:
        return None
    if not text.isdigit():
        return None
    pid = int(text)
    if pid == os.getpid():  # this process: held only while a RunLock here holds it
        return pid if run_dir.resolve() in _HELD else None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:  # alive, another user's
        return pid
    return pid


def current_status(run_dir: Path, status: str) -> str:
    """A run's recorded status, except that a run recorded as running whose process has
    ended (killed, crashed, the machine stopped) is "interrupted": it resumes as any
    interrupted run. Shown by `show`, the report and the web app."""
    if status == "running" and holder(run_dir) is None:
        return "interrupted"
    return status
