"""One process per run: a run folder is locked while a process works on it, a second
process is refused naming the first, and a killed holder leaves no lock behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from scripted import write_animal_task
from scripted_prefer import write_inputs_task

import promptascent
from promptascent import RunSettings
from promptascent.config.task import load_task
from promptascent.errors import RunInUse
from promptascent.runner import Runner, plan, resume_run
from promptascent.store.run_lock import LOCKFILE, RunLock
from promptascent.store.run_store import FILENAME, RunStore

TESTS = Path(__file__).resolve().parent
SCRIPTED_MODELS = """\
models:
  task: {backend: scripted, model: "scripted_cli:task"}
  optimizer: {backend: scripted, model: "scripted_cli:optimizer"}
  judge: {backend: scripted, model: "scripted_cli:task"}
optimizer: {name: ape, num_candidates: 3, eval_examples: 6, rounds: 1, top_k: 2, final_k: 2}
"""
PREFER_MODELS = """\
models:
  task: {backend: scripted, model: "scripted_prefer:task"}
  optimizer: {backend: scripted, model: "scripted_prefer:optimizer"}
  judge: {backend: scripted, model: "scripted_prefer:task"}
"""
HOLD = (
    "import sys, time\n"
    "from pathlib import Path\n"
    "from promptascent.store.run_lock import RunLock\n"
    "RunLock(Path(sys.argv[1])).acquire()\n"
    "print('locked', flush=True)\n"
    "time.sleep(120)\n"
)


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[tuple[Path, subprocess.Popen[str]]]:
    """Another process holding the lock of the run folder runs/r."""
    run_dir = tmp_path / "runs" / "r"
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(run_dir)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    yield run_dir, proc
    proc.kill()
    proc.wait()


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
    }
    return subprocess.run(
        [sys.executable, "-m", "promptascent", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def interrupted_run(tmp_path: Path) -> Path:
    """A scripted run recorded in runs/r, left as a killed run leaves it (resumable)."""
    task = load_task(write_animal_task(tmp_path / "task", extra=SCRIPTED_MODELS))
    runner = Runner(plan(task), RunSettings(runs_dir=tmp_path / "runs", cache_dir=None), run_id="r")
    runner.run()
    store = RunStore.open_existing(runner.run_dir)
    try:
        store.put("status", "running")
    finally:
        store.close()
    return runner.run_dir


def recorded(run_dir: Path) -> tuple[int, int]:
    store = RunStore.open_existing(run_dir)
    try:
        evaluations = store._conn.execute("SELECT COUNT(*) FROM evaluations").fetchone()[0]
        return len(store.candidates()), evaluations
    finally:
        store.close()


def test_a_locked_run_folder_is_refused_naming_the_run_and_the_holding_process(
    holder: tuple[Path, subprocess.Popen[str]],
) -> None:
    run_dir, proc = holder
    with pytest.raises(RunInUse) as caught:
        RunLock(run_dir).acquire()
    message = str(caught.value)
    assert f"run r ({run_dir}) is in use by process {proc.pid}" in message
    assert "\n" not in message
    assert (run_dir / LOCKFILE).read_text().strip() == str(proc.pid)


def test_the_lock_of_a_killed_process_never_blocks(
    holder: tuple[Path, subprocess.Popen[str]],
) -> None:
    run_dir, proc = holder
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with RunLock(run_dir):
        assert (run_dir / LOCKFILE).read_text().strip() == str(os.getpid())
    with RunLock(run_dir):  # released at the end of the block
        pass


def test_a_second_lock_in_the_same_process_is_refused_too(tmp_path: Path) -> None:
    with (
        RunLock(tmp_path / "r"),
        pytest.raises(RunInUse, match=f"in use by process {os.getpid()}"),
    ):
        RunLock(tmp_path / "r").acquire()


def test_a_resume_while_another_process_works_on_the_run_clears_nothing(
    tmp_path: Path,
) -> None:
    run_dir = interrupted_run(tmp_path)
    before = recorded(run_dir)
    assert before[0] > 1 and before[1] > 0
    with RunLock(run_dir):  # the other process
        with pytest.raises(RunInUse, match=f"is in use by process {os.getpid()}"):
            resume_run(run_dir)
        assert recorded(run_dir) == before
    assert resume_run(run_dir).status == "finished"  # once it has ended


def test_a_new_run_whose_folder_is_locked_is_refused_and_writes_nothing(tmp_path: Path) -> None:
    task = load_task(write_animal_task(tmp_path / "task", extra=SCRIPTED_MODELS))
    runs = tmp_path / "runs"
    with RunLock(runs / "r"):
        runner = Runner(plan(task), RunSettings(runs_dir=runs, cache_dir=None), run_id="r")
        with pytest.raises(RunInUse):
            runner.run()
    assert not (runs / "r" / FILENAME).exists()


def test_refine_and_compare_take_the_lock_of_each_run_they_make(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    task_file = write_animal_task(tmp_path / "task", extra=SCRIPTED_MODELS)
    runs = tmp_path / "runs"
    settings = RunSettings(runs_dir=runs, cache_dir=None)
    first = Runner(plan(load_task(task_file)), settings, run_id="first").run()
    monkeypatch.setattr("promptascent.runner.new_run_id", lambda task, optimizer: "made")
    with RunLock(runs / "made"):
        with pytest.raises(RunInUse, match="run made"):
            promptascent.refine(first.run_dir, "shorter answers", settings=settings)
        with pytest.raises(RunInUse, match="run made"):
            promptascent.compare(task_file, ["ape"], settings=settings)
    assert not (runs / "made" / FILENAME).exists()


def test_the_cli_refuses_a_second_optimize_or_prefer_on_a_live_run_with_one_line(
    tmp_path: Path, holder: tuple[Path, subprocess.Popen[str]]
) -> None:
    run_dir, proc = holder
    optimize_task = write_animal_task(tmp_path / "task", extra=SCRIPTED_MODELS)
    prefer_task = write_inputs_task(tmp_path / "prefer", models=PREFER_MODELS)
    attempts = [
        ["optimize", str(optimize_task), "--run-id", "r", "--no-cache", "-q"],
        ["prefer", str(prefer_task), "--run-id", "r", "--no-cache"],
    ]
    for args in attempts:
        done = cli(*args, cwd=tmp_path)
        assert done.returncode == 2, done.stderr
        assert done.stderr.startswith("error: run r ") and len(done.stderr.splitlines()) == 1
        assert f"is in use by process {proc.pid}" in done.stderr
    assert not (run_dir / FILENAME).exists()


def test_prefer_resume_on_a_live_preference_run_is_refused(tmp_path: Path) -> None:
    task = write_inputs_task(tmp_path / "prefer", models=PREFER_MODELS)
    started = subprocess.run(
        [sys.executable, "-m", "promptascent", "prefer", str(task), "--run-id", "p",
         "--rounds", "3", "--no-cache"],
        cwd=tmp_path, input="a\n", capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": str(TESTS)},
    )  # fmt: skip
    assert started.returncode == 0, started.stderr  # quit after one verdict: resumable
    run_dir = tmp_path / "runs" / "p"
    with RunLock(run_dir):
        done = cli("prefer", "--resume", "p", cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert f"error: run p ({run_dir.resolve()}) is in use by process {os.getpid()}" in done.stderr
    store = RunStore.open_existing(run_dir)
    try:
        assert len(store.preferences()) == 1 and store.get("status") == "quit"
    finally:
        store.close()
