"""Shared set-up of the web app's tests: a task on the scripted models (allowed in
tests only: PROMPTASCENT_TEST_BACKENDS=1, set by conftest.py and inherited by the
server and its worker processes) and a finished run of it."""

from __future__ import annotations

from pathlib import Path

from scripted import write_animal_task

from promptascent.config.task import load_task
from promptascent.runner import Runner, RunSettings, plan

TESTS = Path(__file__).resolve().parent
SCRIPTED_TASK = """\
models:
  task: {backend: scripted, model: "scripted_cli:task"}
  optimizer: {backend: scripted, model: "scripted_cli:optimizer"}
  judge: {backend: scripted, model: "scripted_cli:task"}
optimizer: {name: ape, num_candidates: 3, eval_examples: 6, rounds: 1, top_k: 2, final_k: 2}
"""


def scripted_task(folder: Path) -> Path:
    return write_animal_task(folder, extra=SCRIPTED_TASK)


def finished_run(tmp_path: Path, run_id: str = "first") -> Path:
    """A finished optimization run in `tmp_path/runs`; returns its folder."""
    task = scripted_task(tmp_path / "task")
    settings = RunSettings(runs_dir=tmp_path / "runs", cache_dir=tmp_path / "cache")
    return Runner(plan(load_task(task)), settings, run_id=run_id).run().run_dir
