"""A priced run SIGKILLed mid-run and resumed pays what an uninterrupted run pays, and
says so: its `spent_dollars` and `model_calls` include what the killed process paid,
and `spent_dollars` equals the sum over the run's journal of paid attempts.

(tests/test_kill_resume.py checks that the result is the same; this file checks the
money. It keeps its own small harness: the CLI in a subprocess with scripted models.)"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from scripted import write_animal_task

from promptascent.store.run_store import RunStore

TESTS = Path(__file__).resolve().parent
KILLS = int(os.environ.get("PA_PRICED_KILL_POINTS", "6"))

PRICED_MODELS = """\
models:
  task: {backend: scripted, model: "scripted_cli:task", prices: {input: 2.5, output: 10}}
  optimizer: {backend: scripted, model: "scripted_cli:optimizer", prices: {input: 1.25, output: 5}}
  judge: {backend: scripted, model: "scripted_cli:task"}
optimizer: {name: ape, num_candidates: 6, eval_examples: 8, rounds: 2, top_k: 2, final_k: 3}
"""


def start(args: list[str], cwd: Path) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
        "COLUMNS": "200",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "promptascent", "optimize", *args, "-q"],
        cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def finish(proc: subprocess.Popen[str]) -> None:
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err


def journal_dollars(run_dir: Path) -> float:
    """The price of every paid attempt in the run's journal."""
    with contextlib.closing(sqlite3.connect(run_dir / "calls.sqlite")) as db:
        (total,) = db.execute("SELECT COALESCE(SUM(dollars), 0) FROM attempts").fetchone()
    return float(total)


def paid_attempts(run_dir: Path) -> int:
    if not (run_dir / "calls.sqlite").exists():
        return 0
    try:
        with contextlib.closing(sqlite3.connect(run_dir / "calls.sqlite", timeout=5)) as db:
            return int(db.execute("SELECT COUNT(*) FROM attempts").fetchone()[0])
    except sqlite3.OperationalError:  # not made yet
        return 0


def kill_when_paid(proc: subprocess.Popen[str], run_dir: Path, attempts: int) -> int:
    """SIGKILLs `proc` once its run's journal holds `attempts` paid attempts (unless it
    ends first); returns how many it held then."""
    while proc.poll() is None and paid_attempts(run_dir) < attempts:
        time.sleep(0.005)
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    return paid_attempts(run_dir)


def money(run_dir: Path) -> dict[str, object]:
    usage = json.loads((run_dir / "result.json").read_text())["usage"]
    return {
        "spent_dollars": sum(u["spent_dollars"] for u in usage.values()),
        "model_calls": {role: u["model_calls"] for role, u in usage.items()},
        "cache_hits": {role: u["cache_hits"] for role, u in usage.items()},
        "calls": {role: u["calls"] for role, u in usage.items()},
    }


def status(run_dir: Path) -> str | None:
    if not (run_dir / "run.sqlite").exists():
        return None
    store = RunStore.open_existing(run_dir)
    try:
        return store.get("status") if store.get("config") is not None else None
    finally:
        store.close()


def test_a_priced_run_killed_and_resumed_pays_and_reports_what_an_uninterrupted_one_does(
    tmp_path: Path,
) -> None:
    task = write_animal_task(tmp_path / "task", extra=PRICED_MODELS)
    base = tmp_path / "base"
    base.mkdir()
    finish(start([str(task), "--run-id", "base", "--cache-dir", str(base / "cache")], base))
    expected = money(base / "runs" / "base")
    assert expected["spent_dollars"] == pytest.approx(journal_dollars(base / "runs" / "base"))
    assert expected["spent_dollars"] > 0
    total = paid_attempts(base / "runs" / "base")
    rng = random.Random(7)
    for i in range(KILLS):
        root = tmp_path / f"k{i}"
        root.mkdir()
        cache = ["--no-cache"] if i % 2 else ["--cache-dir", str(root / "cache")]
        run_dir = root / "runs" / "r"
        proc = start([str(task), "--run-id", "r", *cache], root)
        paid = kill_when_paid(proc, run_dir, rng.randint(1, total * 9 // 10))
        # landed after the first paid call and before the end
        assert paid and status(run_dir) == "running", f"kill point {i}: the run ended first"
        if i % 3 == 0:  # kill the resume too: three processes pay for this run
            again = start(["--resume", "r"], root)
            kill_when_paid(again, run_dir, rng.randint(paid + 1, (paid + total) // 2 + 1))
        if status(run_dir) == "running":
            finish(start(["--resume", "r"], root))
        got = money(run_dir)
        where = f"kill point {i} ({paid} attempts paid before the kill)"
        assert got["spent_dollars"] == pytest.approx(journal_dollars(run_dir), rel=1e-9), where
        assert got["spent_dollars"] == pytest.approx(expected["spent_dollars"], rel=1e-9), where
        assert got == {**expected, "spent_dollars": got["spent_dollars"]}, where
