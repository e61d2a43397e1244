"""Evaluation cache: the task model's output for (prompt id, example, model, params).

It sits in front of the response cache: a hit skips rendering the prompt and hashing
the request. Like the response cache it stores only successful completions, commits
with `synchronous=NORMAL` (a power loss can take back its last rows: those calls are
asked again), and a damaged file or a full disk raises StorageError naming the file.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from promptascent.llm.types import Completion
from promptascent.store.failures import FileKind, guarded
from promptascent.store.sqlite_busy import retry_locked

_SCHEMA = """
CREATE TABLE IF NOT EXISTS evaluations (
  key TEXT PRIMARY KEY,
  completion TEXT NOT NULL
);
"""


class EvaluationCache:
    file_kind: FileKind = "cache"

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._local = threading.local()
        self._create()

    @guarded
    def _create(self) -> None:
        conn = self._conn()
        retry_locked(lambda: conn.executescript(_SCHEMA))

    @guarded
    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            conn.execute("PRAGMA busy_timeout=30000")
            # a WAL switch does not wait on the busy handler: parallel runs open at once
            retry_locked(lambda: conn.execute("PRAGMA journal_mode=WAL").fetchone())
            # WAL + NORMAL: durable across a process crash, one fsync per checkpoint
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
        return conn

    @staticmethod
    def key(prompt_id: str, example_id: str, model_id: str, params: str) -> str:
        return f"{model_id}|{params}|{prompt_id}|{example_id}"

    @guarded
    def get(self, key: str) -> Completion | None:
        row = (
            self._conn()
            .execute("SELECT completion FROM evaluations WHERE key = ?", (key,))
            .fetchone()
        )
        return Completion.from_json(row[0], cached=True) if row else None

    @guarded
    def put(self, key: str, completion: Completion) -> None:
        self._conn().execute(
            "INSERT OR REPLACE INTO evaluations (key, completion) VALUES (?, ?)",
            (key, completion.to_json()),
        )
