"""MIPROv2 on scripted models: it finds the hidden key instruction within budget, by
generation and by likelihood and under k-fold selection; proposals are grounded in a
data summary, the task, bootstrapped demos and a tip; demo sets are built as DSPy's;
the best combination by mean minibatch score gets the full evaluation; malformed
replies are rejected proposals, never a crash; the same seed gives the same trials;
no budget is exceeded; a killed run resumes to the same result. Unit tests of the
demo sets, the proposal's demos, the full evaluation's choice, the summary parsing
and the seeded TPE search. One end-to-end run on the embedded model."""

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
    pet_dataset,
    pet_proposals,
    pet_proposer,
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
from promptascent.optimizers.mipro import (
    TIPS,
    DemoSet,
    TrialSearch,
    best_mean,
    build_demo_sets,
    parse_summary,
    shown_demos,
)
from promptascent.prompts.prompt import Demo

REPO = Path(__file__).resolve().parents[1]


def trials(run_dir: Path) -> list[tuple[int, str]]:
    """(trial, candidate note) for every minibatch trial, in trial order."""
    out = []
    for c in stored_candidates(run_dir):
        for split in c["scores"]:
            if split.startswith("dev-trial-"):
                out.append((int(split.rsplit("-", 1)[1]), c["note"] or "seed"))
    return sorted(out)


def half_right(request: CompletionRequest) -> str:
    """A task model right with PET_KEY, and with any other prompt right on cat, cow
    and fox only (the seed too): the seed's outputs there become bootstrapped demos."""
    user = request.messages[-1].content
    animal = next((x.strip() for x in reversed(user.splitlines()) if x.strip() in PAIRS), "?")
    right = "yes" if animal in PETS else "no"
    if PET_KEY in user or animal in ("cat", "cow", "fox"):
        return right
    return {"yes": "no", "no": "yes"}[right]


def test_mipro_finds_the_key_within_budget(tmp_path: Path) -> None:
    task = write_pet_task(tmp_path / "task")
    result = optimize(
        task, optimizer="mipro", budget={"task_calls": 300}, settings=pet_settings(tmp_path)
    )
    assert result.best.prompt.instruction == PET_KEY
    assert result.best.operation == "trial" and result.best.parents == (result.seed.id,)
    assert result.search_usage["task"]["calls"] <= 300
    assert result.test_best is not None and result.test_best.mean == 1.0
    # the key was tried on minibatches, fully evaluated on the subset, then on dev
    row = next(c for c in stored_candidates(result.run_dir) if c["id"] == result.best.id)
    assert any(s.startswith("dev-trial-") for s in row["scores"])
    assert row["scores"]["dev-subset"]["mean"] == 1.0 and row["scores"]["dev"]["n"] == 63


def test_proposals_see_the_data_summary_the_task_bootstrapped_demos_and_a_tip(
    tmp_path: Path,
) -> None:
    task = write_pet_task(tmp_path / "task")
    task.write_text(task.read_text() + "description: Tell pets from farm and wild animals.\n")
    summary = "The inputs are single animal names and the answers are yes or no."
    proposals = pet_proposals()

    def respond(request: CompletionRequest) -> str:
        if "Here are examples from a dataset" in request.messages[-1].content:
            return f"Sure! <summary>{summary}</summary>"
        return proposals(request)

    proposer = ScriptedLLM(respond, model_id="grounded")
    optimize(
        task,
        optimizer="mipro",
        options={"num_trials": 2},
        settings=pet_settings(tmp_path, proposer, ScriptedLLM(half_right, model_id="half")),
    )
    asked = [r.messages[-1].content for r in proposer.requests]
    # the summary is asked first, on 10 train examples with their answers
    assert asked[0].count("Input: ") == 10 and "Answer: yes" in asked[0]
    proposals_asked = asked[1:]
    assert len(proposals_asked) == 3  # num_candidates: 3 with demos (DSPy light)
    for text in proposals_asked:
        assert f"Dataset description: {summary}" in text
        assert "The task: Tell pets from farm and wild animals." in text
        assert f'Basic instruction: "{PET_SEED}"' in text
    # bootstrapped demos: the seed's own right answers (on cat, cow and fox only)
    shown = [t for t in proposals_asked if "Example inputs and outputs" in t]
    assert shown
    for text in shown:
        inputs = [
            line[len("Input: ") :] for line in text.splitlines() if line.startswith("Input: ")
        ]
        assert 1 <= len(inputs) <= 3 and set(inputs) <= {"cat", "cow", "fox"}
    tips = [t for t in TIPS.values() if t]
    assert any(f"Tip: {tip}" in text for text in proposals_asked for tip in tips)


def test_a_failed_data_summary_is_rejected_and_proposals_go_on_without_it(
    tmp_path: Path,
) -> None:
    proposals = pet_proposals()

    def respond(request: CompletionRequest) -> str:
        if "Here are examples from a dataset" in request.messages[-1].content:
            return "<summary></summary>"
        return proposals(request)

    proposer = ScriptedLLM(respond, model_id="no-summary")
    task = write_pet_task(tmp_path / "task")
    result = optimize(
        task,
        optimizer="mipro",
        budget={"task_calls": 300},
        settings=pet_settings(tmp_path, proposer),
    )
    reasons = [e["reason"] for e in stored_events(result.run_dir, "ReplyRejected")]
    assert "data summary: empty" in reasons
    assert all("Dataset description" not in r.messages[-1].content for r in proposer.requests)
    assert result.best.prompt.instruction == PET_KEY


def test_the_best_combination_by_mean_minibatch_score_gets_the_full_evaluation(
    tmp_path: Path,
) -> None:
    task = write_pet_task(tmp_path / "task")
    result = optimize(
        task,
        optimizer="mipro",
        options={"num_trials": 5, "minibatch_full_eval_steps": 5},
        settings=pet_settings(tmp_path),
    )
    assert len(trials(result.run_dir)) == 5
    # the seed (a combination too) was fully evaluated first: it is not again
    rows = [c for c in stored_candidates(result.run_dir) if c["id"] != result.seed.id]

    def trial_mean(c: dict[str, Any]) -> float:
        values = [v["mean"] for s, v in c["scores"].items() if s.startswith("dev-trial-")]
        return sum(values) / len(values)

    full = [c for c in rows if "dev-subset" in c["scores"]]
    assert len(full) == 1  # five trials, one full evaluation
    assert trial_mean(full[0]) == max(trial_mean(c) for c in rows)
    assert full[0]["scores"]["dev-subset"]["n"] == 20


def test_a_full_evaluation_follows_every_minibatch_full_eval_steps_trials_and_the_last(
    tmp_path: Path,
) -> None:
    task = write_pet_task(tmp_path / "task")
    result = optimize(
        task,
        optimizer="mipro",
        options={"num_trials": 10, "minibatch_full_eval_steps": 3},
        settings=pet_settings(tmp_path),
    )
    order = [
        e["split"]
        for e in stored_events(result.run_dir, "CandidateEvaluated")
        if e["split"].startswith("dev-trial-")
        or (e["split"] == "dev-subset" and e["candidate_id"] != result.seed.id)
    ]
    full = [i for i, split in enumerate(order) if split == "dev-subset"]
    # after trials 3, 6 and 9, and the closing one after trial 10
    assert [order[i - 1] for i in full] == [f"dev-trial-{t}" for t in (3, 6, 9, 10)]


def test_mipro_by_likelihood_finds_the_key(tmp_path: Path) -> None:
    task = write_pet_task(tmp_path / "task")
    task.write_text(task.read_text().replace("evaluation: {", "evaluation: {scoring: likelihood, "))
    scorer = ScriptedLLM(lambda r: "unused", loglik_fn=pet_loglik)
    result = optimize(
        task,
        optimizer="mipro",
        budget={"task_calls": 300},
        settings=pet_settings(tmp_path, task=scorer),
    )
    assert result.search_usage["task"]["calls"] <= 300
    assert result.best.prompt.instruction == PET_KEY


def test_mipro_under_k_fold_selection_and_constraints_finds_the_key_within_budget(
    tmp_path: Path,
) -> None:
    task = write_pet_task(tmp_path / "task")
    text = task.read_text().replace("evaluation: {", "evaluation: {folds: 2, ")
    task.write_text(text + "constraints: {max_prompt_tokens: 40}\n")
    result = optimize(
        task,
        optimizer="mipro",
        budget={"task_calls": 800},
        settings=pet_settings(tmp_path, task=ScriptedLLM(half_right, model_id="half")),
    )
    assert result.selection_split == "cv"
    assert result.search_usage["task"]["calls"] <= 800
    assert result.best.prompt.instruction == PET_KEY
    # demo sets that make the prompt longer than 40 tokens are rejected, never scored
    reasons = {e["reason"] for e in stored_events(result.run_dir, "ReplyRejected")}
    assert any(r.startswith("constraint: ") for r in reasons), reasons


def test_every_candidate_keeps_the_protected_span(tmp_path: Path) -> None:
    task = write_pet_task(tmp_path / "task")
    text = task.read_text().replace(
        f"seed_prompt: {PET_SEED}", f"seed_prompt: {PET_SEED} Be brief."
    )
    task.write_text(text + "constraints: {protected: ['Be brief.']}\n")
    result = optimize(
        task, optimizer="mipro", budget={"task_calls": 300}, settings=pet_settings(tmp_path)
    )
    instructions = [c["prompt"]["instruction"] for c in stored_candidates(result.run_dir)]
    assert len(instructions) > 3 and all("Be brief." in i for i in instructions)
    assert result.best.prompt.instruction == PET_KEY + "\nBe brief."


def test_malformed_replies_are_rejected_proposals_and_never_crash(tmp_path: Path) -> None:
    replies = [
        "",
        "<prompt></prompt>",
        "<prompt>Hi</prompt>",  # too short
        f"<prompt>{PET_SEED}</prompt>",  # repeats the seed
        "abcdefghijklmnopqrstuvwxyz " * 600,  # cut at 160 words: still too long
        "<prompt>Use <prompt> tags to answer.</prompt>",
        "<summary>Hi</summary>",  # a too short summary
    ]

    def respond(request: CompletionRequest) -> str:
        return replies[request.seed % len(replies)]

    task = write_pet_task(tmp_path / "task")
    result = optimize(
        task,
        optimizer="mipro",
        options={"num_candidates": 8, "num_trials": 6},
        settings=pet_settings(tmp_path, ScriptedLLM(respond, model_id="junk")),
    )
    assert result.status == "finished"
    assert result.search_usage["optimizer"]["calls"] == 9  # the summary and 8 proposals
    rejected = [e["reason"] for e in stored_events(result.run_dir, "ReplyRejected")]
    replies_rejected = [r for r in rejected if not r.startswith("demo set skipped")]
    assert len(replies_rejected) == 9
    assert set(r.removeprefix("data summary: ") for r in replies_rejected) <= {
        "empty",
        "too short",
        "too long",
        "repeats the parent",
        "contains template tags",
        "duplicate of a proposal",
    }
    # with the seed's instruction alone, the search is over demo sets
    assert all(c["prompt"]["instruction"] == PET_SEED for c in stored_candidates(result.run_dir)), (
        "a malformed reply became an instruction"
    )


def lineage(run_dir: Path) -> list[tuple[Any, ...]]:
    return [
        (c["id"], tuple(c["parents"]), c["operation"], c["step"])
        for c in stored_candidates(run_dir)
    ]


def test_same_seed_same_trials(tmp_path: Path) -> None:
    task = write_pet_task(tmp_path / "task")
    opts = {"num_trials": 12}
    first = optimize(task, optimizer="mipro", options=opts, settings=pet_settings(tmp_path / "a"))
    second = optimize(task, optimizer="mipro", options=opts, settings=pet_settings(tmp_path / "b"))
    assert trials(first.run_dir) == trials(second.run_dir)
    assert len(trials(first.run_dir)) == 12
    assert lineage(first.run_dir) == lineage(second.run_dir)
    assert first.to_dict()["test"] == second.to_dict()["test"]
    assert first.search_usage["task"]["calls"] == second.search_usage["task"]["calls"]


def test_optunas_logging_is_silenced_and_it_writes_no_files(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    task = write_pet_task(tmp_path / "task")
    before = set(tmp_path.rglob("*"))
    result = optimize(
        task, optimizer="mipro", options={"num_trials": 6}, settings=pet_settings(tmp_path)
    )
    out, err = capfd.readouterr()
    assert "study" not in (out + err).lower() and "trial" not in (out + err).lower()
    created = {p for p in set(tmp_path.rglob("*")) - before if p.is_file()}
    assert all(result.run_dir in p.parents or (tmp_path / "cache") in p.parents for p in created)


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
    result = optimize(task, optimizer="mipro", budget=budget, settings=pet_settings(tmp_path))
    assert result.status in ("finished", "budget")
    if "task_calls" in budget:
        assert result.search_usage["task"]["calls"] <= budget["task_calls"]
    if "optimizer_calls" in budget:
        assert result.search_usage["optimizer"]["calls"] <= budget["optimizer_calls"]


def test_one_optimizer_call_goes_to_a_proposal_not_the_summary(tmp_path: Path) -> None:
    task = write_pet_task(tmp_path / "task")
    proposer = pet_proposer()
    result = optimize(
        task,
        optimizer="mipro",
        budget={"optimizer_calls": 1, "task_calls": 300},
        settings=pet_settings(tmp_path, proposer),
    )
    assert len(proposer.requests) == 1
    assert "Basic instruction" in proposer.requests[0].messages[-1].content
    assert result.best.prompt.instruction == PET_KEY


def test_zero_shot_searches_instructions_only(tmp_path: Path) -> None:
    task = write_pet_task(tmp_path / "task")
    proposer = pet_proposer()
    result = optimize(
        task,
        optimizer="mipro",
        options={"max_bootstrapped_demos": 0, "max_labeled_demos": 0},
        budget={"task_calls": 300},
        settings=pet_settings(tmp_path, proposer, ScriptedLLM(half_right, model_id="half")),
    )
    assert len(proposer.requests) == 7  # the summary and 6 proposals (DSPy light: n)
    assert all(not c["prompt"]["demos"] for c in stored_candidates(result.run_dir))
    # the proposals still saw bootstrapped demos, as DSPy's
    assert any("Example inputs and outputs" in r.messages[-1].content for r in proposer.requests)
    assert result.best.prompt.instruction == PET_KEY


def test_the_estimate_bounds_what_a_run_spends(tmp_path: Path) -> None:
    task = write_pet_task(tmp_path / "task")
    opts = {"num_trials": 12}
    result = optimize(task, optimizer="mipro", options=opts, settings=pet_settings(tmp_path))
    estimate = registry.create("mipro", opts).estimate(30, 63, 4)
    assert result.search_usage["task"]["calls"] <= estimate.task_calls
    assert result.search_usage["optimizer"]["calls"] == estimate.optimizer_calls == 4


# The parts of the algorithm.


def demos_of(names: list[str]) -> list[tuple[Any, Demo]]:
    train = {ex.input: ex for ex in pet_dataset("train", 6)}
    return [(train[n], Demo(n, "yes" if n in PETS else "no")) for n in names]


def test_demo_sets_are_zero_shot_labelled_unshuffled_then_drawn() -> None:
    train = list(pet_dataset("train", 6))  # each animal once
    correct = demos_of(["cat", "cow", "fox"])
    sets = build_demo_sets(
        (), train, correct, num_sets=6, max_bootstrapped=2, max_labeled=4, rng=random.Random(0)
    )
    assert sets[0] == DemoSet(())  # the seed's own demos: none
    assert sets[1].bootstrapped == 0 and len(sets[1].demos) == 4  # labelled only
    # the first two bootstrapped in train order, filled up with labelled ones
    assert sets[2].demos[:2] == (correct[0][1], correct[1][1]) and sets[2].bootstrapped == 2
    assert len(sets[2].demos) == 4
    used = {"cat", "cow", "fox"}
    for s in sets[2:]:
        assert 1 <= s.bootstrapped <= 2 and len(s.demos) == 4
        boot, fill = s.demos[: s.bootstrapped], s.demos[s.bootstrapped :]
        assert {d.input for d in boot} <= used
        assert not {d.input for d in fill} & used  # labelled: not bootstrapped examples
    assert len(sets) == 6 and len({s.demos for s in sets}) == 6
    again = build_demo_sets(
        (), train, correct, num_sets=6, max_bootstrapped=2, max_labeled=4, rng=random.Random(0)
    )
    assert again == sets


def test_without_correct_outputs_the_sets_are_labelled_and_without_labels_empty_ones_drop() -> None:
    train = list(pet_dataset("train", 12))
    sets = build_demo_sets(
        (), train, [], num_sets=4, max_bootstrapped=4, max_labeled=2, rng=random.Random(1)
    )
    assert len(sets) == 4 and all(s.bootstrapped == 0 for s in sets)
    only_seed = build_demo_sets(
        (), train, [], num_sets=6, max_bootstrapped=4, max_labeled=0, rng=random.Random(1)
    )
    assert only_seed == [DemoSet(())]


def test_a_proposal_shows_bootstrapped_demos_from_its_set_then_the_next_ones() -> None:
    a, b, c, d = (Demo(x, "y") for x in "abcd")
    labelled = Demo("l", "y")
    sets = [DemoSet(()), DemoSet((labelled,)), DemoSet((a, labelled), 1), DemoSet((b, c, d), 3)]
    assert shown_demos(sets, 0) == []  # set 0, as DSPy: no demos
    assert shown_demos(sets, 1) == [a, b, c]  # set 1 has none bootstrapped
    assert shown_demos(sets, 3) == [b, c, d]
    assert shown_demos(sets, 3, k=5) == [b, c, d, a]


def test_the_full_evaluation_takes_the_best_mean_not_yet_evaluated() -> None:
    means = {(1, 0): [1.0, 0.0], (2, 3): [0.8], (0, 1): [0.8, 0.8], (3, 3): [0.2]}
    assert best_mean(means, set()) == (2, 3)  # a tie at 0.8: the first tried
    assert best_mean(means, {(2, 3)}) == (0, 1)
    assert best_mean(means, set(means)) is None


@pytest.mark.parametrize(
    ("reply", "summary"),
    [
        ("<summary>Animal names; answers are yes or no.</summary>", "Animal names; answers..."),
        ("Sure! Here is the summary: Animal names, yes or no", "Animal names, yes or no"),
        ("<summary>Animal names, then the reply ran on", "Animal names, then the..."),
    ],
)
def test_the_summary_is_read_tolerantly(reply: str, summary: str) -> None:
    got = parse_summary(reply).text
    assert got is not None and got.startswith(summary.removesuffix("..."))


@pytest.mark.parametrize(
    ("reply", "reason"),
    [("", "empty"), ("<summary>Hi</summary>", "too short"), ("<a>b</a> and more", "contains")],
)
def test_a_summary_that_is_not_one_is_rejected(reply: str, reason: str) -> None:
    parsed = parse_summary(reply)
    assert parsed.text is None and parsed.reason.startswith(reason)


def test_the_tpe_search_is_the_same_for_a_seed_and_the_same_observations() -> None:
    def run(seed: int) -> list[tuple[int, int]]:
        search = TrialSearch(4, 6, seed)
        search.observe((0, 0), 0.0)
        out = []
        for _ in range(14):
            asked = search.ask()
            combo = search.combination(asked)
            search.tell(asked, 1.0 if combo[0] == 3 else 0.0)
            out.append(combo)
        return out

    assert run(7) == run(7)
    assert run(7) != run(8)
    # after the random start-up trials, TPE asks for the instruction that scored
    assert run(7)[-3:].count((3, 0)) + sum(1 for i, _ in run(7)[-4:] if i == 3) >= 2


# Options.


def test_mipro_is_registered_with_the_defaults_of_dspy() -> None:
    mipro = registry.create("mipro")
    c = mipro.config
    assert "mipro" in registry.names()
    assert (c.max_bootstrapped_demos, c.max_labeled_demos, c.num_demo_sets) == (4, 4, 6)
    assert (c.minibatch_full_eval_steps, c.view_data_batch_size, c.temperature) == (5, 10, 1.0)
    assert mipro.num_instructions() == 3  # type: ignore[attr-defined]
    zero = registry.create("mipro", {"max_bootstrapped_demos": 0, "max_labeled_demos": 0})
    assert zero.num_instructions() == 6  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "option",
    [
        {"bogus": 1},
        {"minibatch_size": 0},
        {"num_demo_sets": 0},
        {"max_labeled_demos": -1},
        {"temperature": "hot"},
    ],
)
def test_bad_options_are_config_errors(tmp_path: Path, option: dict[str, Any]) -> None:
    task = write_animal_task(tmp_path / "task")
    with pytest.raises(ConfigError) as e:
        optimize(task, optimizer="mipro", options=option, settings=pet_settings(tmp_path))
    assert next(iter(option)) in str(e.value)


# The real embedded model, end to end, on a few navigate examples.


@pytest.mark.embedded
def test_mipro_on_the_embedded_model(tmp_path: Path, embedded: EmbeddedLLM) -> None:
    task = tmp_path / "tiny.yaml"
    task.write_text(
        "name: tiny-navigate\n"
        f"data:\n  folder: {REPO / 'examples/data/navigate'}\n"
        "  limits: {train: 6, dev: 4, test: 4}\n"
        "task_params: {max_tokens: 12}\n"
        "evaluation: {concurrency: 1, train_gap_examples: 0}\n"
        "seed: 0\n",
        encoding="utf-8",
    )
    budget: dict[str, float] = {"task_calls": 20, "optimizer_calls": 2}
    s = RunSettings(
        runs_dir=tmp_path / "runs",
        cache_dir=tmp_path / "cache",
        backends={"task": embedded, "optimizer": embedded, "judge": embedded},
    )
    result = optimize(
        task,
        optimizer="mipro",
        options={
            "max_tokens": 64,
            "num_candidates": 1,
            "bootstrap_examples": 3,
            "max_bootstrapped_demos": 1,
            "max_labeled_demos": 1,
            "num_demo_sets": 3,
            "minibatch_size": 2,
        },
        budget=budget,
        settings=s,
    )
    assert result.status in ("finished", "budget")
    assert result.search_usage["task"]["calls"] <= 20
    assert result.search_usage["optimizer"]["calls"] <= 2
    seed_dev, best_dev = result.seed.score("dev"), result.best.score("dev")
    assert seed_dev is not None and best_dev is not None and best_dev >= seed_dev
    assert result.test_seed is not None and result.test_seed.n == 4
    print(
        f"\nseed dev {seed_dev} test {result.test_seed.mean}; best dev {best_dev} "
        f"test {result.test_best.mean if result.test_best else None}; "
        f"candidates {result.candidates}, rejected {result.rejected_replies}, "
        f"best: {result.best.prompt.instruction!r} with {len(result.best.prompt.demos)} demos"
    )


# Killed and resumed (the CLI in a subprocess, as tests/test_kill_resume.py does).

MIPRO_MODELS = """\
models:
  task: {backend: scripted, model: "scripted_cli:task"}
  optimizer: {backend: scripted, model: "scripted_cli:reflector"}
  judge: {backend: scripted, model: "scripted_cli:task"}
optimizer: {name: mipro, eval_examples: 6, num_trials: 12, minibatch_size: 2, num_candidates: 6,
  minibatch_full_eval_steps: 3, bootstrap_examples: 4, final_k: 2}
"""


def test_a_killed_mipro_run_resumes_to_the_same_result(tmp_path: Path) -> None:
    from test_kill_resume import check_kills_resume_to_the_same_result

    task = write_animal_task(tmp_path / "task", extra=MIPRO_MODELS)
    check_kills_resume_to_the_same_result(tmp_path, task, KEY)
