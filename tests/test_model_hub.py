"""The model hub (llm/hub.py): every role's client of a run built once, on one meter,
one set of backends, the shared response cache and the run's journal; and no entry
point wires models of its own."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from scripted import task_model

from promptascent.llm.budget import Budget
from promptascent.llm.client import CachePolicy
from promptascent.llm.hub import EVALUATIONS, JOURNAL, RESPONSES, ModelHub
from promptascent.llm.spec import ModelSpec, ModelsSpec, PricesSpec
from promptascent.llm.types import CompletionRequest, Message

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "promptascent"
TASK = ModelSpec.parse("scripted:scripted_cli:task")
MODELS = ModelsSpec(
    task=TASK,
    optimizer=ModelSpec.parse("scripted:scripted_cli:optimizer"),
    judge=TASK.model_copy(update={"prices": PricesSpec(input=1.0, output=2.0)}),
)
ASK = CompletionRequest((Message("user", "Animal: cat"),), max_tokens=8)


def test_the_clients_of_a_hub_share_its_meter_cache_journal_and_backends(tmp_path: Path) -> None:
    with ModelHub(MODELS, cache_dir=tmp_path / "cache", journal_dir=tmp_path / "run") as hub:
        hub.open()
        guard = hub.guard(Budget(task_calls=5))
        task, judge = hub.client("task", guard), hub.client("judge", guard)
        assert task.meter is judge.meter is hub.meter and task.guard is guard
        assert task.cache is hub.cache and task.journal is hub.journal is not None
        # equal backend specs share one backend; prices stay each role's own
        assert task.backend is judge.backend is hub.backend("judge")
        assert hub.backend("optimizer") is not task.backend
        assert (task.prices.input, judge.prices.input, judge.prices.output) == (0.0, 1.0, 2.0)
        first = task.complete(ASK).text
        assert hub.meter.to_dict()["task"]["model_calls"] == 1
        assert judge.complete(ASK).text == first  # the journal answers: paid once
        assert hub.meter.to_dict()["judge"]["model_calls"] == 0
    assert (tmp_path / "cache" / RESPONSES).is_file() and (tmp_path / "run" / JOURNAL).is_file()
    assert hub.cache is None and hub.journal is None  # closed


def test_a_hub_opens_no_file_until_asked_and_an_override_replaces_a_backend(
    tmp_path: Path,
) -> None:
    override = task_model()
    hub = ModelHub(MODELS, backends={"task": override}, cache_dir=tmp_path / "cache")
    try:
        assert hub.backend("task") is override and hub.backend("judge") is not override
        client = hub.client("task", hub.guard(Budget()))
        assert client.cache is None and client.journal is None
        assert not (tmp_path / "cache").exists()
    finally:
        hub.close()


@pytest.mark.parametrize(
    ("cache_dir", "policy", "used"),
    [
        ("cache", CachePolicy(), True),
        ("cache", CachePolicy(read=False), False),  # refreshing: measured afresh
        (None, CachePolicy(), False),
    ],
)
def test_the_evaluation_cache_is_used_only_with_a_folder_that_is_read_and_written(
    tmp_path: Path, cache_dir: str | None, policy: CachePolicy, used: bool
) -> None:
    folder = tmp_path / cache_dir if cache_dir else None
    hub = ModelHub(MODELS, cache_dir=folder, cache_policy=policy)
    assert hub.evaluation_cache_path == (tmp_path / "cache" / EVALUATIONS if used else None)


def test_no_entry_point_wires_models_of_its_own() -> None:
    """Backends, meters, caches and journals are made in the model layer only (the hub
    and what it uses): runner, eval, describe and preference go through the hub."""
    wiring = {"BackendFactory", "UsageMeter", "ResponseCache", "Journal"}
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.parent.name == "llm":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in wiring
            ):
                found.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {node.func.id}()")
    assert not found, found
