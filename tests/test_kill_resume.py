"""Kill the CLI with SIGKILL at random points of a run, resume it, and check that the
result equals an uninterrupted run's and that no finished call was paid again."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from scripted import write_animal_task

from promptascent.store.run_store import RunStore

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
KILL_POINTS = int(os.environ.get("PA_KILL_POINTS", "24"))
IN_FLIGHT = 3  # at most: 2 task-model calls (concurrency 2) + 1 optimizer call

SCRIPTED_MODELS = """\
models:
  task: {backend: scripted, model: "scripted_cli:task"}
  optimizer: {backend: scripted, model: "scripted_cli:optimizer"}
  judge: {backend: scripted, model: "scripted_cli:task"}
optimizer: {name: ape, num_candidates: 6, eval_examples: 8, rounds: 2, top_k: 2, final_k: 3}
"""


def start(args: list[str], cwd: Path, log: Path) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
        "PA_CALL_LOG": str(log),
        "COLUMNS": "200",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "promptascent", "optimize", *args, "-q"],
        cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def finish(proc: subprocess.Popen[str]) -> str:
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    return out


def calls(log: Path) -> int:
    return len(log.read_text().splitlines()) if log.exists() else 0


def outcome(run_dir: Path) -> dict:
    r = json.loads((run_dir / "result.json").read_text())
    return {
        "best": r["best_candidate"],
        "selection": r["selection_scores"],
        "test": {k: r["test"][k] for k in ("seed", "best", "difference")},
        "calls": {role: u["calls"] for role, u in r["usage"].items()},
        "candidates": r["candidates"],
    }


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, int, float]:
    root = tmp_path_factory.mktemp("baseline")
    task = write_animal_task(root / "task", extra=SCRIPTED_MODELS)
    log = root / "calls.log"
    began = time.monotonic()
    finish(start([str(task), "--run-id", "base", "--cache-dir", str(root / "cache")], root, log))
    duration = time.monotonic() - began
    return task, outcome(root / "runs" / "base"), calls(log), duration


def finished(run_dir: Path) -> bool:
    """The run recorded its final status (the last thing a run writes)."""
    if not (run_dir / "run.sqlite").exists():
        return False
    store = RunStore.open_existing(run_dir)
    try:
        return store.get("status") in ("finished", "budget", "stopped")
    finally:
        store.close()


def has_config(run_dir: Path) -> bool:
    if not (run_dir / "run.sqlite").exists():
        return False
    store = RunStore.open_existing(run_dir)
    try:
        return store.get("config") is not None
    finally:
        store.close()


def kill_and_resume(
    root: Path, task: Path, delay: float, *, no_cache: bool
) -> tuple[dict, int, int]:
    """Starts the run, SIGKILLs it after `delay` s, then resumes (or restarts, if it
    died before recording anything) until it finishes. Returns outcome, paid calls, kills."""
    root.mkdir(parents=True)
    log = root / "calls.log"
    cache = ["--no-cache"] if no_cache else ["--cache-dir", str(root / "cache")]
    proc = start([str(task), "--run-id", "r", *cache], root, log)
    time.sleep(delay)
    kills = 0
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
        kills = 1
    proc.communicate(timeout=60)
    run_dir = root / "runs" / "r"
    if not finished(run_dir):
        # A run killed before it recorded its configuration is simply started again.
        args = ["--resume", "r"] if has_config(run_dir) else [str(task), "--run-id", "r", *cache]
        finish(start(args, root, log))
    return outcome(run_dir), calls(log), kills


def test_sigkill_at_random_points_then_resume(
    tmp_path: Path, baseline: tuple[Path, dict, int, float]
) -> None:
    task, expected, paid, duration = baseline
    rng = random.Random(1234)
    killed = 0
    for i in range(KILL_POINTS):
        delay = rng.uniform(0.0, duration * 1.1)
        got, spent, kills = kill_and_resume(tmp_path / f"k{i}", task, delay, no_cache=i % 2 == 1)
        killed += kills
        assert got == expected, f"kill point {i} at {delay:.2f}s"
        assert paid <= spent <= paid + IN_FLIGHT * kills, f"kill point {i} at {delay:.2f}s"
    print(f"{KILL_POINTS} kill points tried, {killed} landed mid-run")
    assert killed >= KILL_POINTS // 2


def test_sigkill_and_resume_with_k_fold_selection_and_a_length_penalty(tmp_path: Path) -> None:
    """The k-fold wrapper's per-fold budget shares and the penalised ranking come out the
    same after a resume (both derive from the replayed usage and the stored task)."""
    extra = SCRIPTED_MODELS + "length_penalty: 0.05\n"
    task = write_animal_task(tmp_path / "task", extra=extra)
    task.write_text(
        task.read_text().replace(
            "evaluation: {concurrency: 2}", "evaluation: {concurrency: 2, folds: 2}"
        )
    )
    base = tmp_path / "base"
    base.mkdir()
    log = base / "calls.log"
    began = time.monotonic()
    finish(start([str(task), "--run-id", "base", "--cache-dir", str(base / "cache")], base, log))
    duration = time.monotonic() - began
    expected, paid = outcome(base / "runs" / "base"), calls(log)
    rng = random.Random(99)
    for i in range(6):
        delay = rng.uniform(0.0, duration * 1.1)
        got, spent, kills = kill_and_resume(tmp_path / f"k{i}", task, delay, no_cache=i % 2 == 1)
        assert got == expected, f"kill point {i} at {delay:.2f}s"
        assert paid <= spent <= paid + IN_FLIGHT * kills, f"kill point {i} at {delay:.2f}s"


def test_resuming_a_finished_run_is_an_error(
    tmp_path: Path, baseline: tuple[Path, dict, int, float]
) -> None:
    task = baseline[0]
    finish(
        start(
            [str(task), "--run-id", "done", "--cache-dir", str(tmp_path / "c")],
            tmp_path,
            tmp_path / "l",
        )
    )
    proc = start(["--resume", "done"], tmp_path, tmp_path / "l")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2 and "already ended" in err


def test_ctrl_c_prints_the_resume_command_and_the_resume_finishes_the_run(
    tmp_path: Path, baseline: tuple[Path, dict, int, float]
) -> None:
    """SIGINT (Ctrl-C) once calls are under way: exit 130 with the command that
    continues the run; that command then ends where an uninterrupted run ends."""
    task, expected, _, _ = baseline
    log = tmp_path / "calls.log"
    proc = start([str(task), "--run-id", "r", "--cache-dir", str(tmp_path / "c")], tmp_path, log)
    deadline = time.monotonic() + 60
    while calls(log) < 3 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert proc.poll() is None, "the run ended before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted: run r keeps every finished call" in err
    assert "promptascent optimize --resume r\n" in err and "Traceback" not in err
    finish(start(["--resume", "r"], tmp_path, log))
    assert outcome(tmp_path / "runs" / "r") == expected


EMBEDDED_TASK = """\
name: tiny-navigate
data:
  folder: {folder}
  limits: {{train: 8, dev: 6, test: 8}}
task_params: {{max_tokens: 12}}
optimizer: {{name: ape, num_candidates: 2, eval_examples: 4, rounds: 0, top_k: 1, final_k: 2}}
evaluation: {{train_gap_examples: 4}}
seed: 0
"""


@pytest.mark.embedded
def test_sigkill_and_resume_on_the_embedded_model(tmp_path: Path) -> None:
    task = tmp_path / "tiny.yaml"
    task.write_text(EMBEDDED_TASK.format(folder=REPO / "examples" / "data" / "navigate"))
    base = tmp_path / "base"
    base.mkdir()
    began = time.monotonic()
    finish(start([str(task), "--run-id", "base", "--no-cache"], base, base / "calls.log"))
    duration = time.monotonic() - began
    expected = outcome(base / "runs" / "base")
    for i, fraction in enumerate((0.4, 0.75)):
        got, _, _ = kill_and_resume(tmp_path / f"k{i}", task, duration * fraction, no_cache=True)
        assert got == expected, f"kill at {fraction:.0%} of the run"
