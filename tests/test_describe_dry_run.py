"""`optimize --describe ... --dry-run`: the plan of the describe pipeline (draft by
rules, synthetic-data sizes and budget, optimizer, estimate) with no model call, no
file and no run; and the error for a normal task file that forgot `data:`."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
from scripted_describe import DESCRIBED_TASK_FILE, OPT, TASK, TICKETS
from scripted_describe import run_cli as cli

from promptascent.data.example import Example
from promptascent.describe.pipeline import (
    DEFAULT_RUN_BUDGET,
    DescribedTaskSpec,
    described_from_dict,
    dry_run_plan,
    planned_split_sizes,
    read_described_task,
    synth_budget,
)
from promptascent.describe.strategy import choose_optimizer
from promptascent.describe.synth import split_examples
from promptascent.errors import ConfigError
from promptascent.llm.budget import Budget
from promptascent.llm.scripted import ScriptedLLM
from promptascent.llm.types import CompletionRequest
from promptascent.runner import RunSettings

TESTS = Path(__file__).resolve().parent
NEWS = "Summarize news articles in two sentences"
RUN_CALLS = int(DEFAULT_RUN_BUDGET["task_calls"])


def no_call(request: CompletionRequest) -> str:
    raise AssertionError("a dry run called a model")


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> RunSettings:
    """Scripted models in every role that fail on any call, run from an empty folder
    (so that anything written shows), with the default runs and cache folders."""
    monkeypatch.chdir(tmp_path)
    llm = ScriptedLLM(no_call, model_id="no-call")
    return RunSettings(backends={"task": llm, "optimizer": llm, "judge": llm})


def nothing_made(folder: Path, settings: RunSettings) -> None:
    assert list(folder.iterdir()) == []
    llm = settings.backends["task"]
    assert isinstance(llm, ScriptedLLM) and llm.requests == []


# --------------------------------------------------------------------------- the function


@pytest.mark.parametrize(("n", "sizes"), [(40, (18, 12, 10)), (24, (11, 7, 6)), (3, (1, 1, 1))])
def test_planned_split_sizes_are_those_of_the_real_split(n: int, sizes: tuple[int, ...]) -> None:
    assert planned_split_sizes(n) == dict(zip(("train", "dev", "test"), sizes, strict=True))
    labelled = [Example(f"e{i}", f"ticket {i}", ("low", "medium", "high")[i % 3]) for i in range(n)]
    real = split_examples(labelled, random.Random(7), dev_fraction=0.3, test_fraction=0.25)
    assert {k: len(v) for k, v in real.items()} == planned_split_sizes(n)


def test_dry_run_plan_of_a_classification_description(
    tmp_path: Path, settings: RunSettings
) -> None:
    planned = dry_run_plan(TICKETS, settings=settings)
    draft = planned.draft
    assert draft.labels == ("low", "medium", "high") and draft.task_type == "classification"
    assert draft.metric == "choice_accuracy" and not draft.from_model
    assert draft.seed_prompt == TICKETS + "."
    assert planned.examples == 40
    assert planned.splits == {"train": 18, "dev": 12, "test": 10}
    assert planned.synth_budget == synth_budget(40) == Budget(optimizer_calls=122)
    assert planned.out_dir == Path("generated/classify-support-tickets-urgency")
    assert planned.strategy == choose_optimizer("classification", 18, 12, RUN_CALLS, True)
    e = planned.estimate
    assert set(e) >= {"task", "optimizer", "test", "budget"}
    assert e["budget"] == {"task_calls": RUN_CALLS} and e["task"]["calls"] <= RUN_CALLS
    assert e["test"]["calls"] == 2 * 10  # seed and best on the planned test split
    assert e["task"]["prompt_tokens"] > 0
    lines = planned.lines()
    assert lines[0] == "dry run: no model was called, nothing was written, no run was created"
    assert "the real run asks the optimizer model first; its draft may differ" in lines[1]
    assert "  labels: low, medium, high" in lines
    assert "  metric: choice_accuracy" in lines
    assert f"  seed prompt: {TICKETS}." in lines
    assert (
        "synthetic data: 40 examples written by the optimizer model into "
        "generated/classify-support-tickets-urgency; split train 18, dev 12, test 10 "
        "(when all 40 are kept)"
    ) in lines
    assert any(
        line.startswith("  budget of the draft and the data: optimizer_calls=122") for line in lines
    )
    assert f"optimizer: {planned.strategy.reason}" in lines
    assert "token figures are estimated from the description length" in lines[-1]
    nothing_made(tmp_path, settings)


def test_dry_run_plan_of_an_open_ended_description(tmp_path: Path, settings: RunSettings) -> None:
    planned = dry_run_plan(NEWS, examples=24, settings=settings)
    assert planned.draft.labels == () and planned.draft.task_type == "generation"
    assert planned.splits == {"train": 11, "dev": 7, "test": 6}
    assert planned.strategy == choose_optimizer("generation", 11, 7, RUN_CALLS, False)
    lines = planned.lines()
    assert "  labels: none (open-ended)" in lines
    assert any(
        line.startswith("  metric: judge (rubric: The output does this task well") for line in lines
    )
    if planned.strategy.name == "spo":
        assert "judge" in planned.estimate
    nothing_made(tmp_path, settings)


def test_dry_run_plan_with_overrides(tmp_path: Path, settings: RunSettings) -> None:
    planned = dry_run_plan(
        TICKETS,
        examples=24,
        optimizer="protegi",
        options={"rounds": 1},
        budget=Budget(task_calls=90),
        settings=settings,
    )
    assert planned.strategy.name == "protegi" and planned.strategy.options == {"rounds": 1}
    assert "optimizer: protegi: chosen by you" in planned.lines()
    assert "  options: rounds=1" in planned.lines()
    assert planned.estimate["budget"] == {"task_calls": 90}
    assert planned.estimate["task"]["calls"] <= 90
    # the flags bound the describe steps too, as in the real pipeline
    capped = dry_run_plan(TICKETS, budget=Budget(optimizer_calls=50), settings=settings)
    assert capped.synth_budget == Budget(optimizer_calls=50)
    # the budget flag also reaches the strategy when it chooses
    chosen = dry_run_plan(TICKETS, budget=Budget(task_calls=5000), settings=settings)
    assert chosen.strategy == choose_optimizer("classification", 18, 12, 5000, True)
    nothing_made(tmp_path, settings)


def test_dry_run_plan_of_a_described_task_file(tmp_path: Path, settings: RunSettings) -> None:
    (tmp_path / "sub").mkdir()
    path = tmp_path / "sub" / "t.yaml"
    path.write_text(
        f"description: '{TICKETS}'\nname: tickets\nbudget: {{task_calls: 200}}\n"
        "optimizer: {name: random}\nexamples: 12\nout: gen\n",
        encoding="utf-8",
    )
    spec = read_described_task(path)
    assert spec is not None
    planned = dry_run_plan(spec, settings=settings)
    assert planned.name == "tickets" and planned.out_dir == tmp_path / "sub" / "gen"
    assert planned.splits == {"train": 5, "dev": 4, "test": 3}
    assert planned.strategy.reason == "random: from the task file"
    assert planned.estimate["budget"] == {"task_calls": 200}
    assert dry_run_plan(spec, out_dir=Path("elsewhere"), settings=settings).out_dir == Path(
        "elsewhere"
    )
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["sub", "t.yaml"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"examples": 2}, "^examples: 2 examples; give a whole number from 3 to 1000"),
        ({"optimizer": "nope"}, "unknown optimizer 'nope'"),
        ({"models": {"task": "nonsense"}}, "^models.task: unknown model"),
    ],
)
def test_dry_run_plan_stops_where_the_real_run_would(
    settings: RunSettings,
    kwargs: dict[str, Any],
    message: str,
) -> None:
    with pytest.raises(ConfigError, match=message):
        dry_run_plan(DescribedTaskSpec(description=TICKETS), settings=settings, **kwargs)


# --------------------------------------------------------------------------- a forgotten data:


@pytest.mark.parametrize(
    ("extra", "keys"),
    [
        (
            {"seed_prompt": "Classify: {input}", "metric": "choice_accuracy"},
            "seed_prompt, metric are keys",
        ),
        ({"evaluation": {"test": False}}, "evaluation is a key"),
    ],
)
def test_a_normal_task_without_data_is_a_clear_error(extra: dict[str, Any], keys: str) -> None:
    raw = {"name": "tickets", "description": TICKETS, **extra}
    with pytest.raises(ConfigError) as info:
        described_from_dict(raw, source="tickets.yaml")
    assert str(info.value) == (
        f"tickets.yaml: no `data:` section, but {keys} of a normal task file. A normal "
        "task needs `data:` (e.g. `data: {train: train.jsonl, dev: dev.jsonl, test: "
        "test.jsonl}` or `data: {folder: DIR}`); a description-only task holds only "
        "`description` and the optional keys name, models, budget, optimizer, examples, "
        "out, seed"
    )


def test_described_keys_alone_are_still_a_described_task() -> None:
    spec = described_from_dict({"description": TICKETS, "name": "t", "examples": 12, "seed": 1})
    assert spec is not None and spec.examples == 12
    with pytest.raises(ConfigError, match="unknown key 'exampels'"):
        described_from_dict({"description": TICKETS, "exampels": 3})
    assert described_from_dict({"description": TICKETS, "data": {"folder": "x"}}) is None


# --------------------------------------------------------------------------- the CLI


MODELS = ("--task-model", TASK, "--optimizer-model", OPT, "--judge-model", TASK)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """An empty working folder; the call log lives beside it, not in it."""
    folder = tmp_path / "work"
    folder.mkdir()
    return folder


def test_cli_dry_run_on_a_classification_description(home: Path, tmp_path: Path) -> None:
    log = tmp_path / "calls.log"
    proc = cli("optimize", "--describe", TICKETS, "--dry-run", *MODELS, cwd=home, log=log)
    out = proc.stdout
    assert proc.returncode == 0 and proc.stderr == ""
    assert "dry run: no model was called, nothing was written, no run was created" in out
    assert "the real run asks the optimizer model first; its draft may differ" in out
    assert "  task type: classification\n  labels: low, medium, high\n" in out
    assert "  metric: choice_accuracy\n" in out
    assert "split train 18, dev 12, test 10 (when all 40 are kept)" in out
    assert "budget of the draft and the data: optimizer_calls=122" in out
    reason = choose_optimizer("classification", 18, 12, RUN_CALLS, True).reason
    assert f"optimizer: {reason}\n" in out
    assert "estimate (upper bounds; nothing was spent)" in out and "test (after search)" in out
    assert f"budget: {{'task_calls': {RUN_CALLS}}}" in out
    # no model call (the scripted models log every one), no file, no run, no cache
    assert not log.exists() and list(home.iterdir()) == []


def test_cli_dry_run_on_an_open_ended_description(home: Path, tmp_path: Path) -> None:
    log = tmp_path / "calls.log"
    out = cli("optimize", "--describe", NEWS, "--dry-run", *MODELS, cwd=home, log=log).stdout
    assert "  task type: generation\n  labels: none (open-ended)\n  metric: judge (rubric:" in out
    assert "split train 18, dev 12, test 10" in out
    reason = choose_optimizer("generation", 18, 12, RUN_CALLS, False).reason
    assert f"optimizer: {reason}\n" in out
    assert not log.exists() and list(home.iterdir()) == []


def test_cli_dry_run_shows_the_optimizer_flag(home: Path, tmp_path: Path) -> None:
    log = tmp_path / "calls.log"
    out = cli(
        "optimize", "--describe", TICKETS, "--dry-run", "--optimizer", "protegi",
        "--examples", "24", "--budget", "task_calls=90", "--out", "gen", *MODELS,
        cwd=home, log=log,
    ).stdout  # fmt: skip
    assert "optimizer: protegi: chosen by you\n" in out
    assert (
        "24 examples written by the optimizer model into gen; split train 11, dev 7, test 6" in out
    )
    assert "budget: {'task_calls': 90}" in out
    assert not log.exists() and list(home.iterdir()) == []


def test_cli_dry_run_on_a_described_task_file(home: Path, tmp_path: Path) -> None:
    log = tmp_path / "calls.log"
    (home / "t.yaml").write_text(
        DESCRIBED_TASK_FILE,
        encoding="utf-8",
    )
    out = cli("optimize", "t.yaml", "--dry-run", cwd=home, log=log).stdout
    assert "  labels: low, medium, high\n" in out
    assert (
        "12 examples written by the optimizer model into gen; split train 5, dev 4, test 3" in out
    )
    assert "optimizer: random: from the task file\n" in out
    assert "budget: {'task_calls': 200}" in out
    assert not log.exists() and [p.name for p in home.iterdir()] == ["t.yaml"]


def test_cli_a_normal_task_file_without_data(home: Path, tmp_path: Path) -> None:
    (home / "tickets.yaml").write_text(
        f"name: tickets\ndescription: '{TICKETS}'\nseed_prompt: 'Classify: {{input}}'\n"
        "metric: choice_accuracy\n",
        encoding="utf-8",
    )
    proc = cli("optimize", "tickets.yaml", cwd=home, log=tmp_path / "calls.log", check=False)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith(
        "error: tickets.yaml: no `data:` section, but seed_prompt, metric are keys of a normal "
        "task file. A normal task needs `data:`"
    )
    assert "a description-only task holds only `description` and the optional keys" in proc.stderr
    assert proc.stderr.count("\n") == 1
