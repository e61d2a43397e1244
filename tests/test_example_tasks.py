"""Every task file in examples/tasks plans: its data folder loads, its seed prompt renders
on the data, its metric fits every example, and its test split is there to report on."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import REPO

from promptascent.config.task import load_task
from promptascent.runner import plan

TASK_FILES = sorted((REPO / "examples/tasks").glob("*.yaml"))


@pytest.mark.parametrize("path", TASK_FILES, ids=lambda p: p.stem)
def test_an_example_task_file_plans_on_its_data(path: Path) -> None:
    p = plan(load_task(path))
    assert len(p.data.train) >= 3
    if not path.stem.startswith("spo_"):  # an SPO settings file carries no test split
        assert p.data.test is not None and len(p.data.test) >= 10


def test_every_example_data_folder_has_a_task_file_and_names_its_source() -> None:
    readme = (REPO / "examples/data/README.md").read_text()
    task_text = "\n".join(p.read_text() for p in TASK_FILES)
    for folder in sorted(p for p in (REPO / "examples/data").iterdir() if p.is_dir()):
        assert f"../data/{folder.name}" in task_text, f"no task file reads {folder.name}"
        assert folder.name in readme, f"examples/data/README.md does not name {folder.name}"
