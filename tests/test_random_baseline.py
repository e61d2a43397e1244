"""The random-search floor on scripted models: random separators and blind paraphrases
of the seed, selected on dev. It finds a key a paraphrase happens to hit, selects a
separator the task model happens to like, keeps room for the final selection, stops
cleanly on the budget, survives unusable replies and is deterministic."""

from __future__ import annotations

import itertools
import random
import re
from pathlib import Path

import pytest
from scripted import (
    KEY,
    PAIRS,
    embedded_settings,
    optimizer_model,
    task_model,
    tiny_navigate,
    write_animal_task,
)

from promptascent import RunSettings, optimize
from promptascent.errors import ConfigError
from promptascent.llm.embedded import EmbeddedLLM
from promptascent.llm.scripted import ScriptedLLM
from promptascent.llm.types import CompletionRequest
from promptascent.optimizers.random_baseline import random_separator
from promptascent.prompts.prompt import Prompt
from promptascent.store.run_store import RunStore

SEED_INSTRUCTION = "Which animal is it?"
RANDOM = {"separators": 4, "paraphrases": 3, "eval_examples": 6, "final_k": 2, "max_tokens": 32}


def settings(
    tmp_path: Path, optimizer: ScriptedLLM | None = None, task: ScriptedLLM | None = None
) -> RunSettings:
    return RunSettings(
        runs_dir=tmp_path / "runs",
        cache_dir=tmp_path / "cache",
        backends={
            "task": task or task_model(),
            "optimizer": optimizer or optimizer_model(),
            "judge": task_model(),
        },
    )


def candidates(run_dir: Path) -> list[dict]:
    store = RunStore.open_existing(run_dir)
    try:
        return store.candidates()
    finally:
        store.close()


def test_a_paraphrase_that_hits_the_key_wins(tmp_path: Path) -> None:
    task = write_animal_task(tmp_path / "task")
    optimizer = optimizer_model()
    result = optimize(
        task, optimizer="random", options=RANDOM, settings=settings(tmp_path, optimizer)
    )
    assert result.status == "finished"
    assert result.best.prompt.instruction == KEY and result.best.operation == "paraphrase"
    assert result.best.parents == (result.seed.id,)
    assert result.test_seed is not None and result.test_best is not None
    assert result.test_seed.mean == 0.0 and result.test_best.mean == 1.0
    assert result.rejected_replies == 1  # the empty reply
    # the paraphrase meta-prompt shows the seed and nothing about scores or data
    meta = optimizer.requests[0].messages[-1].content
    assert SEED_INSTRUCTION in meta and "score" not in meta.lower() and "cat" not in meta


@pytest.mark.parametrize("position", ["after_input", "after_instruction"])
def test_separators_are_the_seed_plus_a_random_string(tmp_path: Path, position: str) -> None:
    task = write_animal_task(tmp_path / "task")
    options = {**RANDOM, "separators": 6, "paraphrases": 0, "separator_position": position}
    result = optimize(task, optimizer="random", options=options, settings=settings(tmp_path))
    seps = [c for c in candidates(result.run_dir) if c["operation"] == "separator"]
    assert len(seps) == 6
    for c in seps:
        prompt = c["prompt"]
        if position == "after_input":  # the separator ends the user turn
            assert prompt["instruction"] == SEED_INSTRUCTION
            line = prompt["output_format"]
        else:
            head, line = prompt["instruction"].split("\n")
            assert head == SEED_INSTRUCTION and prompt["output_format"] is None
        assert line.strip() and 1 <= len(line.split()) <= 4
        assert not set("{}\"'\\") & set(line)
        assert c["parents"] == [result.seed.id] and "dev-subset" in c["scores"]
    user = Prompt.from_dict(seps[0]["prompt"]).render({"input": "cat"})[-1].content
    if position == "after_input":
        assert user.startswith(SEED_INSTRUCTION + "\n\ncat\n\n")
    else:
        assert user.endswith("\n\ncat") and user.count("\n") == 3


def test_a_kept_output_format_moves_the_separator_after_the_instruction(tmp_path: Path) -> None:
    task = write_animal_task(tmp_path / "task", extra="constraints: {keep_output_format: true}\n")
    options = {**RANDOM, "separators": 3, "paraphrases": 0}
    result = optimize(task, optimizer="random", options=options, settings=settings(tmp_path))
    seps = [c for c in candidates(result.run_dir) if c["operation"] == "separator"]
    assert len(seps) == 3
    assert all(c["prompt"]["output_format"] is None for c in seps)
    assert all(c["prompt"]["instruction"].startswith(SEED_INSTRUCTION + "\n") for c in seps)


def test_selection_finds_the_separator_the_task_model_likes(tmp_path: Path) -> None:
    def likes_digits(request: CompletionRequest) -> str:
        """Right when the prompt holds a digit (an arbitrary taste)."""
        user = request.messages[-1].content
        animal = user.split("\n\n")[1].strip()
        return PAIRS[animal] if re.search(r"\d", user) else f"I think it is a {animal}"

    task = write_animal_task(tmp_path / "task")
    options = {**RANDOM, "separators": 8, "paraphrases": 0}
    s = settings(tmp_path, task=ScriptedLLM(likes_digits, model_id="digits"))
    result = optimize(task, optimizer="random", options=options, settings=s)
    assert result.best.operation == "separator"
    assert re.search(r"\d", result.best.prompt.output_format or "")
    assert (result.best.score("dev") or 0) == 1.0 and result.seed.score("dev") == 0.0


def test_random_separator_is_seeded_and_bounded() -> None:
    vocab = ["alpha", "beta", "gamma"]
    a = [random_separator(random.Random(3), vocab, 4) for _ in range(5)]
    b = [random_separator(random.Random(3), vocab, 4) for _ in range(5)]
    assert a == b
    rng = random.Random(0)
    many = [random_separator(rng, vocab, 4) for _ in range(200)]
    assert len(set(many)) > 150
    assert all(1 <= len(s.split()) <= 4 and "{" not in s and "}" not in s for s in many)
    assert any(p in vocab for s in many for p in s.split())
    assert all(random_separator(rng, [], 2) for _ in range(20))


def test_random_keeps_room_for_the_final_selection(tmp_path: Path) -> None:
    task = write_animal_task(tmp_path / "task")
    # the whole final takes 2 x (12 - 6 reused) = 12; the search keeps a third of 26 (8)
    # for it: after the seed (6), two separators (6 each) fit beside it, not three
    result = optimize(
        task,
        optimizer="random",
        options=RANDOM,
        budget={"task_calls": 26},
        settings=settings(tmp_path),
    )
    assert result.status == "budget" and result.search_usage["task"]["calls"] <= 26
    scored = [c for c in candidates(result.run_dir) if "dev-subset" in c["scores"]]
    assert len(scored) == 3  # the seed and two separators
    # the 8 left pay for the seed and the best on 10 of the 12 dev examples
    assert result.selection_split == "dev-final" and result.seed.score("dev-final") is not None
    assert result.best.evaluations["dev-final"].n == 10
    store = RunStore.open_existing(result.run_dir)
    try:
        assert any(e["kind"] == "SearchStopped" for e in store.events())
    finally:
        store.close()


def test_random_stops_cleanly_when_a_token_budget_ends(tmp_path: Path) -> None:
    task = write_animal_task(tmp_path / "task")
    result = optimize(
        task,
        optimizer="random",
        options=RANDOM,
        budget={"optimizer_tokens": 60},
        settings=settings(tmp_path),
    )
    assert result.status == "budget" and result.stopped_by == "optimizer_tokens"
    assert result.search_usage["optimizer"]["tokens"] <= 60
    assert result.best.id == result.seed.id
    assert result.test_best is not None and result.test_best.n == 18


def test_random_survives_unusable_replies(tmp_path: Path) -> None:
    task = write_animal_task(tmp_path / "task")
    replies = ["", "<prompt></prompt>", "y" * 3000, f"<prompt>{SEED_INSTRUCTION}</prompt>", "no"]
    calls = itertools.count()
    junk = ScriptedLLM(lambda r: replies[next(calls) % len(replies)], model_id="junk")
    options = {**RANDOM, "separators": 0, "paraphrases": 5}
    result = optimize(task, optimizer="random", options=options, settings=settings(tmp_path, junk))
    assert result.status == "finished" and result.best.id == result.seed.id
    assert result.rejected_replies == 5 and result.candidates == 1


def test_duplicate_paraphrases_are_counted(tmp_path: Path) -> None:
    task = write_animal_task(tmp_path / "task")
    same = ScriptedLLM(lambda r: "<prompt>Name the animal.</prompt>", model_id="same")
    options = {**RANDOM, "separators": 0, "paraphrases": 3}
    result = optimize(task, optimizer="random", options=options, settings=settings(tmp_path, same))
    assert result.candidates == 2 and result.rejected_replies == 2


def test_same_seed_same_candidates(tmp_path: Path) -> None:
    task = write_animal_task(tmp_path / "task")
    first = optimize(task, optimizer="random", options=RANDOM, settings=settings(tmp_path / "a"))
    second = optimize(task, optimizer="random", options=RANDOM, settings=settings(tmp_path / "b"))

    def lineage(run_dir: Path) -> list[tuple[str, str, tuple[str, ...]]]:
        return [(c["id"], c["operation"], tuple(c["parents"])) for c in candidates(run_dir)]

    assert lineage(first.run_dir) == lineage(second.run_dir)
    other = optimize(
        task, optimizer="random", options=RANDOM, seed=1, settings=settings(tmp_path / "c")
    )
    assert lineage(other.run_dir) != lineage(first.run_dir)


@pytest.mark.parametrize(
    "option",
    [
        {"bogus": 1},
        {"separators": -1},
        {"separator_tokens": 0},
        {"final_k": 0},
        {"separator_position": "middle"},
    ],
)
def test_bad_options_are_config_errors(tmp_path: Path, option: dict) -> None:
    task = write_animal_task(tmp_path / "task")
    with pytest.raises(ConfigError) as e:
        optimize(task, optimizer="random", options=option, settings=settings(tmp_path))
    assert next(iter(option)) in str(e.value)


@pytest.mark.embedded
def test_random_on_the_embedded_model(tmp_path: Path, embedded: EmbeddedLLM, repo: Path) -> None:
    task = tiny_navigate(repo)
    options = {"separators": 2, "paraphrases": 2, "eval_examples": 3, "final_k": 2}
    s = embedded_settings(tmp_path, embedded)
    result = optimize(
        task, optimizer="random", options=options, budget={"task_calls": 30}, settings=s
    )
    assert result.status in ("finished", "budget")
    assert result.search_usage["task"]["calls"] <= 30
    assert (result.run_dir / "result.json").is_file()
    assert result.seed.score("dev") is not None and result.best.score("dev") is not None
    print(
        f"\nrandom embedded: seed dev {result.seed.score('dev'):.2f}, "
        f"best dev {result.best.score('dev'):.2f}, best: {result.best.prompt.instruction!r}"
    )
