"""EvoPrompt (GA and DE) on scripted models: evolution must find the hidden key that
no initial prompt holds, stop cleanly when the budget ends, survive unusable replies,
and be deterministic. One integration run on the real embedded model."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from scripted import KEY, embedded_settings, tiny_navigate, write_animal_task
from scripted_evoprompt import INIT_REJECTED, optimizer_model, task_model

from promptascent import RunSettings, optimize
from promptascent.errors import ConfigError
from promptascent.events import Event, ReplyRejected, StepFinished
from promptascent.llm.base import LLM
from promptascent.llm.scripted import ScriptedLLM
from promptascent.optimizers import registry
from promptascent.optimizers.base import load_template
from promptascent.optimizers.evoprompt import (
    TEMPLATES,
    EvoPromptDE,
    EvoPromptGA,
    echo_keys,
    read_offspring,
)
from promptascent.store.run_store import RunStore

VARIANTS = ("evoprompt-ga", "evoprompt-de")
OPTIONS: dict[str, Any] = {
    "population_size": 6,
    "generations": 2,
    "eval_examples": 6,
    "final_k": 2,
}


class Events:
    def __init__(self) -> None:
        self.seen: list[Event] = []

    def __call__(self, event: Event) -> None:
        self.seen.append(event)

    def of(self, kind: type[Event]) -> list[Any]:
        return [e for e in self.seen if isinstance(e, kind)]


def settings(
    tmp_path: Path, optimizer: LLM | None = None, events: Events | None = None
) -> RunSettings:
    return RunSettings(
        runs_dir=tmp_path / "runs",
        cache_dir=tmp_path / "cache",
        backends={
            "task": task_model(),
            "optimizer": optimizer or optimizer_model(),
            "judge": task_model(),
        },
        sinks=[events] if events else [],
    )


def lineage(run_dir: Path) -> list[tuple[str, str, tuple[str, ...], int]]:
    return [(c["id"], c["operation"], tuple(c["parents"]), c["step"]) for c in stored(run_dir)]


def stored(run_dir: Path) -> list[dict[str, Any]]:
    store = RunStore.open_existing(run_dir)
    try:
        return store.candidates()
    finally:
        store.close()


def fitness(candidate: dict[str, Any]) -> float:
    return float(candidate["scores"]["dev-subset"]["mean"])


@pytest.mark.parametrize(("variant", "operation"), [("evoprompt-ga", "ga"), ("evoprompt-de", "de")])
def test_evolution_finds_the_key_no_initial_prompt_holds(
    tmp_path: Path, variant: str, operation: str
) -> None:
    task = write_animal_task(tmp_path / "task")
    events = Events()
    result = optimize(
        task, optimizer=variant, options=OPTIONS, settings=settings(tmp_path, events=events)
    )
    assert result.status == "finished" and result.stopped_by is None
    assert result.best.prompt.instruction == KEY
    assert result.best.operation == operation and result.best.step >= 1
    assert len(result.best.parents) >= 2  # a child of two or more members
    assert result.test_seed is not None and result.test_best is not None
    assert result.test_seed.mean == 0.0 and result.test_best.mean == 1.0
    assert result.comparison is not None and result.comparison.low > 0

    candidates = lineage(result.run_dir)
    initial = [c for c in candidates if c[3] == 0]
    # the seed, then five members: two paraphrases, two inductions... as scripted
    assert [c[1] for c in initial] == [
        "seed",
        "paraphrase",
        "induce",
        "paraphrase",
        "induce",
        "paraphrase",
    ]
    assert all(c[2] == (result.seed.id,) for c in initial if c[1] == "paraphrase")
    # every malformed initial reply was counted with its reason, none crashed the run
    reasons = Counter(e.reason for e in events.of(ReplyRejected))
    for reason in INIT_REJECTED.values():
        assert reasons[reason] >= 1
    assert result.rejected_replies == sum(reasons.values())
    # one StepFinished for the initial population and each generation
    steps = events.of(StepFinished)
    assert [e.step for e in steps] == [0, 1, 2]
    assert steps[-1].best_score == 1.0
    # the dry-run estimate bounds what the run spent
    e = registry.create(variant, dict(OPTIONS)).estimate(12, 12, 1)
    assert result.search_usage["task"]["calls"] <= e["task"]
    assert result.search_usage["optimizer"]["calls"] <= e["optimizer"]


def test_ga_survivors_are_the_best_of_parents_and_children(tmp_path: Path) -> None:
    task = write_animal_task(tmp_path / "task")
    result = optimize(task, optimizer="evoprompt-ga", options=OPTIONS, settings=settings(tmp_path))
    candidates = stored(result.run_dir)
    by_step = [[c for c in candidates if c["step"] == g] for g in (0, 1, 2)]
    assert all(c["operation"] == "ga" and len(c["parents"]) in (1, 2) for c in by_step[1])
    # generation 1 breeds from the initial population; generation 2 from the six
    # fittest of it and its children (earlier first among equals)
    survivors = sorted(by_step[0] + by_step[1], key=fitness, reverse=True)[:6]
    assert {p for c in by_step[1] for p in c["parents"]} <= {c["id"] for c in by_step[0]}
    assert by_step[2] and {p for c in by_step[2] for p in c["parents"]} <= {
        c["id"] for c in survivors
    }


def test_de_replaces_a_member_only_with_a_better_child(tmp_path: Path) -> None:
    task = write_animal_task(tmp_path / "task")
    result = optimize(task, optimizer="evoprompt-de", options=OPTIONS, settings=settings(tmp_path))
    candidates = stored(result.run_dir)
    by_step = [[c for c in candidates if c["step"] == g] for g in (0, 1, 2)]
    population = by_step[0]
    # each child names its member first (the "basic prompt" it was crossed with)
    for child in by_step[1]:
        j = next(j for j, m in enumerate(population) if m["id"] == child["parents"][0])
        if fitness(child) > fitness(population[j]):
            population[j] = child
    members = [c["parents"][0] for c in by_step[2]]
    assert members and set(members) <= {m["id"] for m in population}
    assert members == [m["id"] for m in population if m["id"] in members]  # in order
    assert any(m["operation"] == "de" for m in population)


@pytest.mark.parametrize("selection", ["tournament", "random"])
def test_ga_selection_modes_run(tmp_path: Path, selection: str) -> None:
    task = write_animal_task(tmp_path / "task")
    result = optimize(
        task,
        optimizer="evoprompt-ga",
        options={**OPTIONS, "selection": selection},
        settings=settings(tmp_path),
    )
    assert result.status == "finished"
    assert result.best.score("dev") is not None


def test_de_with_a_random_donor_runs(tmp_path: Path) -> None:
    task = write_animal_task(tmp_path / "task")
    result = optimize(
        task,
        optimizer="evoprompt-de",
        options={**OPTIONS, "donor": "random"},
        settings=settings(tmp_path),
    )
    assert result.status == "finished" and result.best.score("dev") is not None


@pytest.mark.parametrize("variant", VARIANTS)
def test_budget_end_is_a_clean_stop_that_keeps_the_final_selection(
    tmp_path: Path, variant: str
) -> None:
    task = write_animal_task(tmp_path / "task")
    # the search keeps 9 for the final selection (a third of 27; the whole final takes
    # 2 x 6): the seed (6 calls) and two members (12) fit on the subset beside it, the
    # third does not
    result = optimize(
        task,
        optimizer=variant,
        options=OPTIONS,
        budget={"task_calls": 27},
        settings=settings(tmp_path),
    )
    assert result.status == "budget"
    assert (result.stopped_by or "").startswith(f"budget ({variant}: stopped in step 0")
    assert result.search_usage["task"]["calls"] <= 27
    assert len([c for c in stored(result.run_dir) if "dev-subset" in c["scores"]]) == 3
    # the 9 left pay for the seed and the best on 10 of the 12 dev examples; the best
    # there wins, and is measured on test
    assert result.selection_split == "dev-final"
    finalists = [result.seed, result.best]
    assert all(c.evaluations["dev-final"].n == 10 for c in finalists)
    assert result.best.score("dev-final") == max(c.score("dev-final") or 0.0 for c in finalists)
    assert result.test_best is not None and result.test_best.n == 18
    assert json.loads((result.run_dir / "result.json").read_text())["status"] == "budget"


@pytest.mark.parametrize("variant", VARIANTS)
def test_optimizer_budget_end_is_a_clean_stop(tmp_path: Path, variant: str) -> None:
    task = write_animal_task(tmp_path / "task")
    result = optimize(
        task,
        optimizer=variant,
        options=OPTIONS,
        budget={"optimizer_calls": 12},
        settings=settings(tmp_path),
    )
    # no proposal is asked for without an optimizer call to pay for it: the search
    # stops before, and the final selection runs
    assert result.status == "budget" and (result.stopped_by or "").startswith("budget (")
    assert result.search_usage["optimizer"]["calls"] <= 12
    assert result.selection_split == "dev" and result.seed.score("dev") is not None


JUNK = ["", "<prompt></prompt>", "<prompt>Which animal is it?</prompt>", "<prompt>" + "y" * 3000]


@pytest.mark.parametrize("variant", VARIANTS)
def test_a_model_that_never_gives_a_usable_reply(tmp_path: Path, variant: str) -> None:
    """Empty, tagless-empty, parent-repeating and overlong replies: every one counted,
    the run ends normally with the seed."""

    def junk(request: Any) -> str:
        if "Crossover" in request.messages[-1].content:  # GA and DE
            return "Prompt 1: Which animal is it?"
        return JUNK[request.sample_index % len(JUNK)]

    task = write_animal_task(tmp_path / "task")
    events = Events()
    result = optimize(
        task,
        optimizer=variant,
        options=OPTIONS,
        settings=settings(tmp_path, ScriptedLLM(junk, model_id="junk"), events),
    )
    assert result.status == "finished" and result.best.id == result.seed.id
    # a population of the seed alone: GA crosses it with itself (6 children a
    # generation), DE evolves its one member (1 a generation)
    expected = 10 + 2 * (6 if variant == "evoprompt-ga" else 1)
    assert result.rejected_replies == expected == len(events.of(ReplyRejected))
    assert result.search_usage["optimizer"]["calls"] == expected
    reasons = {e.reason for e in events.of(ReplyRejected)}
    assert reasons == {"empty", "repeats the parent", "too long"}


@pytest.mark.parametrize("variant", VARIANTS)
def test_same_seed_same_candidates_and_lineage(tmp_path: Path, variant: str) -> None:
    task = write_animal_task(tmp_path / "task")
    first = optimize(task, optimizer=variant, options=OPTIONS, settings=settings(tmp_path / "a"))
    second = optimize(task, optimizer=variant, options=OPTIONS, settings=settings(tmp_path / "b"))
    assert lineage(first.run_dir) == lineage(second.run_dir)
    assert first.to_dict()["test"] == second.to_dict()["test"]
    assert first.rejected_replies == second.rejected_replies
    # the search's randomness is the task's seed: another seed, another search
    other = optimize(
        task, optimizer=variant, options=OPTIONS, seed=1, settings=settings(tmp_path / "c")
    )
    assert lineage(other.run_dir) != lineage(first.run_dir)


@pytest.mark.parametrize(
    ("variant", "option"),
    [
        ("evoprompt-ga", {"bogus": 1}),
        ("evoprompt-ga", {"population_size": 1}),
        ("evoprompt-ga", {"selection": "best"}),
        ("evoprompt-ga", {"donor": "best"}),  # a DE option
        ("evoprompt-de", {"selection": "roulette"}),  # a GA option
        ("evoprompt-de", {"donor": "worst"}),
        ("evoprompt-de", {"init": "random"}),
        ("evoprompt-de", {"temperature": "hot"}),
        ("evoprompt-de", {"generations": -1}),
    ],
)
def test_bad_options_are_config_errors(tmp_path: Path, variant: str, option: dict) -> None:
    task = write_animal_task(tmp_path / "task")
    with pytest.raises(ConfigError) as e:
        optimize(task, optimizer=variant, options=option, settings=settings(tmp_path))
    assert next(iter(option)) in str(e.value) and variant in str(e.value)


def test_both_variants_are_registered_with_their_own_options() -> None:
    assert {"evoprompt-ga", "evoprompt-de"} <= set(registry.names())
    ga, de = registry.create("evoprompt-ga"), registry.create("evoprompt-de")
    assert isinstance(ga, EvoPromptGA) and isinstance(de, EvoPromptDE)
    assert ga.config.model_dump()["selection"] == "roulette"
    assert de.config.model_dump()["donor"] == "best"
    for opt in (ga, de):
        for name, field in type(opt.config).model_fields.items():
            assert field.description, name


def test_estimate_bounds_the_work() -> None:
    ga = registry.create("evoprompt-ga", dict(OPTIONS))
    # subset 6 x (seed + 5 members + 2 generations x 6 children) + 2 finalists x 12 dev
    e = ga.estimate(train_size=12, dev_size=12, example_tokens=10)
    assert e["task"] == 6 * (1 + 5 + 12) + 2 * 12
    assert e["optimizer"] == 10 + 12
    assert e["optimizer_max_tokens"] == 128 and e["optimizer_prompt_tokens"] > 0
    de = registry.create("evoprompt-de", dict(OPTIONS))
    assert de.estimate(12, 12, 10)["optimizer_max_tokens"] == 192


# Reading children from replies.

GA_ECHOES = echo_keys(load_template(TEMPLATES["ga"]))
PARENT = "Follow the steps and tell whether you end up where you started."


@pytest.mark.parametrize(
    ("reply", "text"),
    [
        (
            "1. Crossover Prompt: a b\n2. <prompt>Say True or False only.</prompt>",
            "Say True or False only.",
        ),
        # the last tagged segment wins; an unclosed one ends at a blank line
        (
            "<prompt>First idea here.</prompt> <prompt>Second idea here.\n\nOutput: True",
            "Second idea here.",
        ),
        # no tag: the last labelled line
        (
            '1. The original prompt is: "Old one."\n2. The final prompt is: "Count the steps."',
            "Count the steps.",
        ),
        ("Mutated prompt: **Count every step.**", "**Count every step.**"),
        # a labelled line repeating a parent is skipped for an earlier new one
        (f"Prompt 1: Trace the path carefully.\nPrompt 2: {PARENT}", "Trace the path carefully."),
        # a plain reply is the prompt itself
        (
            "Answer True or False: are you back at the start?",
            "Answer True or False: are you back at the start?",
        ),
    ],
)
def test_read_offspring_finds_the_child(reply: str, text: str) -> None:
    parsed = read_offspring(reply, forbidden=(PARENT,), echoes=GA_ECHOES)
    assert parsed.text == text


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        ("", "empty"),
        ("<prompt></prompt>", "empty"),
        (f"<prompt>{PARENT}</prompt>", "repeats the parent"),
        (f"Prompt 2: {PARENT.upper()}", "repeats the parent"),
        ("<prompt>" + "z" * 2500 + "</prompt>", "too long"),
        (
            "1. Crossover the following prompts and generate a new prompt:\n1. Anything",
            "echoes the meta-prompt",
        ),
        ("Crossover the following prompts and generate a new prompt", "echoes the meta-prompt"),
    ],
)
def test_read_offspring_rejects_with_a_reason(reply: str, reason: str) -> None:
    parsed = read_offspring(reply, forbidden=(PARENT,), echoes=GA_ECHOES)
    assert parsed.text is None and parsed.reason == reason


def test_echo_keys_are_the_templates_own_sentences() -> None:
    de = echo_keys(load_template(TEMPLATES["de"]))
    assert "randomly mutate the different parts" in de
    # placeholders and short labels ("Prompt 1:") are not echoes
    assert all("prompt0" not in k and k != "prompt 1" for k in de)


@pytest.mark.embedded
def test_ga_end_to_end_on_the_embedded_model(tmp_path: Path, embedded: LLM, repo: Path) -> None:
    task = tiny_navigate(repo, train=10, dev=8, test=12, max_tokens=16)
    options = {
        "population_size": 3,
        "generations": 1,
        "init_samples": 3,
        "eval_examples": 4,
        "final_k": 2,
    }
    run_settings = embedded_settings(tmp_path, embedded)
    result = optimize(
        task,
        optimizer="evoprompt-ga",
        options=options,
        budget={"task_calls": 60},
        settings=run_settings,
    )
    assert result.status in ("finished", "budget")
    assert result.search_usage["task"]["calls"] <= 60
    assert result.search_usage["optimizer"]["calls"] <= 3 + 3
    recorded = json.loads((result.run_dir / "result.json").read_text())
    assert recorded["best_candidate"] == result.best.id
    assert recorded["test"]["seed"]["n"] == 12
    assert result.best.score("dev") is not None
    print(
        f"\nseed dev {result.seed.score('dev')} test {recorded['test']['seed']['mean']}; "
        f"best dev {result.best.score('dev')} test {recorded['test']['best']['mean']} "
        f"({result.best.operation}: {result.best.prompt.instruction!r}); "
        f"rejected {result.rejected_replies}, candidates {result.candidates}"
    )
