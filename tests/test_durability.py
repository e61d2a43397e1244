"""Durability: what a run keeps is synced to disk as it is committed, and a damaged file
or a full disk is a one-line error naming the file and what to do, with nothing else
lost (the run resumes to the result of an uninterrupted run)."""

from __future__ import annotations

import errno
import json
import os
import sqlite3
import stat
import sys
from pathlib import Path
from typing import Any

import pytest
import scripted_cli
from scripted import task_responder, write_animal_task

from promptascent.cli.main import main
from promptascent.errors import StorageError
from promptascent.evaluation.cache import EvaluationCache
from promptascent.llm.cache import ResponseCache
from promptascent.llm.journal import Journal
from promptascent.llm.types import CompletionRequest
from promptascent.store.files import write_atomic
from promptascent.store.run_store import RunStore

SCRIPTED_MODELS = """\
models:
  task: {backend: scripted, model: "scripted_cli:task"}
  optimizer: {backend: scripted, model: "scripted_cli:optimizer"}
  judge: {backend: scripted, model: "scripted_cli:task"}
optimizer: {name: ape, num_candidates: 6, eval_examples: 8, rounds: 2, top_k: 2, final_k: 3}
"""
FULL, NORMAL = 2, 1  # PRAGMA synchronous


class Cli:
    """The CLI run in this process (so a test can fake a full disk), on a scripted task,
    with the runs and the cache in tmp_path and every paid call counted."""

    def __init__(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        self.root = tmp_path
        self.runs = tmp_path / "runs"
        self.task = write_animal_task(tmp_path / "task", extra=SCRIPTED_MODELS)
        self.log = tmp_path / "calls.log"
        self.monkeypatch = monkeypatch
        self.capsys = capsys
        monkeypatch.setenv("PA_CALL_LOG", str(self.log))
        monkeypatch.setenv("PA_CALL_DELAY", "0")

    def __call__(self, *args: str) -> tuple[int, str]:
        """Exit status and standard error of `promptascent ARGS`."""
        self.capsys.readouterr()
        argv = ["promptascent", *args, "--runs-dir", str(self.runs)]
        self.monkeypatch.setattr(sys, "argv", argv)
        try:
            main()
            code = 0
        except SystemExit as e:
            code = int(e.code or 0)
        return code, self.capsys.readouterr().err

    def optimize(self, run_id: str, *flags: str) -> tuple[int, str]:
        return self("optimize", str(self.task), "--run-id", run_id, "-q", *flags)

    def paid(self) -> int:
        return len(self.log.read_text().splitlines()) if self.log.exists() else 0

    def outcome(self, run_id: str) -> dict[str, Any]:
        r = json.loads((self.runs / run_id / "result.json").read_text())
        return {
            "best": r["best_candidate"],
            "selection": r["selection_scores"],
            "test": {k: r["test"][k] for k in ("seed", "best", "difference")},
            "calls": {role: u["calls"] for role, u in r["usage"].items()},
        }

    def interrupted_run(self, run_id: str, at_call: int) -> None:
        """A run stopped by Ctrl-C in its `at_call`-th task-model call."""
        calls: list[CompletionRequest] = []

        def task(request: CompletionRequest) -> str:
            calls.append(request)
            if len(calls) == at_call:
                raise KeyboardInterrupt
            return task_responder(request)

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(scripted_cli, "task", task)
            code, err = self.optimize(run_id, "--no-cache")
        assert code == 130, err


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(tmp_path, monkeypatch, capsys)


def one_line(err: str) -> str:
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert err.startswith("error: ")
    return err.strip()


def rows(path: Path, table: str) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])


def damage(path: Path, how: str) -> None:
    """Damages a closed SQLite file as a crash of the disk or a careless copy would."""
    if how == "garbage":
        path.write_bytes(os.urandom(4096) * 4)
    else:  # truncated: the second half of the pages gone
        size = path.stat().st_size
        with open(path, "r+b") as f:
            f.truncate(size // 2)


# ------------------------------------------------------------------ synced as committed


def test_the_run_store_and_the_journal_sync_every_commit_and_the_caches_do_not(
    tmp_path: Path,
) -> None:
    store = RunStore(tmp_path / "run")
    journal = Journal(tmp_path / "run" / "calls.sqlite")
    cache = ResponseCache(tmp_path / "cache" / "responses.sqlite")
    evaluations = EvaluationCache(tmp_path / "cache" / "evaluations.sqlite")
    try:
        assert store._conn.execute("PRAGMA synchronous").fetchone()[0] == FULL
        assert journal._conn().execute("PRAGMA synchronous").fetchone()[0] == FULL
        assert cache._conn().execute("PRAGMA synchronous").fetchone()[0] == NORMAL
        assert evaluations._conn().execute("PRAGMA synchronous").fetchone()[0] == NORMAL
        for conn in (store._conn, journal._conn(), cache._conn()):
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        store.close()
        journal.close()
        cache.close()


def test_write_atomic_syncs_the_folder_after_the_rename(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[tuple[bool, bool]] = []  # (a folder?, the file in place yet?)
    target = tmp_path / "out" / "result.json"
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append((stat.S_ISDIR(os.fstat(fd).st_mode), target.exists()))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    write_atomic(target, "{}\n")
    assert synced[0] == (False, False)  # the data, before the rename
    assert synced[-1] == (True, True)  # the folder entry, after it


def test_a_full_disk_while_writing_a_file_names_it_and_keeps_the_old_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "best_prompt.txt"
    target.write_text("old\n")

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(StorageError) as caught:
        write_atomic(target, "new\n")
    assert str(caught.value) == (
        f"{target}: the disk is full (No space left on device); free some space and try again"
    )
    assert target.read_text() == "old\n" and os.listdir(tmp_path) == ["best_prompt.txt"]


# ------------------------------------------------------------------ damaged files


@pytest.mark.parametrize("how", ["garbage", "truncated"])
def test_a_damaged_run_store_is_one_line_for_show_and_resume(cli: Cli, how: str) -> None:
    cli.interrupted_run("r", at_call=30)
    damage(cli.runs / "r" / "run.sqlite", how)
    for args in (("show", "r"), ("optimize", "--resume", "r", "-q")):
        code, err = cli(*args)
        line = one_line(err)
        assert code == 2
        assert f"{cli.runs / 'r' / 'run.sqlite'}: the run's record is damaged (" in line
        assert "cannot be shown or resumed: move its folder aside and start the run again" in line


def test_runs_lists_a_damaged_run_as_unreadable_beside_the_others(cli: Cli) -> None:
    assert cli.optimize("good", "--no-cache")[0] == 0
    cli.interrupted_run("bad", at_call=30)
    damage(cli.runs / "bad" / "run.sqlite", "garbage")
    cli.capsys.readouterr()
    cli.monkeypatch.setattr(sys, "argv", ["promptascent", "runs", "--runs-dir", str(cli.runs)])
    main()
    out = cli.capsys.readouterr().out
    assert "good" in out and "finished" in out
    assert "bad" in out and "unreadable" in out


@pytest.mark.parametrize("how", ["garbage", "truncated"])
def test_a_damaged_journal_stops_the_resume_before_it_clears_anything_and_deleting_it_recovers(
    cli: Cli, how: str
) -> None:
    assert cli.optimize("base", "--no-cache")[0] == 0
    expected = cli.outcome("base")
    cli.interrupted_run("r", at_call=30)
    run_dir = cli.runs / "r"
    kept = rows(run_dir / "run.sqlite", "evaluations"), rows(run_dir / "run.sqlite", "candidates")
    assert kept[0] > 0
    damage(run_dir / "calls.sqlite", how)
    code, err = cli("optimize", "--resume", "r", "-q")
    line = one_line(err)
    assert code == 2
    assert f"{run_dir / 'calls.sqlite'}: the run's call journal is damaged (" in line
    assert "delete this file and resume the run" in line
    after = rows(run_dir / "run.sqlite", "evaluations"), rows(run_dir / "run.sqlite", "candidates")
    assert after == kept  # nothing cleared
    (run_dir / "calls.sqlite").unlink()
    code, err = cli("optimize", "--resume", "r", "-q")
    assert code == 0, err
    assert cli.outcome("r") == expected


@pytest.mark.parametrize("how", ["garbage", "truncated"])
def test_a_damaged_cache_file_says_to_delete_it_or_run_without_the_cache(
    cli: Cli, how: str
) -> None:
    cache = cli.root / "cache"
    assert cli.optimize("first", "--cache-dir", str(cache))[0] == 0
    damage(cache / "responses.sqlite", how)
    code, err = cli.optimize("second", "--cache-dir", str(cache))
    line = one_line(err)
    assert code == 2
    assert f"{cache / 'responses.sqlite'}: this cache file is damaged (" in line
    assert "delete it (a cache holds only replies that can be asked for again)" in line
    assert "or run with --no-cache" in line


# ------------------------------------------------------------------ a full disk


def fill_disk_at_call(patch: pytest.MonkeyPatch, filename: str, call: int) -> None:
    """From the `call`-th task-model call on, the SQLite files named `filename` cannot
    grow: a write that needs a new page fails as on a full disk ("database or disk is
    full"). Done with PRAGMA max_page_count on the run's own connections."""
    connections: list[sqlite3.Connection] = []
    real_connect = sqlite3.connect

    def connect(database: Any, *args: Any, **kwargs: Any) -> sqlite3.Connection:
        conn = real_connect(database, *args, **kwargs)
        if Path(database).name == filename:
            connections.append(conn)
        return conn

    calls: list[CompletionRequest] = []

    def task(request: CompletionRequest) -> str:
        calls.append(request)
        if len(calls) == call:
            for conn in connections:
                (pages,) = conn.execute("PRAGMA page_count").fetchone()
                conn.execute(f"PRAGMA max_page_count = {pages}")
        return task_responder(request)

    patch.setattr(sqlite3, "connect", connect)
    patch.setattr(scripted_cli, "task", task)


@pytest.mark.parametrize(("filename", "call"), [("calls.sqlite", 20), ("run.sqlite", 5)])
def test_a_full_disk_mid_run_is_one_line_and_the_resume_repeats_no_journaled_call(
    cli: Cli, filename: str, call: int
) -> None:
    assert cli.optimize("base", "--no-cache")[0] == 0
    expected, paid = cli.outcome("base"), cli.paid()
    run_dir = cli.runs / "r"

    with pytest.MonkeyPatch.context() as disk:
        fill_disk_at_call(disk, filename, call)
        code, err = cli.optimize("r", "--no-cache")
    line = one_line(err)
    assert code == 2
    assert line == (
        f"error: {run_dir / filename}: the disk is full (database or disk is full); free some "
        f"space, then resume the run: promptascent optimize --resume r --runs-dir {cli.runs}"
    )
    assert not (run_dir / "result.json").exists()
    journaled = rows(run_dir / "calls.sqlite", "responses")
    assert call <= journaled <= paid
    if filename == "calls.sqlite":
        assert journaled < paid  # it stopped the search

    before = cli.paid()
    code, err = cli("optimize", "--resume", "r", "-q")
    assert code == 0, err
    assert cli.outcome("r") == expected
    assert cli.paid() - before == paid - journaled  # every journaled reply was kept
    assert cli.paid() - before == paid - journaled  # every journaled reply was kept
