"""The final selection fits the budget: at 100 task calls on a 63-example dev split
every optimizer searches before it selects and can return a better prompt; a large
budget keeps the whole-dev final; the result says when the budget only allowed
screening. Whole searches on the scripted model (the sizing rules themselves:
test_search_final.py)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from scripted import (
    CLI_MODELS,
    PET_KEY,
    pet_proposals,
    pet_proposer,
    pet_responder,
    task_model,
    write_animal_task,
    write_pet_task,
)

from promptascent import RunSettings, optimize
from promptascent.cli.summary import print_result
from promptascent.llm.scripted import ScriptedLLM
from promptascent.llm.types import CompletionRequest
from promptascent.store.run_store import RunStore

TESTS = Path(__file__).resolve().parent
LABELLED = [
    "ape",
    "opro",
    "protegi",
    "evoprompt-ga",
    "evoprompt-de",
    "capo",
    "exemplars",
    "random",
    "gepa",
    "mipro",
    "promptagent",
    "promptwizard",
]
# the splits a final selection scores on
FINAL_SPLITS = {"dev", "dev-final"}


def screened_on_dev(split: str) -> bool:
    """A split of the search on dev examples: a screening subset, race blocks, bandit
    minibatches (not the final selection; not train, nor the runner's reports)."""
    return split.startswith("dev-") and split not in FINAL_SPLITS


def pet_settings(tmp_path: Path) -> RunSettings:
    return RunSettings(
        runs_dir=tmp_path / "runs",
        cache_dir=tmp_path / "cache",
        backends={
            "task": ScriptedLLM(pet_responder, model_id="pet-task"),
            "optimizer": pet_proposer(),
            "judge": task_model(),
        },
    )


def candidates(run_dir: Path) -> list[dict[str, Any]]:
    store = RunStore.open_existing(run_dir)
    try:
        return store.candidates()
    finally:
        store.close()


@pytest.mark.parametrize("name", LABELLED)
def test_at_100_task_calls_every_optimizer_searches_before_it_selects(
    tmp_path: Path, name: str
) -> None:
    task = write_pet_task(tmp_path / "task")
    result = optimize(
        task, optimizer=name, budget={"task_calls": 100}, settings=pet_settings(tmp_path)
    )
    assert result.search_usage["task"]["calls"] <= 100
    rows = candidates(result.run_dir)
    searched = [
        c for c in rows if c["id"] != result.seed.id and any(map(screened_on_dev, c["scores"]))
    ]
    assert searched, "no candidate besides the seed was scored before the final selection"
    # the final selection ran, with the seed in it, and a better prompt won
    assert not result.screening_only and result.selection_split in FINAL_SPLITS
    split = result.selection_split
    seed_score, best_score = result.seed.score(split), result.best.score(split)
    assert seed_score is not None and best_score is not None
    assert result.best.id != result.seed.id and best_score > seed_score
    assert result.test_best is not None and result.test_seed is not None
    assert result.test_best.mean > result.test_seed.mean


@pytest.mark.parametrize(
    "name",
    ["ape", "opro", "evoprompt-ga", "capo", "gepa", "mipro", "promptagent", "promptwizard"],
)
def test_the_key_instruction_wins_when_the_search_scored_it(tmp_path: Path, name: str) -> None:
    task = write_pet_task(tmp_path / "task")
    result = optimize(
        task, optimizer=name, budget={"task_calls": 100}, settings=pet_settings(tmp_path)
    )
    assert PET_KEY in result.best.prompt.instruction
    assert result.best.score(result.selection_split) == 1.0


@pytest.mark.parametrize(
    ("name", "finalists"),
    [
        ("ape", 3),
        ("opro", 3),
        ("evoprompt-de", 3),
        ("exemplars", 4),
        ("random", 3),
        ("promptagent", 3),
    ],
)
def test_a_large_budget_keeps_the_final_on_the_whole_dev_split(
    tmp_path: Path, name: str, finalists: int
) -> None:
    task = write_pet_task(tmp_path / "task", dev=50)
    result = optimize(
        task, optimizer=name, budget={"task_calls": 600}, settings=pet_settings(tmp_path)
    )
    assert result.selection_split == "dev" and not result.screening_only
    assert result.search_usage["task"]["calls"] <= 600
    # every finalist of the full plan (final_k, with the seed; exemplars: final_k and
    # the seed) on all 50
    scored = [c for c in candidates(result.run_dir) if "dev" in c["scores"]]
    assert len(scored) == finalists and all(c["scores"]["dev"]["n"] == 50 for c in scored)


def test_capo_races_only_the_blocks_the_budget_pays_for_beside_the_final(
    tmp_path: Path,
) -> None:
    """600 task calls, 50 dev examples in blocks of 30 and 20: a generation races 14
    prompts on the first block (420 calls); the second block would leave nothing for
    the final selection, so the race ends before it and CAPO selects on dev."""
    task = write_pet_task(tmp_path / "task", dev=50)
    result = optimize(
        task, optimizer="capo", budget={"task_calls": 600}, settings=pet_settings(tmp_path)
    )
    assert result.search_usage["task"]["calls"] <= 600
    assert (result.stopped_by or "").startswith("budget (capo: stopped before generation")
    assert result.selection_split == "dev" and not result.screening_only
    rows = candidates(result.run_dir)
    raced = [c for c in rows if "dev-block-0" in c["scores"]]
    assert len(raced) >= 14 and all(c["scores"]["dev-block-0"]["n"] == 30 for c in raced)
    assert all(c["scores"]["dev"]["n"] == 50 for c in rows if "dev" in c["scores"])


def test_a_smaller_final_is_on_part_of_dev_and_says_so(tmp_path: Path) -> None:
    task = write_pet_task(tmp_path / "task")
    result = optimize(
        task, optimizer="ape", budget={"task_calls": 100}, settings=pet_settings(tmp_path)
    )
    # seed, its format variant and one induced instruction screened on 20 (60 calls);
    # the 40 left pay for the seed and the best on 20 more dev examples each
    assert result.selection_split == "dev-final" and not result.screening_only
    finalists = [c for c in candidates(result.run_dir) if "dev-final" in c["scores"]]
    assert len(finalists) == 2 and {c["scores"]["dev-final"]["n"] for c in finalists} == {40}
    data = json.loads((result.run_dir / "result.json").read_text())
    assert data["selection_split"] == "dev-final" and data["selection_examples"] == 40
    assert data["screening_only"] is False
    out = summary(data)
    assert "the budget allowed a smaller final selection: on 40 dev examples" in out


def test_when_the_budget_only_allows_screening_the_result_says_so(tmp_path: Path) -> None:
    """A token limit is not predicted: it ends the search before the final selection,
    and the winner is the best on the screening subset."""
    task = write_pet_task(tmp_path / "task")
    task.write_text(task.read_text().replace("concurrency: 2", "concurrency: 1"))
    result = optimize(
        task,
        optimizer="ape",
        budget={"task_tokens": 450},
        settings=pet_settings(tmp_path),
    )
    assert result.stopped_by == "task_tokens"
    assert result.screening_only and result.selection_split == "dev-subset"
    data = json.loads((result.run_dir / "result.json").read_text())
    assert data["screening_only"] is True and data["selection_examples"] == 20
    lines = [x for x in summary(data).splitlines() if "only allowed screening" in x]
    assert lines == [
        "the budget only allowed screening: the winner was chosen on its screening scores "
        "(20 dev examples), with no final selection on the dev split"
    ]


def test_a_whole_dev_final_prints_no_budget_line(tmp_path: Path) -> None:
    task = write_pet_task(tmp_path / "task", dev=50)
    result = optimize(
        task, optimizer="ape", budget={"task_calls": 600}, settings=pet_settings(tmp_path)
    )
    data = json.loads((result.run_dir / "result.json").read_text())
    assert data["screening_only"] is False and data["selection_examples"] == 50
    out = summary(data)
    assert "only allowed screening" not in out and "smaller final selection" not in out


def test_the_cli_prints_the_screening_line(tmp_path: Path) -> None:
    # eval_examples 6 of 12 dev: the seed's screening (6) leaves 2 calls, which add
    # no dev example for it (the only finalist: nothing else could be screened)
    task = write_animal_task(tmp_path / "t", extra=CLI_MODELS)
    env = {**os.environ, "PYTHONPATH": str(TESTS), "COLUMNS": "200", "PA_CALL_DELAY": "0"}
    proc = subprocess.run(
        [sys.executable, "-m", "promptascent", "optimize", str(task), "--optimizer", "ape",
         "--option", "eval_examples=6", "--budget", "task_calls=8", "-q"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert (
        "the budget only allowed screening: the winner was chosen on its screening scores "
        "(6 dev examples), with no final selection on the dev split"
    ) in proc.stdout
    run_dir = Path(proc.stdout.split("run written to", 1)[1].split()[0])
    assert json.loads((run_dir / "result.json").read_text())["screening_only"] is True


def summary(result: dict[str, Any]) -> str:
    buffer = io.StringIO()
    print_result(Console(file=buffer, width=200), result)
    return buffer.getvalue()


def test_k_fold_selection_keeps_its_rules_with_smaller_fold_finals(tmp_path: Path) -> None:
    """2 folds of the 93 pooled examples at 400 task calls: the cv final keeps 279,
    each fold searches with 60, and its own final selection is on part of its dev."""
    task = write_pet_task(tmp_path / "task")
    task.write_text(task.read_text().replace("concurrency: 2}", "concurrency: 2, folds: 2}"))
    result = optimize(
        task, optimizer="ape", budget={"task_calls": 400}, settings=pet_settings(tmp_path)
    )
    assert result.search_usage["task"]["calls"] <= 400
    assert result.selection_split == "cv" and not result.screening_only
    assert result.best.evaluations["cv"].n == 93
    for fold in (1, 2):
        if f"fold{fold}/dev-final" in result.best.evaluations:
            # the fold winner's held-out score is the one it was selected on
            held = result.best.score(f"fold{fold}/dev-final")
            assert f"winner of fold {fold} (held-out fold: {held:.3f})" in result.best.note
    assert any(split.endswith("/dev-final") for split in result.best.evaluations)


def test_protegi_tries_again_when_its_first_round_found_nothing(tmp_path: Path) -> None:
    """The first two gradient replies are unusable, so round 1 adds no candidate; at
    100 task calls the next round still gets a smaller bandit, and finds the key."""
    proposals = pet_proposals()
    gradients = iter(range(10**6))

    def respond(request: CompletionRequest) -> str:
        gradient = "could have gotten these examples wrong" in request.messages[-1].content
        if gradient and next(gradients) < 2:
            return ""
        return proposals(request)

    settings = pet_settings(tmp_path)
    settings.backends["optimizer"] = ScriptedLLM(respond, model_id="slow-starter")
    task = write_pet_task(tmp_path / "task")
    result = optimize(task, optimizer="protegi", budget={"task_calls": 100}, settings=settings)
    assert result.search_usage["task"]["calls"] <= 100
    steps = {c["step"] for c in candidates(result.run_dir) if c["operation"] == "edit"}
    assert steps == {2}
    assert PET_KEY in result.best.prompt.instruction and not result.screening_only


@pytest.mark.parametrize("name", LABELLED)
def test_the_test_split_is_scored_only_after_the_search_and_only_for_the_report(
    tmp_path: Path, name: str
) -> None:
    """Every example's input is marked with its split; the models see a test input
    only once the search is over (no optimizer call after it), and only the seed and
    the best prompt are scored on test, once per example."""
    import threading

    task = write_pet_task(tmp_path / "task")
    for split in ("train", "dev", "test"):
        path = task.parent / f"{split}.jsonl"
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
        for row in rows:  # pet_responder reads the animal on the input's last line
            row["input"] = f"#{split} {row['id']}\n{row['input']}"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    seen: list[tuple[str, str]] = []
    lock = threading.Lock()

    def watched(role: str, respond: Any) -> Any:
        def reply(request: CompletionRequest) -> str:
            with lock:
                seen.append((role, "\n".join(m.content for m in request.messages)))
            return str(respond(request))

        return reply

    settings = RunSettings(
        runs_dir=tmp_path / "runs",
        cache_dir=None,
        backends={
            "task": ScriptedLLM(watched("task", pet_responder), model_id="pet-task"),
            "optimizer": ScriptedLLM(watched("optimizer", pet_proposals()), model_id="pet-p"),
            "judge": task_model(),
        },
    )
    result = optimize(
        task, optimizer=name, budget={"task_calls": 100}, settings=settings, progress=False
    )
    on_test = ["#test " in text for _, text in seen]
    first = on_test.index(True)
    assert all(on_test[first:]), "a search call came after the test evaluation began"
    assert sum(on_test) <= 2 * 24
    tested = {c["id"] for c in candidates(result.run_dir) if "test" in c["scores"]}
    assert tested == {result.seed.id, result.best.id}
