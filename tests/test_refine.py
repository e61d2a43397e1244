"""refine: a finished run continues from its best prompt with a person's feedback as a
requirement, in a new run that records where it came from."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from scripted import KEY, optimizer_model, task_model, write_animal_task

import promptascent
from promptascent import RunSettings, optimize
from promptascent.config.task import task_from_dict
from promptascent.errors import ConfigError
from promptascent.refinement import feedback_requirement, refined_task
from promptascent.span_feedback import span_comment
from promptascent.store.run_store import RunStore

APE = {"num_candidates": 3, "eval_examples": 6, "rounds": 1, "top_k": 2, "final_k": 2}
TESTS = Path(__file__).resolve().parent
SCRIPTED_MODELS = """\
models:
  task: {backend: scripted, model: "scripted_cli:task"}
  optimizer: {backend: scripted, model: "scripted_cli:optimizer"}
  judge: {backend: scripted, model: "scripted_cli:task"}
optimizer: {name: ape, num_candidates: 3, eval_examples: 6, rounds: 1, top_k: 2, final_k: 2}
"""


def settings(tmp_path: Path) -> RunSettings:
    return RunSettings(
        runs_dir=tmp_path / "runs",
        cache_dir=tmp_path / "cache",
        backends={"task": task_model(), "optimizer": optimizer_model(), "judge": task_model()},
    )


def stored(run_dir: Path, key: str) -> object:
    store = RunStore.open_existing(run_dir)
    try:
        return store.get(key)
    finally:
        store.close()


def test_refine_starts_from_the_best_prompt_and_keeps_the_history(tmp_path: Path) -> None:
    first = optimize(
        write_animal_task(tmp_path / "task"),
        optimizer="ape",
        options=APE,
        settings=settings(tmp_path),
    )
    assert first.best.prompt.instruction == KEY
    second = promptascent.refine(first.run_dir, "answers are too long", settings=settings(tmp_path))
    assert second.run_dir != first.run_dir
    assert second.seed.prompt == first.best.prompt  # the earlier best is the new seed
    origin = stored(second.run_dir, "origin")
    assert origin == {
        "refined_from": first.run_id,
        "refined_from_dir": str(first.run_dir),
        "best_candidate": first.best.id,
        "feedback": ["Feedback on the outputs: answers are too long"],
    }
    config = stored(second.run_dir, "config")
    assert isinstance(config, dict)
    assert "answers are too long" in config["task"]["requirements"]
    assert "answers are too long" in config["task"]["description"]
    assert config["optimizer"]["name"] == "ape" and config["optimizer"]["options"]["rounds"] == 1
    assert any(n.startswith(f"refined from run {first.run_id}") for n in second.notes)

    third = promptascent.refine(
        second.run_dir, "say only the animal", optimizer="random", settings=settings(tmp_path)
    )
    origin = stored(third.run_dir, "origin")
    assert isinstance(origin, dict) and origin["refined_from"] == second.run_id
    assert origin["feedback"] == [
        "Feedback on the outputs: answers are too long",
        "Feedback on the outputs: say only the animal",
    ]
    assert stored(third.run_dir, "config")["optimizer"]["name"] == "random"  # type: ignore[index]


def test_a_judge_rubric_gets_the_feedback(tmp_path: Path) -> None:
    task = task_from_dict(
        {
            "name": "t",
            "data": {"examples": [{"input": "a"}, {"input": "b"}]},
            "seed_prompt": "Summarise.",
            "metric": {"name": "judge", "rubric": "One sentence."},
            "requirements": "Be brief.",
        },
        base_dir=tmp_path,
    )
    refined = refined_task(task, {"instruction": "Sum it up.", "demos": []}, "Feedback: no jargon")
    assert refined.metric == {"name": "judge", "rubric": "One sentence.\nFeedback: no jargon"}
    assert refined.requirements == "Be brief.\nFeedback: no jargon"
    assert refined.seed_prompt is not None and refined.seed_prompt.instruction == "Sum it up."  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("feedback", "message"),
    [("   ", "^feedback: empty"), ("x" * 2001, "^feedback: 2001 characters")],
)
def test_bad_feedback_is_a_config_error(feedback: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        feedback_requirement(feedback)


def test_only_an_ended_run_can_be_refined(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a run folder"):
        promptascent.refine(tmp_path, "too long")
    run = optimize(
        write_animal_task(tmp_path / "task"),
        optimizer="ape",
        options=APE,
        settings=settings(tmp_path),
    )
    store = RunStore.open_existing(run.run_dir)
    store.put("status", "interrupted")
    store.close()
    with pytest.raises(ConfigError, match=r"has not ended .* --resume"):
        promptascent.refine(run.run_dir, "too long", settings=settings(tmp_path))


def test_refine_from_the_cli(tmp_path: Path) -> None:
    task = write_animal_task(tmp_path / "task", extra=SCRIPTED_MODELS)
    env = {**os.environ, "PYTHONPATH": str(TESTS), "COLUMNS": "200"}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "promptascent", *args, "-q"],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip

    first = cli("optimize", str(task), "--run-id", "first")
    assert first.returncode == 0, first.stderr
    done = cli("refine", "first", "--feedback", "answers are too long")
    assert done.returncode == 0, done.stderr
    assert "refined from run first" in done.stdout
    bad = cli("refine", "first", "--feedback", " ")
    assert bad.returncode == 2 and "--feedback: empty" in bad.stderr


def test_refine_takes_several_comments_and_the_span_comments_on_a_chosen_candidate(
    tmp_path: Path,
) -> None:
    first = optimize(
        write_animal_task(tmp_path / "task"),
        optimizer="ape",
        options=APE,
        settings=settings(tmp_path),
    )
    seed_id = first.seed.id
    instruction = first.seed.prompt.instruction
    store = RunStore.open_existing(first.run_dir)
    try:
        store.add_span_comment(
            span_comment(
                instruction, candidate_id=seed_id, target="prompt", start=0,
                end=len(instruction), span=instruction, comment="name the allowed answers",
            ).to_dict()
        )  # fmt: skip
        output = store.evaluations(seed_id, "dev")[0]
        store.add_span_comment(
            span_comment(
                output["output"], candidate_id=seed_id, target="output", start=0, end=7,
                span=output["output"][:7], comment="no preamble", split="dev",
                example_id=output["example_id"],
            ).to_dict()
        )  # fmt: skip
        store.add_span_comment(  # on another candidate: not taken
            span_comment(
                KEY, candidate_id=first.best.id, target="prompt", start=0, end=6,
                span=KEY[:6], comment="elsewhere",
            ).to_dict()
        )  # fmt: skip
    finally:
        store.close()
    second = promptascent.refine(
        first.run_dir,
        ["answers are too long", "say only the animal"],
        candidate=seed_id,
        spans=True,
        settings=settings(tmp_path),
    )
    assert second.seed.prompt == first.seed.prompt  # started from the chosen candidate
    origin = stored(second.run_dir, "origin")
    assert isinstance(origin, dict) and origin["candidate"] == seed_id
    assert origin["feedback"] == [
        "Feedback on the outputs: answers are too long",
        "Feedback on the outputs: say only the animal",
        f'Feedback on the prompt, about "{instruction}": name the allowed answers',
        f'Feedback on an output ({output["example_id"]}), about "{output["output"][:7]}": '
        "no preamble",
    ]
    requirements = stored(second.run_dir, "config")["task"]["requirements"]  # type: ignore[index]
    assert "no preamble" in requirements and "elsewhere" not in requirements


def test_refine_without_any_comment_is_a_config_error(tmp_path: Path) -> None:
    first = optimize(
        write_animal_task(tmp_path / "task"),
        optimizer="ape",
        options=APE,
        settings=settings(tmp_path),
    )
    with pytest.raises(ConfigError, match=r"^feedback: none; refine needs feedback: give"):
        promptascent.refine(first.run_dir, settings=settings(tmp_path))
    with pytest.raises(ConfigError, match="no span comment is stored on candidate"):
        promptascent.refine(first.run_dir, spans=True, settings=settings(tmp_path))
    with pytest.raises(ConfigError, match=r"^candidate: run .* has no candidate 'nope'"):
        promptascent.refine(first.run_dir, "x", candidate="nope", settings=settings(tmp_path))


def test_refine_from_the_cli_with_repeated_feedback_and_spans(tmp_path: Path) -> None:
    task = write_animal_task(tmp_path / "task", extra=SCRIPTED_MODELS)
    env = {**os.environ, "PYTHONPATH": str(TESTS), "COLUMNS": "200"}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "promptascent", *args, "-q"],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip

    assert cli("optimize", str(task), "--run-id", "first").returncode == 0
    store = RunStore.open_existing(tmp_path / "runs" / "first")
    best = store.get("result")["best_candidate"]
    text = store.prompt(best)["instruction"]
    store.add_span_comment(
        span_comment(
            text, candidate_id=best, target="prompt", start=0, end=6, span=text[:6],
            comment="keep it",
        ).to_dict()
    )  # fmt: skip
    store.close()
    done = cli(
        "refine", "first", "--feedback", "one", "--feedback", "two", "--spans",
        "--run-id", "second",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    origin = stored(tmp_path / "runs" / "second", "origin")
    assert isinstance(origin, dict)
    assert origin["feedback"] == [
        "Feedback on the outputs: one",
        "Feedback on the outputs: two",
        f'Feedback on the prompt, about "{text[:6]}": keep it',
    ]
