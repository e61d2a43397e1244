"""k-fold selection (`evaluation.folds`) on scripted models: each fold proposes from the
other folds and selects on its own, within its share of the budget; the fold winners
compete on every pooled example; the test split only reports."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from scripted import KEY, optimizer_model, task_model, write_animal_task
from test_final_selection import LABELLED

from promptascent import RunSettings, optimize
from promptascent.config.task import load_task
from promptascent.data.example import Example
from promptascent.errors import ConfigError
from promptascent.optimizers.kfold import make_folds
from promptascent.runner import plan
from promptascent.store.run_store import RunStore

APE = {"num_candidates": 3, "eval_examples": 6, "rounds": 1, "top_k": 2, "final_k": 2}


def settings(tmp_path: Path) -> RunSettings:
    return RunSettings(
        runs_dir=tmp_path / "runs",
        cache_dir=tmp_path / "cache",
        backends={"task": task_model(), "optimizer": optimizer_model(), "judge": task_model()},
    )


def folded_task(tmp_path: Path, folds: int) -> Path:
    task = write_animal_task(tmp_path / "task")
    text = task.read_text().replace(
        "evaluation: {concurrency: 2}", f"evaluation: {{concurrency: 2, folds: {folds}}}"
    )
    task.write_text(text)
    return task


def stored_candidates(run_dir: Path) -> list[dict]:
    store = RunStore.open_existing(run_dir)
    try:
        return store.candidates()
    finally:
        store.close()


def test_make_folds_deals_every_example_once() -> None:
    examples = [Example(id=f"e{i}", input=str(i)) for i in range(10)]
    folds = make_folds(examples, 3, random.Random(0))
    assert [len(f) for f in folds] == [4, 3, 3]
    assert sorted(ex.id for f in folds for ex in f) == sorted(ex.id for ex in examples)
    assert folds == make_folds(examples, 3, random.Random(0))


def test_each_fold_searches_and_the_winner_is_chosen_on_every_pooled_example(
    tmp_path: Path,
) -> None:
    result = optimize(
        folded_task(tmp_path, 3), optimizer="ape", options=APE, settings=settings(tmp_path)
    )
    assert result.best.prompt.instruction == KEY
    assert result.selection_split == "cv"
    cv = result.best.evaluations["cv"]
    assert cv.n == 24 and cv.mean == 1.0  # 12 train + 12 dev, pooled
    assert result.test_best is not None and result.test_best.mean == 1.0
    assert result.test_seed is not None and result.test_seed.mean == 0.0
    assert result.train_dev_gap is None  # every train example also selected
    candidates = stored_candidates(result.run_dir)
    splits = {s for c in candidates for s in c["scores"]}
    assert {"fold1/dev", "fold2/dev", "fold3/dev", "cv"} <= splits
    # each fold's dev is 8 examples, its screening subset 6
    assert all(
        c["scores"][f"fold{i}/dev"]["n"] == 8
        for c in candidates
        for i in (1, 2, 3)
        if f"fold{i}/dev" in c["scores"]
    )
    assert "winner of fold" in result.best.note


def test_every_fold_gets_its_share_of_the_budget(tmp_path: Path) -> None:
    result = optimize(
        folded_task(tmp_path, 2),
        optimizer="ape",
        options=APE,
        budget={"task_calls": 150, "optimizer_calls": 20},
        settings=settings(tmp_path),
    )
    assert result.search_usage["task"]["calls"] <= 150
    assert result.search_usage["optimizer"]["calls"] <= 20
    splits = {s for c in stored_candidates(result.run_dir) for s in c["scores"]}
    assert "fold1/dev" in splits and "fold2/dev" in splits  # fold 1 left room for fold 2
    assert result.best.evaluations["cv"].n == 24


def test_a_budget_that_cannot_pay_the_final_selection_starts_no_fold(tmp_path: Path) -> None:
    # the final selection alone needs (2 winners + seed) x 24 pooled examples = 72
    result = optimize(
        folded_task(tmp_path, 2),
        optimizer="ape",
        options=APE,
        budget={"task_calls": 60},
        settings=settings(tmp_path),
    )
    assert result.status == "budget" and "fold 1 not started" in (result.stopped_by or "")
    assert result.best.id == result.seed.id


def test_k_fold_runs_are_deterministic(tmp_path: Path) -> None:
    runs = [
        optimize(
            folded_task(tmp_path / str(i), 3),
            optimizer="ape",
            options=APE,
            settings=settings(tmp_path / str(i)),
        )
        for i in range(2)
    ]
    a, b = ([(c["id"], c["scores"]) for c in stored_candidates(r.run_dir)] for r in runs)
    assert a == b


@pytest.mark.parametrize("folds", [1, 13])
def test_impossible_fold_counts_are_config_errors(tmp_path: Path, folds: int) -> None:
    task = load_task(folded_task(tmp_path, folds))
    with pytest.raises(ConfigError, match=r"evaluation\.folds: .* train and dev hold 24"):
        plan(task)


def test_dry_run_estimate_counts_every_fold_and_the_final(tmp_path: Path) -> None:
    one = plan(load_task(write_animal_task(tmp_path / "one")), optimizer_options=APE)
    three = plan(load_task(folded_task(tmp_path / "three", 3)), optimizer_options=APE)
    single = one.optimizer.estimate(16, 8, 10)["task"]
    assert three.optimizer.estimate(12, 12, 10)["task"] == 3 * single + 4 * 24


def test_k_fold_is_refused_for_an_optimizer_that_selects_without_dev(tmp_path: Path) -> None:
    task = load_task(folded_task(tmp_path, 2))
    with pytest.raises(ConfigError, match=r"evaluation\.folds: spo selects without a dev split"):
        plan(task, optimizer="spo")


@pytest.mark.parametrize("name", LABELLED)
def test_every_labelled_optimizer_runs_under_k_fold_selection(tmp_path: Path, name: str) -> None:
    """Each fold searches within its share (default options), and the winner is chosen
    among the fold winners and the seed on every pooled example (README: every
    optimizer but spo can use k-fold selection)."""
    budget = {"task_calls": 400, "optimizer_calls": 30}
    result = optimize(
        folded_task(tmp_path, 2),
        optimizer=name,
        budget=budget,
        settings=settings(tmp_path),
        progress=False,
    )
    assert result.search_usage["task"]["calls"] <= budget["task_calls"]
    assert result.search_usage["optimizer"]["calls"] <= budget["optimizer_calls"]
    assert result.selection_split == "cv"
    assert result.best.evaluations["cv"].n == 24
    splits = {s for c in stored_candidates(result.run_dir) for s in c["scores"]}
    assert any(s.startswith("fold1/") for s in splits), splits
    assert any(s.startswith("fold2/") for s in splits), splits
