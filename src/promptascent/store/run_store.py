"""The run store: one SQLite file (WAL) per run, written as the run goes.

Tables: `run` (key -> JSON: config, status, result), `candidates` (prompt, lineage),
`evaluations` (per-example outputs and scores), `scores` (per candidate and split),
`events`, `usage` (per role), `preferences` (a person's verdicts on duels, in the
order they were made; see promptascent.preference), `span_comments` (a person's
comments on spans of a prompt or an output; see promptascent.span_feedback).
Nothing is pickled: every value is JSON or a column. The store is the bottom layer
(docs/architecture.md): it takes and gives plain data (dicts of JSON values), never
the objects of the layers above; they convert (`Candidate.record()`,
`EvaluationResult.record()`, `Record.to_dict()`, `SpanComment.to_dict()` and their
`from_dict`).

Durability: WAL with `synchronous=FULL`, so every committed write is on disk when the
call returns and survives a power loss (the config, status and a person's verdicts
cannot be re-derived). A damaged file or a full disk raises StorageError naming the
file (store/failures.py).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from promptascent.errors import ConfigError
from promptascent.store.failures import FileKind, check_integrity, file_errors, guarded
from promptascent.store.files import fsync_dir

SCHEMA_VERSION = 5
FILENAME = "run.sqlite"
# The `run` key of the dev and test examples (id, input text, expected answer), which
# reports show beside the outputs (promptascent.report reads the store only).
EXAMPLES_KEY = "examples"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS run (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS candidates (
  id TEXT PRIMARY KEY, prompt TEXT NOT NULL, parents TEXT NOT NULL,
  operation TEXT NOT NULL, step INTEGER NOT NULL, seq INTEGER NOT NULL,
  note TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS evaluations (
  candidate_id TEXT NOT NULL, split TEXT NOT NULL, example_id TEXT NOT NULL,
  output TEXT NOT NULL, score REAL, parsed INTEGER NOT NULL, prediction TEXT,
  error TEXT, finish_reason TEXT NOT NULL, loss REAL, gold_prob REAL,
  PRIMARY KEY (candidate_id, split, example_id)
);
CREATE TABLE IF NOT EXISTS scores (
  candidate_id TEXT NOT NULL, split TEXT NOT NULL, mean REAL, ci_low REAL, ci_high REAL,
  n INTEGER NOT NULL, unparsed INTEGER NOT NULL, errors INTEGER NOT NULL, mean_loss REAL,
  PRIMARY KEY (candidate_id, split)
);
CREATE TABLE IF NOT EXISTS events (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, ts REAL NOT NULL, kind TEXT NOT NULL, data TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS usage (role TEXT PRIMARY KEY, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS preferences (
  round INTEGER PRIMARY KEY, example_id TEXT NOT NULL, input TEXT NOT NULL,
  candidate_a TEXT NOT NULL, candidate_b TEXT NOT NULL,
  output_a TEXT NOT NULL, output_b TEXT NOT NULL,
  choice TEXT NOT NULL, error TEXT, ts REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS span_comments (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, candidate_id TEXT NOT NULL, target TEXT NOT NULL,
  start INTEGER NOT NULL, "end" INTEGER NOT NULL, span TEXT NOT NULL, comment TEXT NOT NULL,
  split TEXT, example_id TEXT, ts REAL NOT NULL
);
"""


class RunStore:
    file_kind: FileKind = "run store"

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        run_dir.mkdir(parents=True, exist_ok=True)
        self.path = run_dir / FILENAME
        self._lock = threading.Lock()
        new = not self.path.exists()
        with file_errors(self.path, self.file_kind):
            self._conn = sqlite3.connect(
                self.path, timeout=30, check_same_thread=False, isolation_level=None
            )
        try:
            self._open()
        except BaseException:
            self._conn.close()
            raise
        if new:  # the file's entry in the folder, and the folder's, survive a power loss
            fsync_dir(run_dir)
            fsync_dir(run_dir.parent)

    @guarded
    def _open(self) -> None:
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute("PRAGMA busy_timeout=30000")
        with self._lock:
            self._conn.executescript(_SCHEMA)
            version = self.get("schema_version")
            if version is None:
                self.put("schema_version", SCHEMA_VERSION)
            elif version < SCHEMA_VERSION:
                self._migrate(version)
            elif version > SCHEMA_VERSION:
                raise ConfigError(
                    f"{self.path}: run store schema {version} is newer than this promptascent "
                    f"({SCHEMA_VERSION}); upgrade promptascent to read it"
                )

    def _migrate(self, version: int) -> None:
        """Brings an older store up to this schema, in place."""
        columns = {row[1] for row in self._conn.execute("PRAGMA table_info(candidates)")}
        if version < 2 and "note" not in columns:
            self._conn.execute("ALTER TABLE candidates ADD COLUMN note TEXT NOT NULL DEFAULT ''")
        # version 3 added the `preferences` table: _SCHEMA has just created it
        if version < 4:  # likelihood scoring: per-example loss and gold probability
            evaluations = {r[1] for r in self._conn.execute("PRAGMA table_info(evaluations)")}
            for column in ("loss", "gold_prob"):
                if column not in evaluations:
                    self._conn.execute(f"ALTER TABLE evaluations ADD COLUMN {column} REAL")
            scores = {r[1] for r in self._conn.execute("PRAGMA table_info(scores)")}
            if "mean_loss" not in scores:
                self._conn.execute("ALTER TABLE scores ADD COLUMN mean_loss REAL")
        # version 5 added the `span_comments` table: _SCHEMA has just created it
        self.put("schema_version", SCHEMA_VERSION)

    @classmethod
    def open_existing(cls, run_dir: Path) -> RunStore:
        """The store of a recorded run, checked whole: a damaged or truncated file is a
        StorageError here, before anything reads or changes it."""
        if not (run_dir / FILENAME).is_file():
            raise ConfigError(f"{run_dir}: not a run folder (no {FILENAME})")
        store = cls(run_dir)
        try:
            store.check_integrity()
        except BaseException:
            store.close()
            raise
        return store

    def check_integrity(self) -> None:
        """Raises StorageError if the file is damaged (SQLite's quick check)."""
        check_integrity(self._conn, self.path, self.file_kind)

    def close(self) -> None:
        self._conn.close()

    # key-value

    @guarded
    def put(self, key: str, value: Any) -> None:
        self._conn.execute(
            "INSERT OR REPLACE INTO run (key, value) VALUES (?, ?)", (key, json.dumps(value))
        )

    @guarded
    def get(self, key: str, default: Any = None) -> Any:
        row = self._conn.execute("SELECT value FROM run WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else default

    @guarded
    def clear_derived(self) -> None:
        """Drops candidates, evaluations, scores, events and usage before a resumed run
        replays them (they are re-derived exactly from the journal and the caches)."""
        with self._lock:
            self._conn.execute("BEGIN")
            try:
                for table in ("candidates", "evaluations", "scores", "events", "usage"):
                    self._conn.execute(f"DELETE FROM {table}")
                self._conn.execute("COMMIT")
            except BaseException:
                if self._conn.in_transaction:  # SQLite rolls back by itself on a full disk
                    self._conn.execute("ROLLBACK")
                raise

    # candidates and evaluations

    @guarded
    def add_candidate(self, c: Mapping[str, Any]) -> None:
        """Stores a candidate: `id`, `prompt` (a prompt's dict), `parents` (ids),
        `operation`, `step`, `note`. One already stored is kept as it was."""
        with self._lock:
            seq = self._conn.execute("SELECT COUNT(*) FROM candidates").fetchone()[0]
            self._conn.execute(
                "INSERT OR IGNORE INTO candidates VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    c["id"],
                    json.dumps(c["prompt"]),
                    json.dumps(list(c["parents"])),
                    c["operation"],
                    c["step"],
                    seq,
                    c.get("note", ""),
                ),
            )

    @guarded
    def add_evaluation(self, candidate_id: str, split: str, result: Mapping[str, Any]) -> None:
        """Stores an evaluation (it replaces one of the same candidate and split):
        `results`, one dict per example (_RESULT_COLUMNS), and `summary` (mean, ci_low,
        ci_high, n, unparsed, errors, mean_loss)."""
        summary = result["summary"]
        with self._lock:
            self._conn.execute("BEGIN")
            try:
                self._conn.executemany(
                    "INSERT OR REPLACE INTO evaluations (candidate_id, split, example_id, "
                    "output, score, parsed, prediction, error, finish_reason, loss, gold_prob) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        (candidate_id, split, *(r.get(k) for k in _RESULT_COLUMNS))
                        for r in ({**_RESULT_DEFAULTS, **row} for row in result["results"])
                    ],
                )
                self._conn.execute(
                    "INSERT OR REPLACE INTO scores (candidate_id, split, mean, ci_low, "
                    "ci_high, n, unparsed, errors, mean_loss) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        candidate_id,
                        split,
                        _finite(summary["mean"]),
                        _finite(summary["ci_low"]),
                        _finite(summary["ci_high"]),
                        summary["n"],
                        summary["unparsed"],
                        summary["errors"],
                        summary["mean_loss"],
                    ),
                )
                self._conn.execute("COMMIT")
            except BaseException:
                if self._conn.in_transaction:  # SQLite rolls back by itself on a full disk
                    self._conn.execute("ROLLBACK")
                raise

    @guarded
    def add_event(self, ts: float, kind: str, data: dict[str, Any]) -> None:
        with self._lock:
            self._conn.execute(
                "INSERT INTO events (ts, kind, data) VALUES (?, ?, ?)", (ts, kind, json.dumps(data))
            )

    @guarded
    def add_preference(self, d: Mapping[str, Any]) -> None:
        """Stores one verdict (its own transaction: a crash after it keeps it), a dict of
        _PREFERENCE_COLUMNS (preference.duel.Record.to_dict)."""
        with self._lock:
            self._conn.execute(
                "INSERT INTO preferences VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                tuple(d[k] for k in _PREFERENCE_COLUMNS),
            )

    @guarded
    def add_span_comment(self, d: Mapping[str, Any]) -> None:
        """Stores one span comment (its own transaction), a dict of _SPAN
        (span_feedback.SpanComment.to_dict). Kept by a resume, which clears only what
        it re-derives."""
        with self._lock:
            self._conn.execute(
                f"INSERT INTO span_comments ({_SPAN_SQL}) VALUES ({', '.join('?' * len(_SPAN))})",
                tuple(d[k] for k in _SPAN),
            )

    @guarded
    def set_usage(self, usage: dict[str, dict[str, float]]) -> None:
        with self._lock:
            self._conn.executemany(
                "INSERT OR REPLACE INTO usage VALUES (?, ?)",
                [(role, json.dumps(data)) for role, data in usage.items()],
            )

    # reading

    @guarded
    def candidates(self) -> list[dict[str, Any]]:
        rows = self._conn.execute(
            "SELECT id, prompt, parents, operation, step, note FROM candidates ORDER BY seq"
        ).fetchall()
        scores: dict[str, dict[str, dict[str, Any]]] = {}
        for cid, split, mean, low, high, n, unparsed, errors, loss in self._conn.execute(
            "SELECT candidate_id, split, mean, ci_low, ci_high, n, unparsed, errors, mean_loss "
            "FROM scores"
        ):
            scores.setdefault(cid, {})[split] = {
                "mean": mean,
                "ci_low": low,
                "ci_high": high,
                "n": n,
                "unparsed": unparsed,
                "errors": errors,
                "mean_loss": loss,
            }
        return [
            {
                "id": cid,
                "prompt": json.loads(prompt),
                "parents": json.loads(parents),
                "operation": op,
                "step": step,
                "note": note,
                "scores": scores.get(cid, {}),
            }
            for cid, prompt, parents, op, step, note in rows
        ]

    @guarded
    def prompt(self, candidate_id: str) -> dict[str, Any]:
        """The stored prompt of a candidate, as its dict (Prompt.from_dict reads it)."""
        row = self._conn.execute(
            "SELECT prompt FROM candidates WHERE id = ?", (candidate_id,)
        ).fetchone()
        if row is None:
            raise ConfigError(f"{self.path}: no candidate {candidate_id!r}")
        return dict(json.loads(row[0]))

    @guarded
    def evaluations(self, candidate_id: str, split: str) -> list[dict[str, Any]]:
        cur = self._conn.execute(
            "SELECT example_id, output, score, parsed, prediction, error, finish_reason, "
            "loss, gold_prob FROM evaluations WHERE candidate_id = ? AND split = ? "
            "ORDER BY example_id",
            (candidate_id, split),
        )
        cols = [d[0] for d in cur.description]
        return [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]

    @guarded
    def usage(self) -> dict[str, dict[str, float]]:
        return {role: json.loads(data) for role, data in self._conn.execute("SELECT * FROM usage")}

    @guarded
    def preferences(self) -> list[dict[str, Any]]:
        """The recorded verdicts, in the order they were made (Record.from_dict reads
        each)."""
        cur = self._conn.execute(
            f"SELECT {', '.join(_PREFERENCE_COLUMNS)} FROM preferences ORDER BY round"
        )
        return [dict(zip(_PREFERENCE_COLUMNS, row, strict=True)) for row in cur]

    @guarded
    def span_comments(self, candidate_id: str | None = None) -> list[dict[str, Any]]:
        """The span comments (on one candidate, or all), in the order they were made
        (SpanComment.from_dict reads each)."""
        where, args = ("WHERE candidate_id = ?", (candidate_id,)) if candidate_id else ("", ())
        cur = self._conn.execute(
            f"SELECT {_SPAN_SQL} FROM span_comments {where} ORDER BY seq", args
        )
        return [dict(zip(_SPAN, row, strict=True)) for row in cur]

    @guarded
    def events(self) -> list[dict[str, Any]]:
        return [
            {"seq": seq, "ts": ts, "kind": kind, **json.loads(data)}
            for seq, ts, kind, data in self._conn.execute("SELECT * FROM events ORDER BY seq")
        ]


_PREFERENCE_COLUMNS = (
    "round", "example_id", "input", "candidate_a", "candidate_b",
    "output_a", "output_b", "choice", "error", "ts",
)  # fmt: skip


# An example's result as stored (evaluation.result.ExampleResult.to_dict's keys).
_RESULT_COLUMNS = (
    "example_id", "output", "score", "parsed", "prediction", "error", "finish_reason",
    "loss", "gold_prob",
)  # fmt: skip
_RESULT_DEFAULTS: dict[str, Any] = {
    "parsed": True, "prediction": None, "error": None, "finish_reason": "stop",
    "loss": None, "gold_prob": None,
}  # fmt: skip

_SPAN = ("candidate_id", "target", "start", "end", "span", "comment", "split", "example_id", "ts")
_SPAN_SQL = ", ".join(f'"{k}"' for k in _SPAN)  # "end" is an SQL keyword


def _finite(x: float) -> float | None:
    return None if x != x else x  # NaN -> NULL
