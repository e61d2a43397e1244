"""A bad argument is named by the task-file key (or argument) in the Python API, and by
the flag that set it at the command line (cli/flags.py maps one to the other)."""

from __future__ import annotations

import io
import random
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from scripted import write_animal_task
from scripted_describe import OPT, TICKETS
from scripted_prefer import SCRIPTED_MODELS as PREFER_MODELS
from scripted_prefer import write_inputs_task

import promptascent
from promptascent.cli.flags import FLAGS, flag_message
from promptascent.cli.main import main
from promptascent.compare import compare, split_options
from promptascent.config.task import load_task
from promptascent.describe.pipeline import DescribedTaskSpec, dry_run_plan, synth_task
from promptascent.describe.synth import synthesize
from promptascent.errors import ConfigError
from promptascent.evaluate import evaluate_prompt
from promptascent.llm.budget import Budget
from promptascent.preference.session import resume_preferences, start_preferences
from promptascent.refinement import feedback_requirement
from promptascent.runner import RunSettings, plan
from promptascent.web.server import serve

SCRIPTED = """\
models:
  task: {backend: scripted, model: "scripted_cli:task"}
  optimizer: {backend: scripted, model: "scripted_cli:optimizer"}
  judge: {backend: scripted, model: "scripted_cli:task"}
optimizer: {name: ape, num_candidates: 2, eval_examples: 4, rounds: 0, top_k: 1, final_k: 2}
"""


def run_cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str) -> str:
    """The CLI's one error line for `args` (exit status 2)."""
    capsys.readouterr()  # what came before (a run's progress) is not this error
    monkeypatch.setattr(sys, "argv", ["promptascent", *args])
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))  # nothing asks: the error comes first
    with pytest.raises(SystemExit) as exit_:
        main()
    err = capsys.readouterr().err
    assert exit_.value.code == 2, err
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: "), err
    return err.strip()


@pytest.fixture
def task(tmp_path: Path) -> Path:
    return write_animal_task(tmp_path / "task", extra=SCRIPTED)


@pytest.fixture
def cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Callable[..., str]:
    monkeypatch.chdir(tmp_path)
    return lambda *args: run_cli(monkeypatch, capsys, *args)


def api_error(call: Callable[[], object]) -> str:
    with pytest.raises(ConfigError) as e:
        call()
    message = str(e.value)
    assert "--" not in message, message  # no flag name in a library error
    return message


# ------------------------------------------------------------------ the Python API


def test_the_python_api_names_the_key_of_each_bad_argument(tmp_path: Path, task: Path) -> None:
    spec = load_task(task)
    settings = RunSettings(runs_dir=tmp_path / "runs", cache_dir=None)
    assert api_error(lambda: plan(spec, scoring="nope")).startswith("evaluation.scoring: 'nope'")
    assert api_error(lambda: plan(spec, length_penalty=2)).startswith("length_penalty: 2")
    assert api_error(lambda: plan(spec, models={"judge": "gpt4"})).startswith(
        "models.judge: unknown model 'gpt4'"
    )
    assert api_error(lambda: Budget.parse("task_calls")).startswith("budget: 'task_calls'")
    assert api_error(lambda: Budget.parse("task_calls=x")).startswith("budget: task_calls='x'")
    assert api_error(lambda: Budget.parse("task_calls=-1")).startswith(
        "budget.task_calls must be positive"
    )
    p = plan(spec)
    assert api_error(lambda: evaluate_prompt(p, p.seed_prompt, "nope", settings)).startswith(
        "split 'nope': use train"
    )
    assert api_error(lambda: feedback_requirement(" ")).startswith("feedback: empty")
    assert api_error(lambda: feedback_requirement("x" * 3000)).startswith("feedback: 3000")
    assert api_error(lambda: compare(spec, [], settings=settings)).startswith(
        "optimizers: name at least one"
    )
    assert api_error(lambda: split_options({"x": 1}, ["ape"])).startswith("options.x: in compare")
    assert api_error(
        lambda: dry_run_plan(DescribedTaskSpec(description=TICKETS), examples=1, settings=settings)
    ).startswith("examples: 1 examples")
    assert api_error(lambda: synth_task(TICKETS, n=0, settings=settings)).startswith(
        "examples: 0 examples"
    )
    assert api_error(
        lambda: synthesize(None, None, 1, random.Random(0))  # type: ignore[arg-type]
    ).startswith("examples: 1 examples")
    prefer_task = load_task(write_inputs_task(tmp_path / "prefer", models=PREFER_MODELS))
    assert api_error(
        lambda: start_preferences(prefer_task, lambda duel: "A", candidates=1, settings=settings)
    ).startswith("candidates 1: preferences need 2")
    assert api_error(
        lambda: start_preferences(prefer_task, lambda duel: "A", rounds=0, settings=settings)
    ).startswith("rounds 0: need 1")
    assert api_error(
        lambda: resume_preferences(tmp_path / "nowhere", lambda duel: "A", rounds=0)
    ).startswith(f"{tmp_path / 'nowhere'}: not a run folder")
    assert api_error(
        lambda: serve(tmp_path, tmp_path, port=0, announce=lambda line: None)
    ).startswith("port 0: not a TCP port")


def test_refine_names_the_candidate_and_feedback_it_lacks(tmp_path: Path, task: Path) -> None:
    settings = RunSettings(runs_dir=tmp_path / "runs", cache_dir=None)
    first = promptascent.optimize(task, settings=settings)
    assert api_error(
        lambda: promptascent.refine(first.run_dir, "x", candidate="nope", settings=settings)
    ).startswith(f"candidate: run {first.run_id} has no candidate 'nope'")
    assert api_error(lambda: promptascent.refine(first.run_dir, settings=settings)).startswith(
        "feedback: none; refine needs feedback"
    )


# ------------------------------------------------------------------ the CLI


def test_optimize_examples_names_the_examples_flag_and_synth_its_n(
    cli: Callable[..., str],
) -> None:
    described = ("--describe", TICKETS, "--optimizer-model", OPT, "--dry-run")
    assert cli("optimize", *described, "--examples", "1").startswith(
        "error: --examples: 1 examples; give a whole number from 3"
    )
    assert cli("synth", TICKETS, "--n", "0", "--optimizer-model", OPT).startswith(
        "error: --n: 0 examples"
    )


def test_the_cli_names_the_flag_of_each_bad_override(cli: Callable[..., str], task: Path) -> None:
    t = str(task)
    assert cli("optimize", t, "--scoring", "nope").startswith(
        f"error: {t}: --scoring: 'nope' is not one of"
    )
    assert cli("optimize", t, "--length-penalty", "2").startswith(
        f"error: {t}: --length-penalty: 2 is not in [0, 1]"
    )
    assert cli("optimize", t, "--judge-model", "gpt4").startswith(
        f"error: {t}: --judge-model: unknown model 'gpt4'"
    )
    assert cli("compare", t, "--optimizers", "ape", "--task-model", "gpt4").startswith(
        "error: --task-model: unknown model 'gpt4'"
    )
    assert cli("optimize", t, "--budget", "task_calls").startswith(
        "error: --budget: 'task_calls' is not KEY=VALUE"
    )
    assert cli("optimize", t, "--budget", "task_calls=-1").startswith(
        "error: --budget task_calls must be positive"
    )
    assert cli("optimize", t, "--budget", "task_calls=x").startswith(
        "error: --budget: task_calls='x' is not a number"
    )
    assert cli("eval", t, "--split", "nope").startswith("error: --split 'nope': use train")
    assert cli("compare", t, "--optimizers", ",").startswith(
        "error: --optimizers: name at least one optimizer"
    )
    assert cli("compare", t, "--optimizers", "ape", "--option", "x=1").startswith(
        "error: --option x: in compare, write OPTIMIZER.OPTION=VALUE"
    )


def test_prefer_serve_and_refine_name_their_flags(
    cli: Callable[..., str], tmp_path: Path, task: Path
) -> None:
    prefer_task = str(write_inputs_task(tmp_path / "prefer", models=PREFER_MODELS))
    assert cli("prefer", prefer_task, "--rounds", "0").startswith(
        f"error: {prefer_task}: --rounds 0: need 1"
    )
    assert cli("prefer", prefer_task, "--candidates", "1").startswith(
        f"error: {prefer_task}: --candidates 1: preferences need 2 or more"
    )
    assert cli("serve", "--port", "0").startswith("error: --port 0: not a TCP port")
    settings = RunSettings(runs_dir=tmp_path / "runs", cache_dir=None)
    first = promptascent.optimize(task, settings=settings)
    runs = ("--runs-dir", str(tmp_path / "runs"), "--no-cache")
    assert cli("refine", first.run_id, "--feedback", "x", "--candidate", "nope", *runs).startswith(
        f"error: --candidate: run {first.run_id} has no candidate 'nope'"
    )
    assert cli("refine", first.run_id, "--feedback", " ", *runs).startswith(
        "error: --feedback: empty"
    )


def test_a_key_the_command_has_no_flag_for_is_shown_as_the_library_says_it() -> None:
    error = ConfigError("models.judge: unknown model 'x'", key="models.judge")
    assert flag_message("eval", error) == "models.judge: unknown model 'x'"
    assert flag_message("compare", error) == "--judge-model: unknown model 'x'"
    # a key in the task file's own words (no argument set it) is never renamed
    assert flag_message("optimize", ConfigError("t.yaml: models.task: bad")) == (
        "t.yaml: models.task: bad"
    )
    # a file path that holds the key's word is not taken for the key
    error = ConfigError("examples/t.yaml: examples: 1 examples", key="examples")
    assert flag_message("optimize", error) == "examples/t.yaml: --examples: 1 examples"
    assert set(FLAGS) <= {c.name for c in _commands()}


def _commands() -> list[object]:
    import typer.main

    from promptascent.cli.main import app

    group = typer.main.get_command(app)
    return list(group.commands.values())  # type: ignore[attr-defined]
