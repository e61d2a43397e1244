"""A persistent response cache: SQLite in WAL mode, shared by threads and processes.

Keys are `CompletionRequest.cache_key(model_id)`; values are `Completion.to_json()`.
Only successful completions go in: errors are never cached, so a rerun retries them.

The shared cache commits with `synchronous=NORMAL` (WAL): it survives a crash of the
process, and a power loss can take back its last rows, which costs only calls asked
again. A run's journal (llm/journal.py, a subclass) commits with `synchronous=FULL`.
A damaged file or a full disk raises a StorageError naming the file and what to do.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TypeVar

from promptascent.errors import StorageError
from promptascent.llm.types import Completion, LoglikResult
from promptascent.store.failures import FileKind, check_integrity, guarded, storage_error
from promptascent.store.files import fsync_dir
from promptascent.store.sqlite_busy import retry_locked

T = TypeVar("T")

SCHEMA_VERSION = 1
BUSY_TIMEOUT_MS = 30_000

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS responses ("
    " key TEXT PRIMARY KEY,"
    " request TEXT NOT NULL,"
    " completion TEXT NOT NULL,"
    " created REAL NOT NULL)",
)


class CacheError(StorageError):
    """The cache file cannot be used (newer schema, damaged, closed). Names the file."""


@dataclass(frozen=True)
class CacheStats:
    """`entries` counts rows in the file (all processes); `hits`, `misses` and `puts`
    count calls on this `ResponseCache` instance only."""

    entries: int
    hits: int
    misses: int
    puts: int


class ResponseCache:
    """Maps cache keys to completions in the SQLite file at `path` (parent dirs created).

    Thread-safe: each thread gets its own connection. Process-safe: WAL journal,
    a 30 s busy timeout, one short transaction per write, `INSERT OR REPLACE`
    (the last writer of a key wins; writers of the same key write the same request).
    A file written by a newer schema version raises `CacheError`.
    """

    # Tables created in a new file (and added to an older one); a subclass may add more.
    SCHEMA: tuple[str, ...] = _SCHEMA
    # How each commit reaches the disk, and what the file is to the user (errors).
    SYNCHRONOUS = "NORMAL"
    file_kind: FileKind = "cache"

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        new = not self.path.exists()
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[sqlite3.Connection] = []
        self._closed = False
        self._hits = 0
        self._misses = 0
        self._puts = 0
        self._init_schema(self._conn())
        if new:  # the new file's entry in its folder survives a power loss
            fsync_dir(self.path.parent)

    def __repr__(self) -> str:
        return f"ResponseCache({str(self.path)!r})"

    # -- connections -------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        if self._closed:
            raise CacheError(f"response cache {self.path} is closed")
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            return conn
        try:
            # autocommit mode: each statement is its own transaction unless BEGIN'd.
            conn = sqlite3.connect(
                self.path,
                timeout=BUSY_TIMEOUT_MS / 1000,
                isolation_level=None,
                check_same_thread=False,  # only so close() can close every thread's one
            )
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            self._retry_busy(lambda: conn.execute("PRAGMA journal_mode = WAL").fetchone())
            conn.execute(f"PRAGMA synchronous = {self.SYNCHRONOUS}")
        except sqlite3.DatabaseError as exc:
            raise self._error(exc, "cannot open") from exc
        self._local.conn = conn
        with self._lock:
            self._connections.append(conn)
        return conn

    def _retry_busy(self, action: Callable[[], T]) -> T:
        """Runs `action()`, retrying for up to the busy timeout while another process
        holds a lock SQLite's busy handler does not wait for (e.g. a WAL switch)."""
        return retry_locked(action, BUSY_TIMEOUT_MS / 1000)

    def _init_schema(self, conn: sqlite3.Connection) -> None:
        def init() -> None:
            conn.execute("BEGIN IMMEDIATE")
            try:
                for statement in self.SCHEMA:
                    conn.execute(statement)
                row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
                if row is None:
                    conn.execute(
                        "INSERT INTO meta (key, value) VALUES ('schema_version', ?)",
                        (str(SCHEMA_VERSION),),
                    )
                    found = SCHEMA_VERSION
                else:
                    found = int(row[0])
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:  # SQLite rolls back by itself on a full disk
                    conn.execute("ROLLBACK")
                raise
            if found > SCHEMA_VERSION:
                raise CacheError(
                    f"response cache {self.path} has schema version {found}; this version "
                    f"of promptascent reads version {SCHEMA_VERSION}: upgrade promptascent "
                    "or use another cache file"
                )
            if found < 1:
                raise CacheError(f"response cache {self.path}: bad schema version {found}")

        try:
            self._retry_busy(init)
        except (sqlite3.DatabaseError, ValueError) as exc:
            raise self._error(exc, "unusable") from exc

    def _error(self, exc: BaseException, what: str) -> CacheError:
        """The CacheError for a failure of the file: what to do about it where known."""
        known = storage_error(self.path, exc, self.file_kind)
        if known is not None:
            return CacheError(str(known), resumable=known.resumable)
        return CacheError(f"{self.file_kind} {self.path}: {what}: {exc}")

    # -- API ---------------------------------------------------------------------

    @guarded
    def get(self, key: str) -> Completion | None:
        """The completion stored under `key`, with `cached=True`, or None on a miss.
        A row that cannot be decoded counts as a miss (the next put overwrites it)."""
        blob = self._lookup(key)
        completion: Completion | None = None
        if blob is not None:
            try:
                completion = Completion.from_json(blob, cached=True)
            except (ValueError, KeyError, TypeError):
                completion = None
        self._count(completion is not None)
        return completion

    @guarded
    def get_loglik(self, key: str) -> LoglikResult | None:
        """The log-likelihood result stored under `key` (`cached=True`), or None."""
        blob = self._lookup(key)
        result: LoglikResult | None = None
        if blob is not None:
            try:
                result = LoglikResult.from_json(blob, cached=True)
            except (ValueError, KeyError, TypeError):
                result = None
        self._count(result is not None)
        return result

    @guarded
    def put_loglik(self, key: str, request_json: str, result: LoglikResult) -> None:
        """Stores a log-likelihood result under `key` (the same table as completions:
        its key, made from a request of another kind, never equals a completion's)."""
        self._write(key, request_json, result.to_json())

    def _lookup(self, key: str) -> str | None:
        row = (
            self._conn()
            .execute("SELECT completion FROM responses WHERE key = ?", (key,))
            .fetchone()
        )
        return None if row is None else str(row[0])

    def _count(self, hit: bool) -> None:
        with self._lock:
            if hit:
                self._hits += 1
            else:
                self._misses += 1

    @guarded
    def put(self, key: str, request_json: str, completion: Completion) -> None:
        """Stores `completion` under `key`, replacing any earlier entry. `request_json`
        is kept for inspection only. Raises ValueError if `completion.text` is None
        (only successful completions may be cached; finish_reason "length" is fine)."""
        self.check_storable(completion)
        self._write(key, request_json, completion.to_json())

    def _write(self, key: str, request_json: str, blob: str) -> None:
        def write(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT OR REPLACE INTO responses (key, request, completion, created) "
                "VALUES (?, ?, ?, ?)",
                (key, request_json, blob, time.time()),
            )

        self._transaction(write)
        with self._lock:
            self._puts += 1

    def _transaction(self, write: Callable[[sqlite3.Connection], None]) -> None:
        """Runs `write` in one write transaction: all of it is stored, or none."""
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            write(conn)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:  # SQLite rolls back by itself on a full disk
                conn.execute("ROLLBACK")
            raise

    @staticmethod
    def check_storable(completion: Completion) -> None:
        """Raises ValueError unless `completion` is a successful one (has text)."""
        if completion.text is None:
            raise ValueError("refusing to cache a completion without text")
        if not isinstance(completion.text, str):
            raise ValueError("refusing to cache a completion whose text is not a string")

    def check_integrity(self) -> None:
        """Raises StorageError if the file is damaged (SQLite's quick check), e.g. before
        a resumed run relies on its journal."""
        check_integrity(self._conn(), self.path, self.file_kind)

    @guarded
    def stats(self) -> CacheStats:
        """Entry count in the file plus this instance's hit/miss/put counters."""
        (entries,) = self._conn().execute("SELECT COUNT(*) FROM responses").fetchone()
        with self._lock:
            return CacheStats(int(entries), self._hits, self._misses, self._puts)

    def close(self) -> None:
        """Closes every thread's connection. Idempotent; later calls raise CacheError."""
        with self._lock:
            self._closed = True
            connections, self._connections = self._connections, []
        for conn in connections:
            conn.close()

    def __enter__(self) -> ResponseCache:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
