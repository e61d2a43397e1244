"""Several runs at once sharing one cache folder: no corruption, no lost writes."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from scripted import write_animal_task

TESTS = Path(__file__).resolve().parent
MODELS = """\
models:
  task: {backend: scripted, model: "scripted_cli:task"}
  optimizer: {backend: scripted, model: "scripted_cli:optimizer"}
optimizer: {name: ape, num_candidates: 6, eval_examples: 8, rounds: 1}
"""


def run(task: Path, cwd: Path, run_id: str, cache: Path, seed: int) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(TESTS), "PA_CALL_DELAY": "0.001"}
    return subprocess.Popen(
        [sys.executable, "-m", "promptascent", "optimize", str(task), "-q", "--run-id", run_id,
         "--cache-dir", str(cache), "--seed", str(seed)],
        cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def result(cwd: Path, run_id: str) -> dict:
    r = json.loads((cwd / "runs" / run_id / "result.json").read_text())
    return {"best": r["best_candidate"], "test": r["test"], "calls": r["usage"]["task"]["calls"]}


def test_parallel_runs_share_a_cache_safely(tmp_path: Path) -> None:
    task = write_animal_task(tmp_path / "t", extra=MODELS)
    shared = tmp_path / "shared-cache"
    procs = [run(task, tmp_path, f"p{i}", shared, seed=i % 2) for i in range(4)]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    # Each equals the same run made alone with a cache of its own.
    for seed in (0, 1):
        solo = run(task, tmp_path, f"solo{seed}", tmp_path / f"solo-cache{seed}", seed)
        assert solo.communicate(timeout=300) and solo.returncode == 0
        for i in range(4):
            if i % 2 == seed:
                assert result(tmp_path, f"p{i}") == result(tmp_path, f"solo{seed}")
    for db in ("responses.sqlite", "evaluations.sqlite"):
        with sqlite3.connect(shared / db) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    # Nothing was lost: a rerun on the shared cache makes no model call.
    again = run(task, tmp_path, "again", shared, seed=0)
    assert again.communicate(timeout=300) and again.returncode == 0
    r = json.loads((tmp_path / "runs" / "again" / "result.json").read_text())
    assert all(u["model_calls"] == 0 for u in r["usage"].values())
