"""A run's journal (`calls.sqlite` in its folder): every reply it paid for and every
paid attempt.

As a response cache it maps request keys to the replies the run was given, so a
resumed run replays them instead of paying again. Its `attempts` table holds one row
per attempt that may have been billed (the reply's, and those that gave no usable
reply: timeouts, unusable replies), with the usage charged and its price, written
before the reply is used. A resumed run's `model_calls` and `spent_dollars` start
from these rows (`carry_over`), so they count what every process of the run paid:
`spent_dollars` is the sum of the `dollars` column.

Every commit is synced to disk before it returns (`synchronous=FULL`): a journaled
reply or attempt survives a power loss. A damaged file or a full disk raises a
StorageError naming the file and what to do.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

from promptascent.llm.cache import _SCHEMA, ResponseCache
from promptascent.llm.metering import REPLY, Attempt
from promptascent.llm.types import Completion, LoglikResult, TokenUsage
from promptascent.llm.usage import PaidBefore
from promptascent.store.failures import FileKind, guarded

_ATTEMPTS = (
    "CREATE TABLE IF NOT EXISTS attempts ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " key TEXT NOT NULL,"  # the request's cache key
    " role TEXT NOT NULL,"
    " outcome TEXT NOT NULL,"  # 'reply', or what went wrong
    " prompt_tokens INTEGER NOT NULL,"
    " completion_tokens INTEGER NOT NULL,"
    " estimated INTEGER NOT NULL,"  # 1: usage unknown, charged at the call's worst case
    " dollars REAL NOT NULL,"
    " anomaly TEXT,"  # reported usage beyond the request's limits
    " created REAL NOT NULL)"
)


class Journal(ResponseCache):
    """See the module docstring. Thread- and process-safe like `ResponseCache`."""

    SCHEMA = (*_SCHEMA, _ATTEMPTS)
    SYNCHRONOUS = "FULL"
    file_kind: FileKind = "journal"

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self._claim_lock = threading.Lock()
        # key -> the failed attempts of that call, for replies paid by earlier processes
        # whose first replay in this process is still to come (see `carry_over`).
        self._unclaimed: dict[str, tuple[TokenUsage, float]] = {}

    @guarded
    def record_attempt(
        self, attempt: Attempt, *, reply: tuple[str, Completion | LoglikResult] | None = None
    ) -> None:
        """Records a paid attempt; with `reply` (request JSON, completion or likelihood
        result) the reply is stored in the same transaction, so no reply is journaled
        unpaid or paid unjournaled short of a crash between the model's answer and this
        write."""
        if reply is not None and isinstance(reply[1], Completion):
            ResponseCache.check_storable(reply[1])

        def write(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO attempts (key, role, outcome, prompt_tokens, completion_tokens,"
                " estimated, dollars, anomaly, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    attempt.key,
                    attempt.role,
                    attempt.outcome,
                    attempt.usage.prompt_tokens,
                    attempt.usage.completion_tokens,
                    int(attempt.estimated),
                    attempt.dollars,
                    attempt.anomaly,
                    time.time(),
                ),
            )
            if reply is not None:
                conn.execute(
                    "INSERT OR REPLACE INTO responses (key, request, completion, created) "
                    "VALUES (?, ?, ?, ?)",
                    (attempt.key, reply[0], reply[1].to_json(), time.time()),
                )

        self._transaction(write)

    @guarded
    def spent_dollars(self) -> float:
        """The price of every paid attempt recorded (all roles, all processes)."""
        (total,) = self._conn().execute("SELECT COALESCE(SUM(dollars), 0) FROM attempts").fetchone()
        return float(total)

    @guarded
    def anomalies(self) -> list[tuple[str, str]]:
        """(role, what was reported) for each attempt whose reported usage went beyond
        its request's limits, oldest first."""
        rows = self._conn().execute(
            "SELECT role, anomaly FROM attempts WHERE anomaly IS NOT NULL ORDER BY id"
        )
        return [(str(role), str(text)) for role, text in rows]

    @guarded
    def carry_over(self) -> dict[str, PaidBefore]:
        """What earlier processes of this run paid, per role (`UsageMeter.carry_over`).
        From now on the first answer this journal gives for each reply they paid is that
        paid call repeated, not a cache hit (`claim`)."""
        conn = self._conn()
        replied = "SELECT key FROM attempts WHERE outcome = ?"
        unreplayed: dict[str, tuple[TokenUsage, float]] = {}
        for role, prompt, completion, dollars in conn.execute(
            "SELECT role, SUM(prompt_tokens), SUM(completion_tokens), SUM(dollars)"
            f" FROM attempts WHERE outcome != ? AND key NOT IN ({replied}) GROUP BY role",
            (REPLY, REPLY),
        ):
            unreplayed[role] = (TokenUsage(int(prompt), int(completion)), float(dollars))
        paid: dict[str, PaidBefore] = {}
        for role, replies, failures, dollars, anomalies in conn.execute(
            "SELECT role, SUM(outcome = ?), SUM(outcome != ?), SUM(dollars), COUNT(anomaly)"
            " FROM attempts GROUP BY role",
            (REPLY, REPLY),
        ):
            usage, usage_dollars = unreplayed.get(role, (TokenUsage(), 0.0))
            paid[role] = PaidBefore(
                replies=int(replies),
                failures=int(failures),
                spent_dollars=float(dollars),
                anomalies=int(anomalies),
                unreplayed=usage,
                unreplayed_dollars=usage_dollars,
            )
        unclaimed: dict[str, tuple[TokenUsage, float]] = {}
        for key, prompt, completion, dollars in conn.execute(
            "SELECT key, SUM(CASE WHEN outcome != ? THEN prompt_tokens ELSE 0 END),"
            " SUM(CASE WHEN outcome != ? THEN completion_tokens ELSE 0 END),"
            " SUM(CASE WHEN outcome != ? THEN dollars ELSE 0 END)"
            f" FROM attempts WHERE key IN ({replied}) GROUP BY key",
            (REPLY, REPLY, REPLY, REPLY),
        ):
            unclaimed[key] = (TokenUsage(int(prompt), int(completion)), float(dollars))
        with self._claim_lock:
            self._unclaimed = unclaimed
        return paid

    def has_unclaimed(self) -> bool:
        with self._claim_lock:
            return bool(self._unclaimed)

    def unclaimed(self, key: str) -> tuple[TokenUsage, float] | None:
        """For a reply paid by an earlier process and not yet replayed in this one: the
        usage and price of that call's failed attempts (charged to the budget with the
        replay, as they were when paid). None otherwise."""
        with self._claim_lock:
            return self._unclaimed.get(key)

    def claim(self, key: str) -> bool:
        """Marks the reply under `key` replayed; True for the first claim only."""
        with self._claim_lock:
            return self._unclaimed.pop(key, None) is not None
