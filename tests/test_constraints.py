"""Prompt constraints every optimizer shares: protected spans, length limit, kept format."""

from __future__ import annotations

from pathlib import Path

from scripted import KEY, optimizer_model, task_model, write_animal_task

from promptascent import RunSettings, optimize
from promptascent.prompts.constraints import Constraints, split_keep_tags
from promptascent.prompts.prompt import Prompt


def test_keep_tags_are_removed_and_their_spans_protected() -> None:
    text, spans = split_keep_tags("Classify it. <keep>Answer in JSON.</keep> Be brief.")
    assert text == "Classify it. Answer in JSON. Be brief."
    assert spans == ("Answer in JSON.",)


def test_a_candidate_that_drops_a_protected_span_gets_it_back() -> None:
    c = Constraints(protected=("Answer in JSON.",))
    verdict = c.apply(Prompt("Name the animal."))
    assert verdict.prompt is not None and verdict.repaired
    assert verdict.prompt.instruction == "Name the animal.\nAnswer in JSON."
    untouched = c.apply(Prompt("Answer in JSON. Name it."))
    assert untouched.prompt == Prompt("Answer in JSON. Name it.") and not untouched.repaired


def test_too_long_candidates_are_rejected() -> None:
    c = Constraints(max_prompt_tokens=5, count_tokens=lambda t: len(t.split()))
    assert c.apply(Prompt("one two three")).prompt is not None
    verdict = c.apply(Prompt("one two three four five six seven"))
    assert verdict.prompt is None and "max_prompt_tokens 5" in verdict.reason


def test_the_seed_output_format_is_kept() -> None:
    c = Constraints(keep_output_format=True, seed_output_format="Answer yes or no.")
    verdict = c.apply(Prompt("x", output_format="Answer in French."))
    assert verdict.prompt is not None and verdict.prompt.output_format == "Answer yes or no."


def test_every_candidate_of_a_run_keeps_the_protected_span(tmp_path: Path) -> None:
    task = write_animal_task(
        tmp_path / "t",
        extra="constraints: {protected: ['Be brief.'], max_prompt_tokens: 60}\n",
    )
    text = task.read_text().replace(
        "seed_prompt: Which animal is it?", "seed_prompt: Which animal is it? Be brief."
    )
    task.write_text(text)
    result = optimize(
        task,
        options={"num_candidates": 3, "eval_examples": 6, "rounds": 1},
        settings=RunSettings(
            runs_dir=tmp_path / "runs",
            cache_dir=None,
            backends={"task": task_model(), "optimizer": optimizer_model()},
        ),
    )
    from promptascent.store.run_store import RunStore

    store = RunStore.open_existing(result.run_dir)
    try:
        instructions = [c["prompt"]["instruction"] for c in store.candidates()]
    finally:
        store.close()
    assert all("Be brief." in i for i in instructions) and len(instructions) > 3
    assert result.best.prompt.instruction == KEY + "\nBe brief."


def test_a_protected_span_missing_from_the_seed_is_a_config_error(tmp_path: Path) -> None:
    import pytest

    from promptascent.errors import ConfigError

    task = write_animal_task(tmp_path / "t", extra="constraints: {protected: ['Not there.']}\n")
    with pytest.raises(ConfigError, match=r"constraints\.protected"):
        optimize(task, settings=RunSettings(runs_dir=tmp_path / "r", cache_dir=None))


def test_output_format_auto_names_the_allowed_answers(tmp_path: Path) -> None:
    from promptascent.config.task import load_task
    from promptascent.runner import plan

    task = write_animal_task(tmp_path / "t")
    text = task.read_text().replace(
        "seed_prompt: Which animal is it?",
        "seed_prompt: {instruction: 'Which animal is it?', output_format: auto}",
    )
    task.write_text(text)
    p = plan(load_task(task))
    assert p.seed_prompt.output_format == (
        "Answer with exactly one of: cat, cow, dog, fox, horse, owl. Say nothing else."
    )
