"""Waiting out another process's SQLite lock where SQLite's busy handler does not
(switching a database to WAL, the first schema write): caches shared by runs in
parallel open the same file at the same moment."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

BUSY_TIMEOUT_SECONDS = 30.0


def retry_locked(action: Callable[[], T], seconds: float = BUSY_TIMEOUT_SECONDS) -> T:
    """`action()`, retried every 50 ms for up to `seconds` while it fails because the
    database is locked; any other error, or the lock outlasting `seconds`, is raised."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return action()
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)
