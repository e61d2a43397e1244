"""GEPA on scripted models: it finds the hidden key instruction within budget, by
generation and by likelihood; the reflection shows traces with the metric's feedback;
a child is kept only when it beats its parent on the minibatch; malformed replies are
rejected proposals, never a crash; the same seed gives the same run; no budget is
exceeded; a killed run resumes to the same result; the Pareto front over examples and
the merge as unit tests. One end-to-end run on the embedded model."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
from scripted import (
    KEY,
    PAIRS,
    PET_KEY,
    PET_SEED,
    PETS,
    pet_proposer,
    pet_responder,
    pet_settings,
    stored_candidates,
    stored_events,
    write_animal_task,
    write_pet_task,
)
from test_pmpo import pet_loglik

from promptascent import RunSettings, optimize
from promptascent.errors import ConfigError
from promptascent.llm.embedded import EmbeddedLLM
from promptascent.llm.scripted import ScriptedLLM
from promptascent.llm.types import CompletionRequest
from promptascent.optimizers import registry
from promptascent.search import frontier

REPO = Path(__file__).resolve().parents[1]


def test_gepa_finds_the_key_by_reflection_within_budget(tmp_path: Path) -> None:
    task = write_pet_task(tmp_path / "task")
    proposer = pet_proposer()
    result = optimize(
        task,
        optimizer="gepa",
        budget={"task_calls": 300},
        settings=pet_settings(tmp_path, proposer),
    )
    assert result.best.prompt.instruction == PET_KEY
    assert result.best.operation == "reflect" and result.best.parents == (result.seed.id,)
    assert result.search_usage["task"]["calls"] <= 300
    assert result.test_best is not None and result.test_best.mean == 1.0
    # the key instruction was scored on the Pareto set, then on the whole dev split
    row = next(c for c in stored_candidates(result.run_dir) if c["id"] == result.best.id)
    assert row["scores"]["dev-subset"]["mean"] == 1.0 and row["scores"]["dev"]["n"] == 63


def test_the_reflection_shows_input_output_expected_and_the_metrics_feedback(
    tmp_path: Path,
) -> None:
    task = write_pet_task(tmp_path / "task")
    proposer = pet_proposer()
    optimize(
        task,
        optimizer="gepa",
        budget={"task_calls": 150},
        settings=pet_settings(tmp_path, proposer),
    )
    first = proposer.requests[0].messages[-1].content
    assert f'"{PET_SEED}"' in first
    # the seed answers "maybe": choice_accuracy's feedback says it named no choice
    assert "Output: maybe" in first
    assert "Feedback: expected " in first and "the answer was not one of: yes, no" in first
    assert first.count("Input: ") == 3  # the minibatch (3, paper and gepa)


def test_a_child_no_better_on_the_minibatch_is_not_scored_on_the_pareto_set(
    tmp_path: Path,
) -> None:
    """A middling instruction beats the seed (which names no answer); one that names
    the animal back scores 0 like the seed: it is run on the minibatch only."""

    def respond(request: CompletionRequest) -> str:
        return f"<prompt>Repeat the animal, try {request.seed}.</prompt>"

    def task_reply(request: CompletionRequest) -> str:
        user = request.messages[-1].content
        return "maybe" if "Repeat the animal" in user else pet_responder(request)

    task = write_pet_task(tmp_path / "task")
    result = optimize(
        task,
        optimizer="gepa",
        options={"max_iterations": 4},
        settings=pet_settings(
            tmp_path,
            ScriptedLLM(respond, model_id="repeater"),
            ScriptedLLM(task_reply, model_id="pet-task-2"),
        ),
    )
    rows = [c for c in stored_candidates(result.run_dir) if c["id"] != result.seed.id]
    assert len(rows) == 4
    for c in rows:
        assert all(split.startswith("train-reflect-") for split in c["scores"]), c["scores"]
    assert result.best.id == result.seed.id


def test_gepa_by_likelihood_finds_the_key(tmp_path: Path) -> None:
    task = write_pet_task(tmp_path / "task")
    task.write_text(task.read_text().replace("evaluation: {", "evaluation: {scoring: likelihood, "))
    scorer = ScriptedLLM(lambda r: "unused", loglik_fn=pet_loglik)
    proposer = pet_proposer()
    result = optimize(
        task,
        optimizer="gepa",
        budget={"task_calls": 200},
        settings=pet_settings(tmp_path, proposer, scorer),
    )
    assert result.search_usage["task"]["calls"] <= 200
    assert result.best.prompt.instruction == PET_KEY
    # the likelihood feedback names the expected answer and its probability
    first = proposer.requests[0].messages[-1].content
    assert "Feedback: expected " in first and "probability" in first


def test_malformed_replies_are_rejected_proposals_and_never_crash(tmp_path: Path) -> None:
    replies = [
        "",
        "<prompt></prompt>",
        "<prompt>Hi</prompt>",  # too short
        f"<prompt>{PET_SEED}</prompt>",  # repeats the parent
        "abcdefghijklmnopqrstuvwxyz " * 600,  # cut at 160 words: still too long
        "<prompt>Use <prompt> tags to answer.</prompt>",
    ]

    def respond(request: CompletionRequest) -> str:
        return replies[request.seed % len(replies)]

    task = write_pet_task(tmp_path / "task")
    result = optimize(
        task,
        optimizer="gepa",
        options={"max_iterations": 12},
        settings=pet_settings(tmp_path, ScriptedLLM(respond, model_id="junk")),
    )
    assert result.status == "finished"
    assert result.best.id == result.seed.id
    assert result.rejected_replies == 12 == result.search_usage["optimizer"]["calls"]
    reasons = {e["reason"] for e in stored_events(result.run_dir, "ReplyRejected")}
    assert reasons <= {
        "empty",
        "too short",
        "too long",
        "repeats the parent",
        "contains template tags",
    }
    assert len(reasons) >= 3


def lineage(run_dir: Path) -> list[tuple[Any, ...]]:
    return [
        (c["id"], tuple(c["parents"]), c["operation"], c["step"])
        for c in stored_candidates(run_dir)
    ]


def test_same_seed_same_run(tmp_path: Path) -> None:
    task = write_pet_task(tmp_path / "task")
    opts = {"use_merge": True, "max_iterations": 10}
    first = optimize(task, optimizer="gepa", options=opts, settings=pet_settings(tmp_path / "a"))
    second = optimize(task, optimizer="gepa", options=opts, settings=pet_settings(tmp_path / "b"))
    assert lineage(first.run_dir) == lineage(second.run_dir)
    assert first.to_dict()["test"] == second.to_dict()["test"]
    assert first.search_usage["task"]["calls"] == second.search_usage["task"]["calls"]


@pytest.mark.parametrize(
    "budget",
    [
        {"task_calls": 40},
        {"task_calls": 100},
        {"task_calls": 250},
        {"optimizer_calls": 1},
        {"optimizer_calls": 3, "task_calls": 500},
    ],
)
def test_no_budget_is_ever_exceeded(tmp_path: Path, budget: dict[str, int]) -> None:
    task = write_pet_task(tmp_path / "task")
    result = optimize(
        task,
        optimizer="gepa",
        options={"use_merge": True},
        budget=budget,
        settings=pet_settings(tmp_path),
    )
    assert result.status in ("finished", "budget")
    if "task_calls" in budget:
        assert result.search_usage["task"]["calls"] <= budget["task_calls"]
    if "optimizer_calls" in budget:
        assert result.search_usage["optimizer"]["calls"] <= budget["optimizer_calls"]


def test_gepa_under_k_fold_selection_finds_the_key_within_budget(tmp_path: Path) -> None:
    task = write_pet_task(tmp_path / "task")
    text = task.read_text().replace("evaluation: {", "evaluation: {folds: 2, ")
    task.write_text(text + "constraints: {max_prompt_tokens: 40}\n")
    result = optimize(
        task, optimizer="gepa", budget={"task_calls": 300}, settings=pet_settings(tmp_path)
    )
    assert result.selection_split == "cv"
    assert result.search_usage["task"]["calls"] <= 300
    assert result.best.prompt.instruction == PET_KEY


# Merge: two children each right on half of the animals, merged into the key.

CATS = "Mind the pets."
HORSES = "Mind the farm animals."


def merge_task_reply(request: CompletionRequest) -> str:
    user = request.messages[-1].content
    animal = next((x.strip() for x in reversed(user.splitlines()) if x.strip() in PAIRS), "?")
    right = "yes" if animal in PETS else "no"
    if PET_KEY in user:
        return right
    if CATS in user:
        return right if animal in PETS else "maybe"
    if HORSES in user:
        return right if animal not in PETS else "maybe"
    # the seed is right on horses alone: on the front until HORSES is found
    return right if animal == "horse" else "maybe"


def merge_proposer(request: CompletionRequest) -> str:
    text = request.messages[-1].content
    if "Instruction A" in text:
        return f"<prompt>{PET_KEY}</prompt>"
    if f'"{PET_SEED}"' in text:
        return f"<prompt>{CATS if request.seed % 2 else HORSES}</prompt>"
    return f"<prompt>Mind the animal number {request.seed}.</prompt>"


def test_merge_joins_two_complementary_front_candidates_into_the_key(tmp_path: Path) -> None:
    task = write_pet_task(tmp_path / "task")
    result = optimize(
        task,
        optimizer="gepa",
        options={"use_merge": True, "max_iterations": 12},
        settings=pet_settings(
            tmp_path,
            ScriptedLLM(merge_proposer, model_id="merger"),
            ScriptedLLM(merge_task_reply, model_id="halves"),
        ),
    )
    assert result.best.prompt.instruction == PET_KEY
    assert result.best.operation == "merge"
    rows = {c["id"]: c for c in stored_candidates(result.run_dir)}
    parents = [rows[p]["prompt"]["instruction"] for p in result.best.parents]
    assert sorted(parents) == sorted([CATS, HORSES])
    # it was checked on the examples where the parents differ, then on the Pareto set
    splits = rows[result.best.id]["scores"]
    check = next(s for s in splits if s.startswith("dev-merge-"))
    assert splits[check]["n"] == 5 and splits[check]["mean"] == 1.0
    assert splits["dev-subset"]["mean"] == 1.0


def test_without_merge_no_merge_is_tried(tmp_path: Path) -> None:
    task = write_pet_task(tmp_path / "task")
    proposer = ScriptedLLM(merge_proposer, model_id="merger")
    result = optimize(
        task,
        optimizer="gepa",
        options={"max_iterations": 12},
        settings=pet_settings(tmp_path, proposer, ScriptedLLM(merge_task_reply, model_id="halves")),
    )
    assert all("Instruction A" not in r.messages[-1].content for r in proposer.requests)
    assert result.best.operation != "merge"


# The Pareto front over examples.


def test_each_examples_front_holds_every_candidate_with_its_highest_score() -> None:
    scores = {"a": {"x": 1.0, "y": 0.0}, "b": {"x": 1.0, "y": 0.5}, "c": {"x": 0.0, "y": 0.5}}
    assert frontier.example_fronts(scores) == {"x": ["a", "b"], "y": ["b", "c"]}


def test_a_candidate_whose_every_win_another_shares_is_dominated() -> None:
    # b is best everywhere a is; c alone is best on z
    scores = {
        "a": {"x": 1.0, "y": 0.0, "z": 0.0},
        "b": {"x": 1.0, "y": 1.0, "z": 0.0},
        "c": {"x": 0.0, "y": 0.0, "z": 1.0},
    }
    aggregate = {"a": 1 / 3, "b": 2 / 3, "c": 1 / 3}
    fronts = frontier.example_fronts(scores)
    assert frontier.dominators(fronts, aggregate) == ["b", "c"]
    assert frontier.front_weights(scores, aggregate) == {"b": 2, "c": 1}


def test_of_two_equal_candidates_the_one_with_the_higher_aggregate_stays() -> None:
    scores = {"a": {"x": 1.0}, "b": {"x": 1.0}}
    # the lower aggregate is removed first; ties keep the order
    assert frontier.dominators(frontier.example_fronts(scores), {"a": 0.2, "b": 0.9}) == ["b"]
    assert frontier.dominators(frontier.example_fronts(scores), {"a": 0.5, "b": 0.5}) == ["b"]


def test_parents_are_drawn_in_proportion_to_the_examples_they_win() -> None:
    rng = random.Random(0)
    draws = [frontier.sample_parent({"a": 3, "b": 1}, rng) for _ in range(4000)]
    assert 0.7 < draws.count("a") / 4000 < 0.8
    assert frontier.sample_parent({}, rng) is None
    again = random.Random(0)
    assert [frontier.sample_parent({"a": 3, "b": 1}, again) for _ in range(4000)] == draws


def test_wins_counts_the_examples_each_does_better_on() -> None:
    scores = {"a": {"x": 1.0, "y": 0.0, "z": 1.0}, "b": {"x": 0.0, "y": 1.0, "z": 1.0}}
    assert frontier.wins(scores, "a", "b") == (1, 1)


# Options.


def test_gepa_is_registered_with_the_defaults_of_gepa() -> None:
    gepa = registry.create("gepa")
    c = gepa.config
    assert "gepa" in registry.names()
    assert (c.minibatch_size, c.candidate_selection, c.skip_perfect_minibatch) == (
        3,
        "pareto",
        True,
    )
    assert (c.use_merge, c.max_merge_invocations, c.merge_subsample) == (False, 5, 5)


@pytest.mark.parametrize(
    "option",
    [
        {"bogus": 1},
        {"minibatch_size": 0},
        {"candidate_selection": "epsilon"},
        {"temperature": "hot"},
        {"use_merge": "sometimes"},
    ],
)
def test_bad_options_are_config_errors(tmp_path: Path, option: dict[str, Any]) -> None:
    task = write_animal_task(tmp_path / "task")
    with pytest.raises(ConfigError) as e:
        optimize(task, optimizer="gepa", options=option, settings=pet_settings(tmp_path))
    assert next(iter(option)) in str(e.value)


def test_best_selection_always_reflects_on_the_best_candidate(tmp_path: Path) -> None:
    task = write_pet_task(tmp_path / "task")
    proposer = pet_proposer()
    result = optimize(
        task,
        optimizer="gepa",
        options={"candidate_selection": "best"},
        budget={"task_calls": 300},
        settings=pet_settings(tmp_path, proposer),
    )
    assert result.best.prompt.instruction == PET_KEY


# The real embedded model, end to end, on a few navigate examples.


@pytest.mark.embedded
def test_gepa_on_the_embedded_model(tmp_path: Path, embedded: EmbeddedLLM) -> None:
    task = tmp_path / "tiny.yaml"
    task.write_text(
        "name: tiny-navigate\n"
        f"data:\n  folder: {REPO / 'examples/data/navigate'}\n"
        "  limits: {train: 6, dev: 4, test: 6}\n"
        "task_params: {max_tokens: 12}\n"
        "evaluation: {concurrency: 1}\n"
        "seed: 0\n",
        encoding="utf-8",
    )
    budget: dict[str, float] = {"task_calls": 40, "optimizer_calls": 4}
    s = RunSettings(
        runs_dir=tmp_path / "runs",
        cache_dir=tmp_path / "cache",
        backends={"task": embedded, "optimizer": embedded, "judge": embedded},
    )
    result = optimize(task, optimizer="gepa", options={"max_tokens": 64}, budget=budget, settings=s)
    assert result.status in ("finished", "budget")
    assert result.search_usage["task"]["calls"] <= 40
    assert result.search_usage["optimizer"]["calls"] <= 4
    seed_dev, best_dev = result.seed.score("dev"), result.best.score("dev")
    assert seed_dev is not None and best_dev is not None and best_dev >= seed_dev
    assert result.test_seed is not None and result.test_seed.n == 6
    print(
        f"\nseed dev {seed_dev} test {result.test_seed.mean}; best dev {best_dev} "
        f"test {result.test_best.mean if result.test_best else None}; "
        f"candidates {result.candidates}, rejected {result.rejected_replies}, "
        f"best: {result.best.prompt.instruction!r}"
    )


# Killed and resumed (the CLI in a subprocess, as tests/test_kill_resume.py does).

GEPA_MODELS = """\
models:
  task: {backend: scripted, model: "scripted_cli:task"}
  optimizer: {backend: scripted, model: "scripted_cli:reflector"}
  judge: {backend: scripted, model: "scripted_cli:task"}
optimizer: {name: gepa, eval_examples: 6, max_iterations: 8, final_k: 2, use_merge: true}
"""


def test_a_killed_gepa_run_resumes_to_the_same_result(tmp_path: Path) -> None:
    from test_kill_resume import check_kills_resume_to_the_same_result

    task = write_animal_task(tmp_path / "task", extra=GEPA_MODELS)
    check_kills_resume_to_the_same_result(tmp_path, task, KEY)


def test_a_merge_is_checked_on_the_examples_each_parent_wins_in_turn_then_ties() -> None:
    from promptascent.data.example import Example
    from promptascent.optimizers.gepa import balanced_subsample

    subset = [Example(f"e{i}", "x", target="y") for i in range(8)]
    a = {"e0": 1.0, "e1": 1.0, "e2": 1.0, "e3": 0.0, "e4": 0.0, "e5": 0.0, "e6": 0.0}
    b = {"e0": 0.0, "e1": 0.0, "e2": 0.0, "e3": 1.0, "e4": 0.0, "e5": 0.0, "e6": 0.0}
    got = [ex.id for ex in balanced_subsample(subset, a, b, 5, random.Random(0))]
    assert len(got) == 5
    # a wins e0-e2, b wins e3 alone: b's one win comes second; then a's, then ties;
    # e7 (not scored by both) never
    assert got[1] == "e3" and {got[0], got[2]} <= {"e0", "e1", "e2"}
    assert set(got[4:]) <= {"e4", "e5", "e6"} and "e7" not in got
    assert balanced_subsample(subset, a, b, 5, random.Random(0)) == balanced_subsample(
        subset, a, b, 5, random.Random(0)
    )


def test_a_proposal_the_constraints_refuse_is_counted_once(tmp_path: Path) -> None:
    # every reflection proposes an instruction far over the length limit
    long = "Think about the animal. " * 30
    proposer = ScriptedLLM(lambda _request: f"<prompt>{long}</prompt>", model_id="long")
    task = write_pet_task(tmp_path / "task")
    task.write_text(task.read_text() + "constraints: {max_prompt_tokens: 40}\n")
    result = optimize(
        task,
        optimizer="gepa",
        budget={"task_calls": 150, "optimizer_calls": 4},
        settings=pet_settings(tmp_path, proposer),
    )
    reasons = [e["reason"] for e in stored_events(result.run_dir, "ReplyRejected")]
    assert len(proposer.requests) == 4 and result.best.id == result.seed.id
    # each of the four replies is one rejection, for the constraint, never as a duplicate
    assert len(reasons) == 4 == result.rejected_replies
    assert all(r.startswith("constraint:") for r in reasons), reasons
