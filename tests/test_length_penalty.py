"""The cost-aware objective (`length_penalty`): of prompts scoring the same, the
shorter wins, for every optimizer (the pool ranks by score minus the penalty)."""

from __future__ import annotations

from pathlib import Path

import pytest
from scripted import KEY, optimizer_model, task_model, write_animal_task

from promptascent import RunSettings, optimize
from promptascent.config.task import load_task
from promptascent.errors import ConfigError
from promptascent.evaluation.result import EvaluationResult, ExampleResult
from promptascent.prompts.prompt import Prompt
from promptascent.runner import plan
from promptascent.search.objective import LengthPenalty
from promptascent.search.pool import Candidate, CandidatePool

LONG = KEY + " Take your time, read the whole description and think of every animal you know."


def scored(instruction: str, score: float) -> Candidate:
    c = Candidate(Prompt(instruction))
    c.evaluations["dev"] = EvaluationResult(
        c.id, tuple(ExampleResult(f"e{i}", "", score) for i in range(4))
    )
    return c


def words(prompt: Prompt) -> int:
    return len(prompt.instruction.split())


def test_the_penalty_is_relative_to_the_seed_length() -> None:
    penalty = LengthPenalty(0.1, words, Prompt("one two three four"))
    assert penalty(Prompt("one two three four")) == pytest.approx(0.1)
    assert penalty(Prompt("a b c d e f g h")) == pytest.approx(0.2)


def test_the_pool_ranks_by_score_minus_penalty() -> None:
    pool = CandidatePool(LengthPenalty(0.05, words, Prompt(KEY)))
    long, short = scored(LONG, 1.0), scored(KEY, 1.0)
    pool.add(long)
    pool.add(short)
    assert pool.best("dev") is short  # same score, fewer tokens
    slightly_better = scored(LONG + " Really.", 1.0)
    assert pool.objective(short, "dev") == pytest.approx(0.95)
    assert (pool.objective(slightly_better, "dev") or 0) < 0.95
    without = CandidatePool()
    without.add(long)
    without.add(short)
    assert without.best("dev") is long  # no penalty: ties keep insertion order


def settings(tmp_path: Path) -> RunSettings:
    return RunSettings(
        runs_dir=tmp_path / "runs",
        cache_dir=tmp_path / "cache",
        backends={"task": task_model(), "optimizer": optimizer_model(), "judge": task_model()},
    )


APE = {"num_candidates": 3, "eval_examples": 6, "rounds": 1, "top_k": 2, "final_k": 3}


def long_seed_task(folder: Path) -> Path:
    """The seed already holds the key, padded: it scores 1.0 like the induced key."""
    task = write_animal_task(folder)
    task.write_text(
        task.read_text().replace("seed_prompt: Which animal is it?", f"seed_prompt: {LONG}")
    )
    return task


def test_with_a_penalty_the_shorter_prompt_of_equal_score_wins(tmp_path: Path) -> None:
    plain = optimize(
        long_seed_task(tmp_path / "a"),
        optimizer="ape",
        options=APE,
        settings=settings(tmp_path / "a"),
    )
    penalised = optimize(
        long_seed_task(tmp_path / "b"),
        optimizer="ape",
        options=APE,
        length_penalty=0.05,
        settings=settings(tmp_path / "b"),
    )
    assert plain.best.id == plain.seed.id  # a tie on dev goes to the seed
    assert penalised.best.prompt.instruction == KEY
    assert penalised.best.score("dev") == penalised.seed.score("dev") == 1.0
    tokens = penalised.to_dict()["prompt_tokens"]
    assert 0 < tokens["best"] < tokens["seed"]
    assert plain.length_penalty == 0.0 and penalised.length_penalty == 0.05


def test_a_bad_length_penalty_is_a_config_error(tmp_path: Path) -> None:
    task = load_task(write_animal_task(tmp_path))
    with pytest.raises(ConfigError, match=r"^length_penalty: 2 is not in \[0, 1\]"):
        plan(task, length_penalty=2.0)
