"""The constant baseline beside every accuracy: the majority class with a label set,
the answer's most common position where every example lists its own choices."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from promptascent import RunSettings, optimize
from promptascent.evaluation.baseline import majority_baseline, majority_rate
from promptascent.llm.scripted import ScriptedLLM
from promptascent.report.run_facts import read_run
from promptascent.store.run_store import RunStore


def test_with_one_label_set_it_is_the_majority_class() -> None:
    targets = ["no", "yes", "no", "no"]
    choices = [("yes", "no")] * 4
    b = majority_baseline(targets, choices)
    assert b is not None and (b.answer, b.scores, b.rate) == ("no", (1.0, 0.0, 1.0, 1.0), 0.75)
    assert majority_rate(targets) == 0.75  # no choices: by target too


def test_a_tie_goes_to_the_first_seen_target_and_the_first_position() -> None:
    b = majority_baseline(["b", "a", "a", "b"])
    assert b is not None and b.answer == "b"
    varying = [("1", "2"), ("3", "4"), ("5", "6"), ("8", "7")]
    b = majority_baseline(["2", "3", "5", "7"], varying)  # positions 1, 0, 0, 1
    assert b is not None and (b.answer, b.scores) == ("option 1", (0.0, 1.0, 1.0, 0.0))


def test_where_the_choices_vary_it_is_the_answers_most_common_position() -> None:
    """Every arithmetic question has its own numbers: always answering the most common
    target is right once; always taking the second option is right three times."""
    targets = ["-2376", "-1141", "12", "7"]
    choices = [
        ("8639889", "-2376", "house"),
        ("banana", "-1141", "882"),
        ("12", "40", "house"),
        ("3", "7", "banana"),
    ]
    assert majority_rate(targets) == 0.25
    b = majority_baseline(targets, choices)
    assert b is not None and (b.answer, b.scores) == ("option 2", (1.0, 1.0, 0.0, 1.0))
    # the same choices in another order are one set: back to the majority class
    same_set = [("yes", "no"), ("no", "yes"), ("yes", "no"), ("no", "yes")]
    assert majority_rate(["yes", "yes", "no", "yes"], same_set) == 0.75


def test_an_answer_outside_its_choices_scores_zero_and_no_target_means_no_baseline() -> None:
    b = majority_baseline(["a", "x", "c"], [("a", "b"), ("c", "d"), ("c", "e")])
    assert b is not None and (b.answer, b.scores) == ("option 1", (1.0, 0.0, 1.0))
    assert majority_baseline([]) is None and majority_baseline(["a", None]) is None


def _options_task(folder: Path) -> Path:
    """Questions whose choices are their own (as BIG-bench's `Options:` lists): the
    answer is the second option in 14 of 18 test examples."""
    folder.mkdir(parents=True)
    for split, n in (("train", 6), ("dev", 8), ("test", 18)):
        rows = []
        for i in range(n):
            options = [f"{split}-{i}-a", f"{split}-{i}-b", f"{split}-{i}-c"]
            gold = options[0] if split == "test" and i < 4 else options[1]
            rows.append({"id": f"{split}{i}", "input": f"q{i}", "target": gold, "choices": options})
        (folder / f"{split}.jsonl").write_text("\n".join(map(json.dumps, rows)) + "\n")
    task = folder / "task.yaml"
    task.write_text(
        "name: options\n"
        "data: {train: train.jsonl, dev: dev.jsonl, test: test.jsonl}\n"
        "seed_prompt: Pick the right option.\n"
        "metric: choice_accuracy\n"
        "evaluation: {scoring: likelihood}\n"
        "optimizer: {name: random, separators: 2, paraphrases: 0}\n"
        "seed: 0\n",
        encoding="utf-8",
    )
    return task


def test_a_run_and_its_report_give_the_position_baseline_where_choices_vary(
    tmp_path: Path,
) -> None:
    model = ScriptedLLM(lambda r: "Be brief.", loglik_fn=lambda req: [-1.0, -2.0, -3.0])
    settings = RunSettings(
        runs_dir=tmp_path / "runs",
        cache_dir=tmp_path / "cache",
        backends={"task": model, "optimizer": model, "judge": model},
    )
    result = optimize(_options_task(tmp_path / "t"), settings=settings)
    test = result.to_dict()["test"]
    assert test["majority_rate"] == pytest.approx(14 / 18)  # not 1/18, the top target
    assert read_run(result.run_dir).majority_rate == pytest.approx(14 / 18)
    # a run that stopped before its result: the report recomputes it from the examples
    store = RunStore.open_existing(result.run_dir)
    try:
        store.put("status", "running")
    finally:
        store.close()
    facts = read_run(result.run_dir)
    assert facts.partial and facts.majority_rate == pytest.approx(14 / 18)
