"""`promptascent prefer` through a real terminal: a detached tmux session, keys sent
with send-keys, the screen read with capture-pane."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from scripted_prefer import SCRIPTED_MODELS, write_inputs_task

from promptascent.preference.duel import Record
from promptascent.store.run_store import RunStore

TESTS = Path(__file__).resolve().parent
TIMEOUT = 60.0

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")


def tmux(*args: str) -> str:
    return subprocess.run(
        ["tmux", *args], check=True, capture_output=True, text=True, timeout=30
    ).stdout


def screen(name: str) -> str:
    return tmux("capture-pane", "-p", "-J", "-S", "-200", "-t", name)


def wait_for(name: str, text: str, *, count: int = 1) -> str:
    """Polls the pane until `text` is on it `count` times; fails with the screen."""
    deadline = time.monotonic() + TIMEOUT
    shown = ""
    while time.monotonic() < deadline:
        shown = screen(name)
        if shown.count(text) >= count:
            return shown
        time.sleep(0.1)
    raise AssertionError(f"{text!r} (x{count}) did not appear within {TIMEOUT}s:\n{shown}")


@pytest.fixture
def session(tmp_path: Path) -> Iterator[str]:
    name = f"pa-prefer-{os.getpid()}-{time.monotonic_ns()}"
    yield name
    subprocess.run(["tmux", "kill-session", "-t", name], capture_output=True, timeout=30)


def test_prefer_in_a_real_terminal(tmp_path: Path, session: str) -> None:
    task = write_inputs_task(tmp_path / "task", models=SCRIPTED_MODELS)
    env = {
        "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
        "PA_CALL_LOG": str(tmp_path / "calls.log"),
        # A tmux server started earlier has its own environment, not this process's.
        "PROMPTASCENT_TEST_BACKENDS": "1",
    }
    command = " ".join(
        [
            "cd", shlex.quote(str(tmp_path)), "&&",
            "env", *(f"{k}={shlex.quote(v)}" for k, v in env.items()),
            shlex.quote(sys.executable), "-m", "promptascent", "prefer", shlex.quote(str(task)),
            "--rounds", "6", "--run-id", "tty", "--no-cache",
            "; echo EXIT=$?; sleep 120",
        ]
    )  # fmt: skip
    tmux("new-session", "-d", "-s", session, "-x", "200", "-y", "50", command)

    prompt = "Which output is better?"
    wait_for(session, "duel 1/6")
    wait_for(session, prompt)
    tmux("send-keys", "-t", session, "a", "Enter")
    wait_for(session, "duel 2/6")
    tmux("send-keys", "-t", session, "z", "Enter")  # not an answer: asked again
    wait_for(session, "unknown answer 'z'")
    tmux("send-keys", "-t", session, "b", "Enter")
    shown = wait_for(session, "duel 3/6")
    assert "A" in shown and "B" in shown and "input" in shown
    tmux("send-keys", "-t", session, "t", "Enter")
    wait_for(session, "duel 4/6")
    tmux("send-keys", "-t", session, "q", "Enter")
    shown = wait_for(session, "EXIT=")
    assert "EXIT=0" in shown, shown
    assert "ranking after 3 judged duels" in shown and "stopped by you" in shown
    assert "promptascent prefer --resume tty" in shown

    store = RunStore.open_existing(tmp_path / "runs" / "tty")
    try:
        records = [Record.from_dict(r) for r in store.preferences()]
        status = store.get("status")
    finally:
        store.close()
    assert [r.choice for r in records] == ["A", "B", "tie"] and status == "quit"
    assert all(r.output_a and r.output_b for r in records)
