"""Failures of the files promptascent keeps, as one-line errors that say what to do.

SQLite reports a corrupt or truncated file ("file is not a database", "database disk
image is malformed"), a full disk ("database or disk is full") and I/O failures as
sqlite3 exceptions; writing a plain file reports a full disk as OSError ENOSPC. Each
becomes a `StorageError` that names the file and the way out for that kind of file:
a run store holds the run's record, a journal the replies the run paid for, a cache
only replies that can be asked for again. Other errors (a bug, a busy database) are
not failures of the file and pass through unchanged.
"""

from __future__ import annotations

import errno
import functools
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Concatenate, Literal, ParamSpec, Protocol, TypeVar

from promptascent.errors import StorageError

FileKind = Literal["run store", "journal", "cache", "output"]

# SQLite's primary result codes (https://sqlite.org/rescode.html)
_CORRUPT = {11, 26}  # SQLITE_CORRUPT, SQLITE_NOTADB
_FULL = 13  # SQLITE_FULL
_IOERR = 10  # SQLITE_IOERR
_CANTOPEN = {14, 8}  # SQLITE_CANTOPEN, SQLITE_READONLY

_DAMAGED = {
    "run store": "the run's record is damaged ({detail}); the run cannot be shown or resumed: "
    "move its folder aside and start the run again (replies in the shared cache are not "
    "paid for again)",
    "journal": "the run's call journal is damaged ({detail}); delete this file and resume "
    "the run: the calls it held are made again (or answered by the shared cache)",
    "cache": "this cache file is damaged ({detail}); delete it (a cache holds only replies "
    "that can be asked for again) or run with --no-cache",
    "output": "the file is damaged ({detail}); delete it and resume the run",
}
_FULL_ADVICE = {
    "run store": "free some space, then resume the run",
    "journal": "free some space, then resume the run",
    "cache": "free some space (or run with --no-cache), then resume the run",
    "output": "free some space and try again",
}


def _category(exc: BaseException) -> str | None:
    """'corrupt', 'full', 'io', 'open', or None for an error that is not the file's."""
    if isinstance(exc, OSError):
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return "full"
        return "io" if exc.errno == errno.EIO else None
    if not isinstance(exc, sqlite3.DatabaseError):
        return None
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        primary = code & 0xFF
        if primary in _CORRUPT:
            return "corrupt"
        if primary == _FULL:
            return "full"
        if primary == _IOERR:
            return "io"
        if primary in _CANTOPEN:
            return "open"
        return None
    text = str(exc)  # an exception raised without a code (sqlite3 < 3.11 style)
    if "not a database" in text or "malformed" in text:
        return "corrupt"
    if "disk is full" in text:
        return "full"
    return "io" if "disk I/O error" in text else None


def storage_error(path: Path, exc: BaseException, kind: FileKind) -> StorageError | None:
    """The StorageError that `exc`, raised while using the `kind` file at `path`, means
    to the user; None when `exc` is not a failure of the file."""
    category = _category(exc)
    detail = (exc.strerror if isinstance(exc, OSError) else None) or str(exc)
    if category == "corrupt":
        return StorageError(f"{path}: " + _DAMAGED[kind].format(detail=detail))
    if category == "full":
        return StorageError(
            f"{path}: the disk is full ({detail}); {_FULL_ADVICE[kind]}", resumable=True
        )
    if category == "io":
        return StorageError(
            f"{path}: cannot read or write it ({detail}): the disk may be full or failing; "
            "check it, then resume the run",
            resumable=True,
        )
    if category == "open":
        return StorageError(
            f"{path}: cannot open it for writing ({detail}); check that its folder exists "
            "and is writable"
        )
    return None


def check_integrity(conn: sqlite3.Connection, path: Path, kind: FileKind) -> None:
    """Raises the StorageError of a damaged file when SQLite's quick check of the
    database at `path` finds a fault (a truncated file often opens fine and fails
    only when a missing page is read: this finds it before anything is changed)."""
    with file_errors(path, kind):
        rows = conn.execute("PRAGMA quick_check").fetchall()
    if rows != [("ok",)]:
        detail = "; ".join(str(row[0]) for row in rows[:2])
        raise StorageError(f"{path}: " + _DAMAGED[kind].format(detail=detail))


@contextmanager
def file_errors(path: Path, kind: FileKind) -> Iterator[None]:
    """Turns a failure of the file at `path` into its StorageError (see module doc)."""
    try:
        yield
    except (sqlite3.DatabaseError, OSError) as exc:
        error = storage_error(path, exc, kind)
        if error is None:
            raise
        raise error from exc


class KeptFile(Protocol):
    """An object that uses one file: its path, and what kind of file it is."""

    @property
    def path(self) -> Path: ...

    @property
    def file_kind(self) -> FileKind: ...


S = TypeVar("S", bound=KeptFile)
P = ParamSpec("P")
T = TypeVar("T")


def guarded(method: Callable[Concatenate[S, P], T]) -> Callable[Concatenate[S, P], T]:
    """A method of a KeptFile whose failures of the file become StorageErrors."""

    @functools.wraps(method)
    def wrapper(self: S, /, *args: P.args, **kwargs: P.kwargs) -> T:
        with file_errors(self.path, self.file_kind):
            return method(self, *args, **kwargs)

    return wrapper
