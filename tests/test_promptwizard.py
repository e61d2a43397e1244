"""PromptWizard on scripted models: it finds the hidden key instruction within budget,
by generation and by likelihood; mutation mixes in a seeded sample of the paper's
thinking styles; a candidate's trial stops at its first wrong minibatch and only what
passed (and each iteration's best) is screened; the best is critiqued against its
failures and refined from the critique; the examples stage picks the examples the
best instruction gets wrong, synthesises labelled ones, adds reasoning the metric
still reads and an expert persona; malformed replies are rejected proposals, never a
crash; the same seed gives the same run; no budget is exceeded; the estimate bounds
the run; a killed run resumes to the same result. The reply parsing as unit tests.
One end-to-end run on the embedded model."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from scripted import (
    KEY,
    PET_KEY,
    PET_SEED,
    PETS,
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
from promptascent.optimizers.parsing import Parsed
from promptascent.optimizers.promptwizard import thinking_styles
from promptascent.optimizers.promptwizard_replies import (
    SyntheticExample,
    blocks,
    parse_critique,
    parse_examples,
    parse_persona,
    parse_reasoning,
    parse_variations,
)

REPO = Path(__file__).resolve().parents[1]


def user_turns(model: ScriptedLLM) -> list[str]:
    return [r.messages[-1].content for r in model.requests]


# An optimizer model that answers each of PromptWizard's meta-prompts in its own
# format (the key comes only from a refinement).

PERSONA = "You are a vet who knows which animals people keep at home."
REASON = "People keep some animals at home and others on farms or in the wild."


def pw_reply(request: CompletionRequest) -> str:
    text = request.messages[-1].content
    if "Thinking styles" in text:
        return (
            "<START>Tell whether the animal is a pet.<END>\n"
            f"<START>Decide if it is a pet animal, take {request.seed}.<END>"
        )
    if "got these examples wrong" in text:
        return "<START>It does not say which animals are pets.<END>"
    if "got these examples right" in text:
        return "Show more varied animals."
    if "A critique of the instruction" in text:
        return f"<START>{PET_KEY}<END>"
    if "Suggest how to make each example better" in text:
        return "Use more farm animals."
    if "new examples that follow" in text:
        return (
            "<START>\n[Question] cow\n[Answer] A cow lives on a farm. <ANS_START>no<ANS_END>\n"
            "<END>\n<START>[Question] dog [Answer] <ANS_START>Yes<ANS_END><END>"
            "<START>[Question] owl<END>"  # no answer: dropped
            "<START>[Question] hen [Answer] <ANS_START>maybe<ANS_END><END>"  # not a choice
        )
    if "Explain in one to three" in text:
        return f"Reasoning: {REASON}\nAnswer: whatever"
    if "[Agent Description]" in text:
        return PERSONA
    return "??"


def pw_model() -> ScriptedLLM:
    return ScriptedLLM(pw_reply, model_id="pw-script")


# The whole search.


def test_promptwizard_finds_the_key_within_budget(tmp_path: Path) -> None:
    task = write_pet_task(tmp_path / "task")
    result = optimize(
        task,
        optimizer="promptwizard",
        budget={"task_calls": 300},
        settings=pet_settings(tmp_path),
    )
    assert result.best.prompt.instruction == PET_KEY
    assert result.best.operation == "mutate" and result.best.parents == (result.seed.id,)
    assert result.search_usage["task"]["calls"] <= 300
    assert result.test_best is not None and result.test_best.mean == 1.0
    row = next(c for c in stored_candidates(result.run_dir) if c["id"] == result.best.id)
    assert row["scores"]["dev-subset"]["mean"] == 1.0 and row["scores"]["dev"]["n"] == 63


def test_promptwizard_by_likelihood_finds_the_key(tmp_path: Path) -> None:
    task = write_pet_task(tmp_path / "task")
    task.write_text(task.read_text().replace("evaluation: {", "evaluation: {scoring: likelihood, "))
    scorer = ScriptedLLM(lambda r: "unused", loglik_fn=pet_loglik)
    result = optimize(
        task,
        optimizer="promptwizard",
        budget={"task_calls": 200},
        settings=pet_settings(tmp_path, task=scorer),
    )
    assert result.search_usage["task"]["calls"] <= 200
    assert result.best.prompt.instruction == PET_KEY


def test_every_stage_adds_its_candidates_with_their_operations(tmp_path: Path) -> None:
    task = write_pet_task(tmp_path / "task")
    result = optimize(task, optimizer="promptwizard", settings=pet_settings(tmp_path, pw_model()))
    rows = stored_candidates(result.run_dir)
    ops = Counter(c["operation"] for c in rows)
    assert set(ops) == {"seed", "mutate", "refine", "examples", "persona"}, ops
    # the key came from the critique-and-refine of the best mutant
    key = next(
        c for c in rows if c["prompt"]["instruction"] == PET_KEY and not c["prompt"]["demos"]
    )
    assert key["operation"] == "refine" and "It does not say which animals" in key["note"]
    by_id = {c["id"]: c for c in rows}
    assert by_id[key["parents"][0]]["operation"] == "mutate"
    # every candidate of the examples stage descends from the key
    for c in rows:
        if c["operation"] in ("examples", "persona"):
            assert c["prompt"]["instruction"] == PET_KEY
    persona = next(c for c in rows if c["operation"] == "persona")
    assert persona["prompt"]["system"] == PERSONA
    # it builds on the demonstrations (with their reasoning): they scored as well
    assert by_id[persona["parents"][0]]["note"] == "reasoning"
    assert result.best.prompt.instruction == PET_KEY


def test_with_a_length_penalty_longer_prompts_that_score_the_same_are_not_built_on(
    tmp_path: Path,
) -> None:
    """Demonstrations and a persona score no better than the key alone: with a length
    penalty every stage-2 step builds on the key, and the key wins."""
    task = write_pet_task(tmp_path / "task")
    task.write_text(task.read_text() + "length_penalty: 0.05\n")
    result = optimize(task, optimizer="promptwizard", settings=pet_settings(tmp_path, pw_model()))
    rows = stored_candidates(result.run_dir)
    key = next(
        c for c in rows if c["prompt"]["instruction"] == PET_KEY and not c["prompt"]["demos"]
    )
    later = [c for c in rows if c["operation"] in ("examples", "persona")]
    assert later and all(c["parents"] == [key["id"]] for c in later)
    assert result.best.id == key["id"]


# Stage 1.


def test_mutation_mixes_in_a_seeded_sample_of_the_papers_thinking_styles(tmp_path: Path) -> None:
    styles = thinking_styles()
    assert len(styles) == 39 and styles[-2] == "Let's think step by step."
    task = write_pet_task(tmp_path / "task")
    proposer = pw_model()
    optimize(
        task,
        optimizer="promptwizard",
        options={"mutate_refine_iterations": 1, "refine_task_eg_iterations": 0},
        settings=pet_settings(tmp_path, proposer),
    )
    asked = [t for t in user_turns(proposer) if "Thinking styles" in t]
    assert len(asked) == 3  # mutation_rounds
    samples = []
    for text in asked:
        shown = [line[2:] for line in text.splitlines() if line.startswith("- ")]
        assert len(shown) == 5 and set(shown) <= set(styles)  # style_variation
        assert f'"{PET_SEED}"' in text and "Write 5 new versions" in text
        samples.append(shown)
    assert samples[0] != samples[1]
    again = pw_model()
    optimize(
        task,
        optimizer="promptwizard",
        options={"mutate_refine_iterations": 1, "refine_task_eg_iterations": 0},
        settings=pet_settings(tmp_path / "again", again),
    )
    assert [t for t in user_turns(again) if "Thinking styles" in t] == asked


def test_a_trial_stops_at_the_first_wrong_minibatch_and_only_passes_are_screened(
    tmp_path: Path,
) -> None:
    """Mutants that name an answer are right on cat, cow and fox only: their trial ends
    at the first other animal; the seed ("maybe") fails its first minibatch. Only a
    candidate right on min_correct_count minibatches, or an iteration's best, is
    scored on the dev subset."""
    task = write_pet_task(tmp_path / "task")
    result = optimize(
        task,
        optimizer="promptwizard",
        options={"refine_instruction": False, "refine_task_eg_iterations": 0},
        settings=pet_settings(tmp_path, pw_model()),
    )
    rows = [c for c in stored_candidates(result.run_dir) if c["operation"] in ("seed", "mutate")]
    assert rows
    screened_others = 0
    for c in rows:
        step = max(1, c["step"])  # the seed is tried in iteration 1 first
        trials = sorted(s for s in c["scores"] if s.startswith(f"train-trial-{step}-"))
        means = [c["scores"][s]["mean"] for s in trials]
        assert 1 <= len(trials) <= 3  # min_correct_count minibatches at most
        # every minibatch but the last was right; the trial ends at the first wrong one
        assert all(m == 1.0 for m in means[:-1])
        passed = len(trials) == 3 and means[-1] == 1.0
        if c["operation"] == "seed":
            assert means == [0.0]
        elif "dev-subset" in c["scores"] and not passed:
            screened_others += 1
    assert screened_others <= 3  # at most one best per iteration that did not pass


def test_the_best_is_critiqued_against_its_failures_and_refined_from_the_critique(
    tmp_path: Path,
) -> None:
    task = write_pet_task(tmp_path / "task")
    proposer = pw_model()
    optimize(
        task,
        optimizer="promptwizard",
        options={"mutate_refine_iterations": 1, "refine_task_eg_iterations": 0},
        settings=pet_settings(tmp_path, proposer),
    )
    turns = user_turns(proposer)
    critique = next(i for i, t in enumerate(turns) if "got these examples wrong" in t)
    # the failures: the input, the output it got and the expected answer
    assert "Input: " in turns[critique] and "Output: " in turns[critique]
    assert "Expected: " in turns[critique]
    refine = turns[critique + 1]
    assert "A critique of the instruction" in refine
    assert "It does not say which animals are pets." in refine


# Stage 2.


def test_the_examples_are_the_ones_the_best_gets_wrong_then_right_ones(tmp_path: Path) -> None:
    """The seed is right except on horses (and the optimizer model writes nothing
    usable): the demonstrations are every distinct horse the scan met, then animals
    it got right, up to few_shot_count, with the data's labels."""

    def task_reply(request: CompletionRequest) -> str:
        user = request.messages[-1].content
        animal = user.split()[-1]
        right = "yes" if animal in PETS else "no"
        return "yes" if animal == "horse" else right

    task = write_pet_task(tmp_path / "task")
    result = optimize(
        task,
        optimizer="promptwizard",
        options={"refine_task_eg_iterations": 0, "generate_reasoning": False},
        settings=pet_settings(
            tmp_path, ScriptedLLM(lambda r: "", model_id="mute"), ScriptedLLM(task_reply)
        ),
    )
    rows = stored_candidates(result.run_dir)
    examples = next(c for c in rows if c["operation"] == "examples")
    demos = [(d["input"], d["output"]) for d in examples["prompt"]["demos"]]
    assert len(demos) == 5 and ("horse", "no") in demos
    assert len({i for i, _ in demos}) == 5  # distinct inputs
    assert all(o == ("yes" if i in PETS else "no") for i, o in demos)
    assert examples["parents"] == [result.seed.id]
    assert any(s.startswith("train-scan-") for s in rows[0]["scores"])


def test_synthetic_examples_are_labelled_by_the_optimizer_and_malformed_ones_counted(
    tmp_path: Path,
) -> None:
    task = write_pet_task(tmp_path / "task")
    result = optimize(
        task,
        optimizer="promptwizard",
        options={"refine_task_eg_iterations": 4, "generate_reasoning": False},
        settings=pet_settings(tmp_path, pw_model()),
    )
    rows = stored_candidates(result.run_dir)
    synthetic = [c for c in rows if c["note"].startswith("synthetic examples")]
    assert synthetic
    demos = [(d["input"], d["output"]) for d in synthetic[0]["prompt"]["demos"]]
    # "Yes" read as the choice "yes"; the one without an answer and "maybe" dropped
    assert demos == [("cow", "no"), ("dog", "yes")]
    reasons = Counter(e["reason"] for e in stored_events(result.run_dir, "ReplyRejected"))
    assert reasons["synthetic example: no [Question] and [Answer]"] >= 1
    assert reasons["synthetic example: the answer is not a choice"] >= 1
    # no more than few_shot_count are kept
    one = optimize(
        task,
        optimizer="promptwizard",
        options={"refine_task_eg_iterations": 4, "generate_reasoning": False, "few_shot_count": 1},
        settings=pet_settings(tmp_path / "one", pw_model()),
    )
    rows = stored_candidates(one.run_dir)
    synthetic = [c for c in rows if c["note"].startswith("synthetic examples")]
    assert synthetic and all(len(c["prompt"]["demos"]) == 1 for c in synthetic)


def test_reasoning_comes_before_the_answer_and_the_metric_still_reads_it(
    tmp_path: Path,
) -> None:
    task = write_pet_task(tmp_path / "task")
    result = optimize(
        task,
        optimizer="promptwizard",
        options={"refine_task_eg_iterations": 0},
        settings=pet_settings(tmp_path, pw_model()),
    )
    rows = stored_candidates(result.run_dir)
    reasoned = next(c for c in rows if c["note"] == "reasoning")
    for demo in reasoned["prompt"]["demos"]:
        reasoning, answer = demo["output"].split("\nAnswer: ")
        assert reasoning == REASON and answer in ("yes", "no")


def test_reasoning_that_names_another_answer_first_is_not_added(tmp_path: Path) -> None:
    def reply(request: CompletionRequest) -> str:
        text = request.messages[-1].content
        if "Explain in one to three" in text:
            return "The answer is clearly yes, because it is an animal."
        return pw_reply(request)

    task = write_pet_task(tmp_path / "task")
    result = optimize(
        task,
        optimizer="promptwizard",
        options={"refine_task_eg_iterations": 0},
        settings=pet_settings(tmp_path, ScriptedLLM(reply, model_id="yes-sayer")),
    )
    rows = stored_candidates(result.run_dir)
    reasoned = next(c for c in rows if c["note"] == "reasoning")
    for demo in reasoned["prompt"]["demos"]:
        if demo["output"].endswith("Answer: no"):
            pytest.fail(f"reasoning naming 'yes' first kept on a 'no' demo: {demo}")
    plain = [d for d in reasoned["prompt"]["demos"] if "\n" not in d["output"]]
    assert plain and all(d["output"] == "no" for d in plain)
    reasons = Counter(e["reason"] for e in stored_events(result.run_dir, "ReplyRejected"))
    assert reasons["reasoning: the task's metric no longer reads the answer"] == len(plain)


def test_malformed_replies_are_rejected_proposals_and_never_crash(tmp_path: Path) -> None:
    # None of these is an instruction, a critique, an example, a reasoning or a persona.
    replies = [
        "",
        "<START></START>",
        "<prompt>Hi</prompt>",  # too short
        "abcdefghijklmnopqrstuvwxyz " * 600,  # loops
        "<START>Use <prompt> tags<END>",
        "[Question] [Answer]",
    ]

    def respond(request: CompletionRequest) -> str:
        return replies[(request.seed or 0) % len(replies)]

    task = write_pet_task(tmp_path / "task")
    result = optimize(
        task,
        optimizer="promptwizard",
        settings=pet_settings(tmp_path, ScriptedLLM(respond, model_id="junk")),
    )
    assert result.status == "finished"
    calls = result.search_usage["optimizer"]["calls"]
    assert calls > 0 and result.rejected_replies == calls
    rows = stored_candidates(result.run_dir)
    # nothing the optimizer model wrote became a candidate; the examples need none
    assert {c["operation"] for c in rows} <= {"seed", "examples"}
    assert result.best.prompt.instruction == PET_SEED
    assert len({e["reason"] for e in stored_events(result.run_dir, "ReplyRejected")}) >= 4


def lineage(run_dir: Path) -> list[tuple[Any, ...]]:
    return [
        (c["id"], tuple(c["parents"]), c["operation"], c["step"])
        for c in stored_candidates(run_dir)
    ]


def test_same_seed_same_run(tmp_path: Path) -> None:
    task = write_pet_task(tmp_path / "task")
    first = optimize(
        task, optimizer="promptwizard", settings=pet_settings(tmp_path / "a", pw_model())
    )
    second = optimize(
        task, optimizer="promptwizard", settings=pet_settings(tmp_path / "b", pw_model())
    )
    assert len(lineage(first.run_dir)) > 5
    assert lineage(first.run_dir) == lineage(second.run_dir)
    assert first.to_dict()["test"] == second.to_dict()["test"]
    assert first.search_usage["task"]["calls"] == second.search_usage["task"]["calls"]


@pytest.mark.parametrize(
    "budget",
    [
        {"task_calls": 20},
        {"task_calls": 40},
        {"task_calls": 100},
        {"task_calls": 250},
        {"optimizer_calls": 1},
        {"optimizer_calls": 4, "task_calls": 500},
    ],
)
def test_no_budget_is_ever_exceeded(tmp_path: Path, budget: dict[str, int]) -> None:
    task = write_pet_task(tmp_path / "task")
    result = optimize(
        task, optimizer="promptwizard", budget=budget, settings=pet_settings(tmp_path, pw_model())
    )
    assert result.status in ("finished", "budget")
    if "task_calls" in budget:
        assert result.search_usage["task"]["calls"] <= budget["task_calls"]
    if "optimizer_calls" in budget:
        assert result.search_usage["optimizer"]["calls"] <= budget["optimizer_calls"]


def test_at_100_task_calls_both_stages_run(tmp_path: Path) -> None:
    task = write_pet_task(tmp_path / "task")
    result = optimize(
        task,
        optimizer="promptwizard",
        budget={"task_calls": 100},
        settings=pet_settings(tmp_path, pw_model()),
    )
    ops = {c["operation"] for c in stored_candidates(result.run_dir)}
    assert {"mutate", "examples"} <= ops
    assert result.best.prompt.instruction == PET_KEY and not result.screening_only


def test_stage_one_leaves_the_examples_stage_its_reserve(tmp_path: Path) -> None:
    """Every mutant is right everywhere, so each passes and is screened: stage 1
    alone could spend 100 task calls. It stops at its reserve, and the examples
    stage still scores demonstrations before the final selection."""

    def task_reply(request: CompletionRequest) -> str:
        user = request.messages[-1].content
        animal = user.split()[-1]
        if len(request.messages) == 1 and user == f"{PET_SEED}\n\n{animal}":
            return "maybe"
        return "yes" if animal in PETS else "no"

    task = write_pet_task(tmp_path / "task")
    result = optimize(
        task,
        optimizer="promptwizard",
        budget={"task_calls": 100},
        settings=pet_settings(tmp_path, pw_model(), ScriptedLLM(task_reply, model_id="all-right")),
    )
    assert result.search_usage["task"]["calls"] <= 100
    rows = stored_candidates(result.run_dir)
    screened = [c for c in rows if c["operation"] == "examples" and "dev-subset" in c["scores"]]
    assert screened, Counter(c["operation"] for c in rows)
    stops = [e["reason"] for e in stored_events(result.run_dir, "SearchStopped")]
    assert any("instruction stage ended early" in r for r in stops)


def test_the_estimate_bounds_an_unlimited_run(tmp_path: Path) -> None:
    task = write_pet_task(tmp_path / "task")
    result = optimize(task, optimizer="promptwizard", settings=pet_settings(tmp_path, pw_model()))
    estimate = registry.create("promptwizard").estimate(30, 63, 10)
    assert result.search_usage["task"]["calls"] <= estimate.task_calls
    assert result.search_usage["optimizer"]["calls"] <= estimate.optimizer_calls


def test_promptwizard_under_k_fold_selection_and_constraints_finds_the_key(
    tmp_path: Path,
) -> None:
    task = write_pet_task(tmp_path / "task")
    text = task.read_text().replace("evaluation: {", "evaluation: {folds: 2, ")
    task.write_text(text + "constraints: {max_prompt_tokens: 40}\n")
    result = optimize(
        task, optimizer="promptwizard", budget={"task_calls": 300}, settings=pet_settings(tmp_path)
    )
    assert result.selection_split == "cv"
    assert result.search_usage["task"]["calls"] <= 300
    assert result.best.prompt.instruction == PET_KEY


def test_demonstrations_the_constraints_refuse_are_counted_and_the_key_still_wins(
    tmp_path: Path,
) -> None:
    task = write_pet_task(tmp_path / "task")
    task.write_text(task.read_text() + "constraints: {max_prompt_tokens: 40}\n")
    result = optimize(
        task, optimizer="promptwizard", budget={"task_calls": 300}, settings=pet_settings(tmp_path)
    )
    assert result.best.prompt.instruction == PET_KEY
    assert all(not c["prompt"]["demos"] for c in stored_candidates(result.run_dir))
    reasons = [e["reason"] for e in stored_events(result.run_dir, "ReplyRejected")]
    assert any(r.startswith("constraint: ") and "max_prompt_tokens 40" in r for r in reasons)


# Options.


def test_promptwizard_is_registered_with_the_defaults_of_the_reference_config() -> None:
    pw = registry.create("promptwizard")
    c = pw.config
    assert "promptwizard" in registry.names()
    assert (c.mutate_refine_iterations, c.mutation_rounds, c.style_variation) == (3, 3, 5)
    assert (c.questions_batch_size, c.min_correct_count, c.max_eval_batches) == (1, 3, 6)
    assert (c.seen_set_size, c.few_shot_count, c.refine_task_eg_iterations) == (25, 5, 3)
    assert c.refine_instruction and c.generate_reasoning and c.generate_expert_identity


@pytest.mark.parametrize(
    "option",
    [
        {"bogus": 1},
        {"style_variation": 0},
        {"few_shot_count": -1},
        {"temperature": "hot"},
        {"generate_reasoning": "sometimes"},
    ],
)
def test_bad_options_are_config_errors(tmp_path: Path, option: dict[str, Any]) -> None:
    task = write_animal_task(tmp_path / "task")
    with pytest.raises(ConfigError) as e:
        optimize(task, optimizer="promptwizard", options=option, settings=pet_settings(tmp_path))
    assert next(iter(option)) in str(e.value)


# Reading the replies.


def test_blocks_are_start_end_items_else_prompt_tags_else_a_list_else_the_reply() -> None:
    assert blocks("<START>one<END> x <START>two<END>") == ["one", "two"]
    assert blocks("<start>one<start>two") == ["one", "two"]  # unclosed
    assert blocks("<prompt>a</prompt><prompt>b</prompt>") == ["a", "b"]
    assert blocks("Here:\n1. first one\n   more\n2) second") == ["first one more", "second"]
    assert blocks("  just this  ") == ["just this"]


def test_variations_are_read_as_instructions_and_bad_ones_say_why() -> None:
    got = parse_variations(
        "<START>Name the pet.<END><START>Hi<END><START>Is it a pet?<END>",
        forbidden=("Is it a pet?",),
    )
    assert [p.text for p in got] == ["Name the pet.", None, None]
    assert [p.reason for p in got[1:]] == ["too short", "repeats the parent"]
    numbered = parse_variations("<START>3. Name the pet.<END>", forbidden=())
    assert numbered[0].text == "Name the pet."


def test_a_critique_keeps_its_reasons_and_drops_empty_replies() -> None:
    assert parse_critique("<START>Too vague.<END><START>No answer named.<END>").text == (
        "- Too vague.\n- No answer named."
    )
    assert parse_critique("It never says what a pet is.").text == "It never says what a pet is."
    assert parse_critique("  ") == Parsed(None, "empty critique")
    assert parse_critique("<b>ok</b>").reason == "critique too short"


def test_synthetic_examples_are_read_tolerantly() -> None:
    reply = (
        "<START>[Question] cat\n[Answer] Cats live with people. <ANS_START>yes<ANS_END><END>\n"
        "<START>Question: fox\nAnswer: it is wild\nNo<END>\n"  # no tags: the last line
        "<START>[Question] owl [Answer] <ANS_START>perhaps<ANS_END><END>\n"
        "<START>[Answer] yes<END>"
    )
    got = parse_examples(reply, choices=("yes", "no"))
    assert got[:2] == [SyntheticExample("cat", "yes"), SyntheticExample("fox", "no")]
    assert got[2] == Parsed(None, "synthetic example: the answer is not a choice")
    assert got[3] == Parsed(None, "synthetic example: no [Question] and [Answer]")
    free = parse_examples("[Question] 2+2 [Answer] <ANS_START>4", choices=None)
    assert free == [SyntheticExample("2+2", "4")]


def test_reasoning_and_persona_replies_are_cleaned() -> None:
    assert parse_reasoning("[Improved Reasoning Chain]: Cats live indoors.\nAnswer: yes").text == (
        "Cats live indoors."
    )
    assert parse_reasoning("ok").text is None
    long = " ".join(f"word{i}" + ("." if i % 10 == 9 else "") for i in range(150))
    text = parse_reasoning(long).text
    assert text is not None and len(text) <= 400 and text.endswith(".")
    persona = parse_persona(f"[Agent Description]: {PERSONA}\n\n[Instruction]: more")
    assert persona.text == PERSONA
    assert parse_persona("You are").text is None
    assert parse_persona("A vet who knows which animals people keep.").text is None
    assert parse_reasoning("It is. " * 20).reason == "reasoning repeats itself"


# The real embedded model, end to end, on a few navigate examples.


@pytest.mark.embedded
def test_promptwizard_on_the_embedded_model(tmp_path: Path, embedded: EmbeddedLLM) -> None:
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
    budget: dict[str, float] = {"task_calls": 32, "optimizer_calls": 3}
    s = RunSettings(
        runs_dir=tmp_path / "runs",
        cache_dir=tmp_path / "cache",
        backends={"task": embedded, "optimizer": embedded, "judge": embedded},
    )
    options = {"max_tokens": 64, "mutation_rounds": 1, "few_shot_count": 2}
    result = optimize(task, optimizer="promptwizard", options=options, budget=budget, settings=s)
    assert result.status in ("finished", "budget")
    assert result.search_usage["task"]["calls"] <= 32
    assert result.search_usage["optimizer"]["calls"] <= 3
    seed_dev, best_dev = result.seed.score("dev"), result.best.score("dev")
    assert seed_dev is not None and best_dev is not None and best_dev >= seed_dev
    assert result.test_seed is not None and result.test_seed.n == 6
    print(
        f"\nseed dev {seed_dev} test {result.test_seed.mean}; best dev {best_dev} "
        f"test {result.test_best.mean if result.test_best else None}; "
        f"candidates {result.candidates}, rejected {result.rejected_replies}, "
        f"best ({result.best.operation}): {result.best.prompt.instruction!r}"
    )


# Killed and resumed (the CLI in a subprocess, as tests/test_kill_resume.py does).

PW_MODELS = """\
models:
  task: {backend: scripted, model: "scripted_cli:task"}
  optimizer: {backend: scripted, model: "scripted_cli:reflector"}
  judge: {backend: scripted, model: "scripted_cli:task"}
optimizer: {name: promptwizard, eval_examples: 6, mutate_refine_iterations: 2,
            mutation_rounds: 2, refine_task_eg_iterations: 2, few_shot_count: 3, final_k: 2}
"""


def test_a_killed_promptwizard_run_resumes_to_the_same_result(tmp_path: Path) -> None:
    from test_kill_resume import check_kills_resume_to_the_same_result

    task = write_animal_task(tmp_path / "task", extra=PW_MODELS)
    check_kills_resume_to_the_same_result(tmp_path, task, KEY)
