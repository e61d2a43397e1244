"""`compare`: several optimizers and seeds, same budget and splits, one table."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from scripted import CLI_MODELS, optimizer_model, task_model, write_animal_task

import promptascent
from promptascent import RunSettings
from promptascent.errors import ConfigError

TESTS = Path(__file__).resolve().parent


def scripted_settings(tmp_path: Path) -> RunSettings:
    return RunSettings(
        runs_dir=tmp_path / "runs",
        cache_dir=tmp_path / "cache",
        backends={"task": task_model(), "optimizer": optimizer_model()},
    )


def test_compare_runs_every_optimizer_and_seed_under_one_budget(tmp_path: Path) -> None:
    task = write_animal_task(tmp_path / "t")
    settings = scripted_settings(tmp_path)
    result = promptascent.compare(
        task,
        ["ape"],
        budget={"task_calls": 120},
        seeds=[0, 1],
        options={"ape": {"num_candidates": 3, "eval_examples": 6}},
        settings=settings,
    )
    rows = result.to_dict()["rows"]
    assert [(r["optimizer"], r["seed"]) for r in rows] == [("ape", 0), ("ape", 1)]
    assert all(r["task_calls"] <= 120 for r in rows)
    assert all(r["test_best"]["n"] == 18 for r in rows)
    # greedy task calls send no seed: seed 1 replays seed 0's replies of the seed
    # prompt on the 18 test examples (and whatever else both seeds asked) from the cache
    hits = [row.result.to_dict()["usage"]["task"]["cache_hits"] for row in result.rows]
    assert hits[1] >= hits[0] + 18
    assert result.folder is not None
    saved = json.loads((result.folder / "compare.json").read_text())
    assert saved == json.loads(json.dumps(result.to_dict()))


def test_compare_options_must_name_an_optimizer(tmp_path: Path) -> None:
    from promptascent.compare import split_options

    assert split_options({"ape.rounds": 0}, ["ape"]) == {"ape": {"rounds": 0}}
    with pytest.raises(ConfigError, match=r"OPTIMIZER\.OPTION"):
        split_options({"rounds": 0}, ["ape"])


def test_compare_cli_prints_the_table(tmp_path: Path) -> None:
    task = write_animal_task(tmp_path / "t", extra=CLI_MODELS)
    env = {**os.environ, "PYTHONPATH": str(TESTS), "COLUMNS": "200", "PA_CALL_DELAY": "0"}
    proc = subprocess.run(
        [sys.executable, "-m", "promptascent", "compare", str(task), "--optimizers", "ape",
         "--budget", "task_calls=150", "--option", "ape.num_candidates=3", "-q"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "best - seed" in proc.stdout and "written to" in proc.stdout
    assert "scoring: generate" in proc.stdout
    assert "│ ape" in proc.stdout


def test_compare_scored_by_likelihood_reports_the_scoring_of_each_row(tmp_path: Path) -> None:
    from test_likelihood import _animal_loglik

    from promptascent.config.task import load_task
    from promptascent.llm.scripted import ScriptedLLM

    task = write_animal_task(tmp_path / "t", extra="evaluation: {scoring: likelihood}\n")
    scorer = ScriptedLLM(lambda r: "unused", loglik_fn=_animal_loglik)
    settings = RunSettings(
        runs_dir=tmp_path / "runs",
        cache_dir=tmp_path / "cache",
        backends={"task": scorer, "optimizer": optimizer_model(), "judge": scorer},
    )
    result = promptascent.compare(
        load_task(task),
        ["ape", "pmpo"],
        budget={"task_calls": 120},
        options={"ape": {"num_candidates": 3, "eval_examples": 6}, "pmpo": {"rounds": 1}},
        settings=settings,
    )
    rows = result.to_dict()["rows"]
    assert [r["optimizer"] for r in rows] == ["ape", "pmpo"]
    assert all(r["scoring"].startswith("likelihood") for r in rows)
    assert all(r["test_best"]["unparsed"] == 0 and r["test_best"]["mean_loss"] for r in rows)


def test_compare_refuses_an_optimizer_that_needs_likelihood_before_any_run(
    tmp_path: Path,
) -> None:
    from promptascent.config.task import load_task

    task = write_animal_task(tmp_path / "t")
    settings = RunSettings(
        runs_dir=tmp_path / "runs",
        cache_dir=tmp_path / "cache",
        backends={"task": task_model(), "optimizer": optimizer_model()},
    )
    with pytest.raises(ConfigError, match="pmpo measures prompts by their likelihood"):
        promptascent.compare(load_task(task), ["ape", "pmpo"], settings=settings)
    assert not (tmp_path / "runs").exists()


def test_compare_gives_every_optimizer_of_a_seed_the_same_splits_and_one_folder(
    tmp_path: Path,
) -> None:
    """Without a dev split, train is cut in two by the seed: within a seed every
    optimizer selects on the same dev examples and reports on the same test examples
    (README); another seed cuts train its own way. The compare is written to
    runs/compare-<time>-<task>/."""
    import re

    from promptascent.store.run_store import RunStore

    task = write_animal_task(tmp_path / "t")
    text = task.read_text().replace(", dev: dev.jsonl", "")
    task.write_text(text)
    settings = scripted_settings(tmp_path)
    result = promptascent.compare(
        task,
        ["ape", "random"],
        budget={"task_calls": 120},
        seeds=[0, 1],
        options={"ape": {"num_candidates": 3, "eval_examples": 4}},
        settings=settings,
    )
    assert result.folder is not None
    assert result.folder.parent == tmp_path / "runs"
    assert re.fullmatch(r"compare-\d{8}-\d{6}-animals", result.folder.name)

    def example_ids(row: dict, split: str) -> set[str]:
        store = RunStore.open_existing(tmp_path / "runs" / row["run_id"])
        try:
            return {r["example_id"] for r in store.evaluations(row["seed_candidate"], split)}
        finally:
            store.close()

    rows = result.to_dict()["rows"]
    dev = {(r["optimizer"], r["seed"]): example_ids(r, "dev") for r in rows}
    test = {(r["optimizer"], r["seed"]): example_ids(r, "test") for r in rows}
    assert all(dev.values()) and len(set(map(frozenset, test.values()))) == 1
    assert dev[("ape", 0)] == dev[("random", 0)] and dev[("ape", 1)] == dev[("random", 1)]
    assert dev[("ape", 0)] != dev[("ape", 1)]
