"""Kill the CLI with SIGKILL at many points of a run (and some resumes a second time),
resume it, and check that the result equals an uninterrupted run's and that no finished
call was paid again; two resumes of one run cannot both work on it; a copy of the run
folder taken mid-run, as a crash leaves the files, resumes to the same result."""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from scripted import write_animal_task

from promptascent.report import run_report
from promptascent.store.run_lock import current_status
from promptascent.store.run_store import RunStore

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
KILL_POINTS = int(os.environ.get("PA_KILL_POINTS", "10"))
MIN_LANDED = 8  # kills after the run's first paid call and before its end
IN_FLIGHT = 3  # at most: 2 task-model calls (concurrency 2) + 1 optimizer call

SCRIPTED_MODELS = """\
models:
  task: {backend: scripted, model: "scripted_cli:task"}
  optimizer: {backend: scripted, model: "scripted_cli:optimizer"}
  judge: {backend: scripted, model: "scripted_cli:task"}
optimizer: {name: ape, num_candidates: 6, eval_examples: 8, rounds: 2, top_k: 2, final_k: 3}
"""


def start(
    args: list[str],
    cwd: Path,
    log: Path,
    *,
    call_delay: float | None = None,
    gate: Path | None = None,
) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
        "PA_CALL_LOG": str(log),
        "COLUMNS": "200",
    }
    if call_delay is not None:
        env["PA_CALL_DELAY"] = str(call_delay)
    if gate is not None:
        env["PA_GATE"] = str(gate)
    return subprocess.Popen(
        [sys.executable, "-m", "promptascent", "optimize", *args, "-q"],
        cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def finish(proc: subprocess.Popen[str]) -> str:
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    return out


def calls(log: Path) -> int:
    """The calls paid so far: the scripted models log each call as it starts."""
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


@dataclass(frozen=True)
class Kill:
    """One SIGKILL: the calls paid when the killed process started and when it died,
    and whether the run had ended by then. It landed if the process had paid a call of
    its own and the run had not ended: a kill during interpreter start-up, or after the
    run's last write, tests nothing."""

    calls_before: int
    calls_at_kill: int
    run_ended: bool
    of_a_resume: bool

    @property
    def landed(self) -> bool:
        return self.calls_at_kill > self.calls_before and not self.run_ended


def wait_for_calls(proc: subprocess.Popen[str], log: Path, at: int) -> None:
    """Returns once `at` calls are paid in all (or `proc` has ended)."""
    deadline = time.monotonic() + 120
    while calls(log) < at and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)


def kill_at(
    proc: subprocess.Popen[str],
    log: Path,
    run_dir: Path,
    at: int,
    extra: float = 0.0,
    *,
    of_a_resume: bool = False,
) -> Kill | None:
    """SIGKILLs `proc` once `at` calls are paid in all and `extra` seconds more have
    passed (so that it dies inside a call, a journal write or a store write alike);
    None if it ended first."""
    calls_before = calls(log)
    wait_for_calls(proc, log, at)
    time.sleep(extra)
    if proc.poll() is not None:
        proc.communicate()
        return None
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    return Kill(calls_before, calls(log), finished(run_dir), of_a_resume)


def continue_run(root: Path, task: Path, cache: list[str], log: Path) -> subprocess.Popen[str]:
    """Resumes run r, or starts it again if it died before recording its configuration."""
    run_dir = root / "runs" / "r"
    args = ["--resume", "r"] if has_config(run_dir) else [str(task), "--run-id", "r", *cache]
    return start(args, root, log)


def kill_and_resume(
    root: Path, task: Path, ats: list[int], rng: random.Random, *, no_cache: bool
) -> tuple[dict, int, list[Kill]]:
    """Starts run r and SIGKILLs it once `ats[0]` calls are paid; each further entry kills
    the resume that follows once it has paid that many calls of its own; then resumes
    until the run ends. Returns the outcome, the calls paid in all and the kills."""
    root.mkdir(parents=True)
    log = root / "calls.log"
    run_dir = root / "runs" / "r"
    cache = ["--no-cache"] if no_cache else ["--cache-dir", str(root / "cache")]
    proc = start([str(task), "--run-id", "r", *cache], root, log)
    kills: list[Kill] = []
    for n, at in enumerate(ats):
        if n:
            proc = continue_run(root, task, cache, log)
        extra = rng.uniform(0.0, 0.02)
        kill = kill_at(proc, log, run_dir, calls(log) + at, extra, of_a_resume=n > 0)
        if kill is None:
            break
        kills.append(kill)
    if not finished(run_dir):
        finish(continue_run(root, task, cache, log))
    return outcome(run_dir), calls(log), kills


def check_kills_resume_to_the_same_result(tmp_path: Path, task: Path, instruction: str) -> None:
    """An uninterrupted run of `task` finds `instruction`; four runs SIGKILLed at seeded
    random points (every other one without the cache) and resumed end with the same
    outcome, paying each call once (plus the calls in flight at a kill); at least three
    kills land mid-run. The optimizers' own kill tests."""
    base = tmp_path / "base"
    base.mkdir()
    log = base / "calls.log"
    finish(start([str(task), "--run-id", "base", "--cache-dir", str(base / "cache")], base, log))
    expected, paid = outcome(base / "runs" / "base"), calls(log)
    best = json.loads((base / "runs" / "base" / "result.json").read_text())["best_prompt"]
    assert best["instruction"] == instruction
    rng = random.Random(14)
    kills: list[Kill] = []
    for i in range(4):
        ats = [rng.randint(1, paid - 3)]
        got, spent, landed = kill_and_resume(
            tmp_path / f"k{i}", task, ats, rng, no_cache=i % 2 == 1
        )
        kills += landed
        where = f"kill point {i}: {describe(landed)}"
        assert got == expected, where
        assert paid <= spent <= paid + IN_FLIGHT * len(landed), where
    assert sum(k.landed for k in kills) >= 3, describe(kills)


def describe(kills: list[Kill]) -> str:
    return ", ".join(
        f"{'resume ' if k.of_a_resume else ''}{k.calls_before}->{k.calls_at_kill}"
        f"{'' if k.landed else ' (not landed)'}"
        for k in kills
    )


def test_sigkill_at_many_points_and_of_resumes_then_resume(
    tmp_path: Path, baseline: tuple[Path, dict, int, float]
) -> None:
    """Each run is killed once a random number of calls is paid (a few ms later: inside
    whatever it is doing), every third resume is killed again once it has paid calls of
    its own, and the run is resumed to its end."""
    task, expected, paid, _ = baseline
    rng = random.Random(1234)
    every: list[Kill] = []
    for i in range(KILL_POINTS):
        ats = [rng.randint(1, paid - 3)]
        if i % 3 == 1:  # kill the resume too, once it has paid a call or a few
            ats.append(rng.randint(1, max(1, (paid - ats[0]) // 2)))
        got, spent, kills = kill_and_resume(tmp_path / f"k{i}", task, ats, rng, no_cache=i % 2 == 1)
        every += kills
        where = f"kill point {i}: {describe(kills)}"
        assert got == expected, where
        assert paid <= spent <= paid + IN_FLIGHT * len(kills), where
    first = [k for k in every if not k.of_a_resume]
    second = [k for k in every if k.of_a_resume]
    print(f"{len(every)} kills ({len(second)} of resumes): {describe(every)}")
    assert sum(k.landed for k in first) >= min(MIN_LANDED, KILL_POINTS), describe(first)
    assert second and all(k.landed for k in second), describe(second)


def test_sigkill_at_random_times_including_start_up_then_resume(
    tmp_path: Path, baseline: tuple[Path, dict, int, float]
) -> None:
    """Kills at random times, some during interpreter start-up or after the last call:
    a run killed before it recorded its configuration is simply started again."""
    task, expected, paid, duration = baseline
    rng = random.Random(77)
    for i in range(3):
        root = tmp_path / f"t{i}"
        root.mkdir()
        log = root / "calls.log"
        proc = start([str(task), "--run-id", "r", "--no-cache"], root, log)
        time.sleep(rng.uniform(0.0, duration * 1.1))
        kills = int(proc.poll() is None)
        if kills:
            proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)
        if not finished(root / "runs" / "r"):
            finish(continue_run(root, task, ["--no-cache"], log))
        assert outcome(root / "runs" / "r") == expected, f"kill {i}"
        assert paid <= calls(log) <= paid + IN_FLIGHT * kills, f"kill {i}"


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
    finish(start([str(task), "--run-id", "base", "--cache-dir", str(base / "cache")], base, log))
    expected, paid = outcome(base / "runs" / "base"), calls(log)
    rng = random.Random(99)
    every: list[Kill] = []
    for i in range(5):
        ats = [rng.randint(1, paid - 3)]
        got, spent, kills = kill_and_resume(tmp_path / f"k{i}", task, ats, rng, no_cache=i % 2 == 1)
        every += kills
        where = f"kill point {i}: {describe(kills)}"
        assert got == expected, where
        assert paid <= spent <= paid + IN_FLIGHT * len(kills), where
    assert sum(k.landed for k in every) >= 4, describe(every)


def test_two_resumes_of_one_run_cannot_both_work_and_a_killed_one_leaves_no_lock(
    tmp_path: Path, baseline: tuple[Path, dict, int, float]
) -> None:
    task, expected, paid, _ = baseline
    log = tmp_path / "calls.log"
    run_dir = tmp_path / "runs" / "r"
    first = start([str(task), "--run-id", "r", "--no-cache"], tmp_path, log)
    assert kill_at(first, log, run_dir, 10) is not None
    # A slow resume (half a second a call, so that its ~45 calls outlast the second
    # process's start on a loaded machine) that has paid a call of its own: it holds
    # the run.
    working = start(["--resume", "r"], tmp_path, log, call_delay=0.5)
    wait_for_calls(working, log, calls(log) + 1)
    assert working.poll() is None, "the resume ended before the second one could start"
    second = start(["--resume", "r"], tmp_path, log)
    _, err = second.communicate(timeout=60)
    assert second.returncode == 2, err
    assert err == (
        f"error: run r ({run_dir.resolve()}) is in use by process {working.pid}; wait for it "
        "to end, or stop it (a stopped process leaves no lock behind)\n"
    )
    paid_so_far = calls(log)
    wait_for_calls(working, log, paid_so_far + 1)
    assert working.poll() is None and calls(log) > paid_so_far  # it kept working
    assert current_status(run_dir, "running") == "running"  # its process holds the run
    working.send_signal(signal.SIGKILL)
    working.communicate(timeout=60)
    # Recorded as running, shown as interrupted: no process holds the run any more.
    store = RunStore.open_existing(run_dir)
    try:
        assert store.get("status") == "running"
    finally:
        store.close()
    shown = subprocess.run(
        [sys.executable, "-m", "promptascent", "show", "r", "--runs-dir", str(tmp_path / "runs")],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith(
        "status: interrupted (no result recorded)\n"
        "continue it with: promptascent optimize --resume r\n"
    )
    listed = subprocess.run(
        [sys.executable, "-m", "promptascent", "runs", "--runs-dir", str(tmp_path / "runs")],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
        env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    assert listed.returncode == 0 and "│ r " in listed.stdout and " interrupted " in listed.stdout
    report = run_report(run_dir)
    assert report.facts.status == "interrupted" and report.partial
    finish(start(["--resume", "r"], tmp_path, log))  # the dead process's lock is gone
    assert outcome(run_dir) == expected
    assert paid <= calls(log) <= paid + 2 * IN_FLIGHT


def snapshot(run_dir: Path, copy_dir: Path) -> list[str]:
    """Copies the run folder's files byte for byte (each database with its -wal and -shm,
    as they are on disk); returns the names copied."""
    copy_dir.mkdir(parents=True)
    names = sorted(p.name for p in run_dir.iterdir())
    for name in names:
        shutil.copyfile(run_dir / name, copy_dir / name)
    return names


def test_a_copy_of_the_run_folder_taken_mid_run_resumes_to_the_same_result(
    tmp_path: Path, baseline: tuple[Path, dict, int, float]
) -> None:
    """A power-loss simulation: the run is frozen (SIGSTOP) at a point in its work, its
    folder copied at the file level as a crash at that instant leaves it, the original
    let go on (or killed); the copy, resumed, ends as an uninterrupted run ends and pays
    only for the calls its journal does not hold."""
    task, expected, paid, _ = baseline
    for i, at in enumerate((3, paid // 2, paid - 4)):
        root = tmp_path / f"p{i}"
        root.mkdir()
        log = root / "calls.log"
        proc = start([str(task), "--run-id", "r", "--no-cache"], root, log)
        wait_for_calls(proc, log, at)
        proc.send_signal(signal.SIGSTOP)
        try:
            assert proc.poll() is None, f"the run ended before {at} calls"
            copied = snapshot(root / "runs" / "r", root / "copy" / "r")
        finally:
            proc.send_signal(signal.SIGCONT)
        assert "calls.sqlite-wal" in copied and "run.sqlite-wal" in copied, copied
        if i % 2:
            proc.send_signal(signal.SIGKILL)
            proc.communicate(timeout=60)
        else:
            finish(proc)
            assert outcome(root / "runs" / "r") == expected
        copy = root / "copy" / "r"
        with sqlite3.connect(copy / "calls.sqlite") as conn:  # recovers the WAL, as a resume does
            journaled = conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
        assert journaled >= at - IN_FLIGHT
        before = calls(log)
        finish(start(["--resume", str(copy)], root, log))
        assert outcome(copy) == expected, f"snapshot after {at} calls"
        assert calls(log) - before == paid - journaled, f"snapshot after {at} calls"


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
    gate = tmp_path / "gate"  # optimizer calls wait while it exists (scripted_cli)
    gate.touch()
    try:
        proc = start(
            [str(task), "--run-id", "r", "--cache-dir", str(tmp_path / "c")],
            tmp_path, log, gate=gate,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while calls(log) < 3 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert proc.poll() is None, "the run ended before it could be interrupted"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        gate.unlink()
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


def journaled_calls(run_dir: Path) -> int:
    """Replies in the run's journal so far (0 before the journal exists)."""
    path = run_dir / "calls.sqlite"
    if not path.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0])
    except sqlite3.OperationalError:  # created but its table not yet
        return 0


@pytest.mark.embedded
def test_sigkill_and_resume_on_the_embedded_model(tmp_path: Path) -> None:
    task = tmp_path / "tiny.yaml"
    task.write_text(EMBEDDED_TASK.format(folder=REPO / "examples" / "data" / "navigate"))
    base = tmp_path / "base"
    base.mkdir()
    finish(start([str(task), "--run-id", "base", "--no-cache"], base, base / "calls.log"))
    expected = outcome(base / "runs" / "base")
    total = journaled_calls(base / "runs" / "base")
    for i, fraction in enumerate((0.4, 0.75)):
        root = tmp_path / f"k{i}"
        root.mkdir()
        proc = start([str(task), "--run-id", "r", "--no-cache"], root, root / "calls.log")
        # Kill by progress, not by time (a loaded machine runs at any speed): once the
        # journal holds `fraction` of the calls the whole run makes.
        while journaled_calls(root / "runs" / "r") < total * fraction:
            assert proc.poll() is None, f"the run ended before {fraction:.0%} of its calls"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)
        run_dir = root / "runs" / "r"
        # The embedded model logs no calls: the journal says whether the kill landed.
        journaled = journaled_calls(run_dir)
        assert 0 < journaled < total and not finished(run_dir), f"kill at {fraction:.0%}"
        finish(start(["--resume", "r"], root, root / "calls.log"))
        assert outcome(run_dir) == expected, f"kill at {fraction:.0%} of the run"


def test_a_run_id_in_use_is_an_error_that_says_how_to_continue(tmp_path: Path) -> None:
    from scripted import optimizer_model, task_model

    from promptascent.config.task import load_task
    from promptascent.errors import ConfigError
    from promptascent.planning import plan
    from promptascent.runner import Runner, RunSettings

    task = load_task(write_animal_task(tmp_path / "task"))
    runs = tmp_path / "runs"
    settings = RunSettings(
        runs_dir=runs,
        cache_dir=None,
        backends={"task": task_model(), "optimizer": optimizer_model(), "judge": task_model()},
    )
    Runner(plan(task), settings, run_id="r").run()
    with pytest.raises(ConfigError) as raised:
        Runner(plan(task), settings, run_id="r")
    message = str(raised.value)
    assert message.startswith(f"run r already exists in {runs}: choose another run id")
    assert f"`promptascent optimize --resume r --runs-dir {runs.resolve()}`" in message
    assert f"promptascent.resume({str((runs / 'r').resolve())!r})" in message


def test_the_python_resume_shows_progress_on_stderr_only(
    tmp_path: Path, baseline: tuple[Path, dict, int, float], capsys: pytest.CaptureFixture[str]
) -> None:
    """README: `resume` shows the live progress (phases, calls spent, the best so far)
    on stderr, like `optimize`, and prints nothing to stdout; it ends as the
    uninterrupted run."""
    import promptascent

    task, expected, _, _ = baseline
    log = tmp_path / "calls.log"
    run_dir = tmp_path / "runs" / "r"
    proc = start([str(task), "--run-id", "r", "--cache-dir", str(tmp_path / "c")], tmp_path, log)
    kill = kill_at(proc, log, run_dir, 10)
    assert kill is not None and kill.landed and has_config(run_dir), kill
    capsys.readouterr()
    result = promptascent.resume(run_dir)
    captured = capsys.readouterr()
    assert captured.out == ""
    # the task sets no budget: the calls spent, without a limit beside them
    assert re.search(r"^test .* calls \d+ +best 1\.000", captured.err, re.M), captured.err[-500:]
    assert result.status in ("finished", "budget") and outcome(run_dir) == expected
