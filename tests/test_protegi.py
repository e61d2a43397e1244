"""ProTeGi on scripted models: critiques of the seed's errors lead to an edit that holds
the hidden key; the bandit keeps it; the budget holds; bad replies are counted, never
fatal; the same seed gives the same run. One end-to-end run on the embedded model."""

from __future__ import annotations

from pathlib import Path

import pytest
from scripted import KEY, task_model, write_animal_task

from promptascent import RunSettings, optimize
from promptascent.events import CandidateEvaluated, Event, ReplyRejected, SearchStopped
from promptascent.llm.embedded import EmbeddedLLM
from promptascent.llm.scripted import ScriptedLLM
from promptascent.llm.types import CompletionRequest
from promptascent.optimizers import registry
from promptascent.optimizers.protegi import parse_prompt_reply, parse_reasons
from promptascent.store.run_store import RunStore

REPO = Path(__file__).resolve().parents[1]

# Round 1: 6 train calls, a bandit over 5 arms (24 calls); the final scoring of the
# beam of 2 and the seed on dev: 36 calls.
OPTIONS = {
    "rounds": 2,
    "beam_size": 2,
    "minibatch_size": 6,
    "num_gradients": 2,
    "bandit_batch": 3,
    "bandit_pulls": 24,
}
OPPOSITE = "The instruction never says to answer with the opposite animal."


def responder(request: CompletionRequest) -> str:
    """Gradients: the useful one tagged as in the paper (sample 0), a numbered list
    with chatter (sample 1). Edits: the key when told the useful gradient. Paraphrases:
    always the same text (the second one is a duplicate)."""
    text = request.messages[-1].content
    if "could have gotten these examples wrong" in text:
        if request.sample_index == 0:
            return f"Sure!\n<START>{OPPOSITE}<END>"
        return "Here are the reasons:\n1. The instruction is too vague about the answer.\n"
    if "The problem with this instruction" in text:
        if OPPOSITE in text:
            return f"<prompt>{KEY}</prompt>"
        return "New instruction: Name the animal you see."
    if "variation" in text:
        return "<prompt>Please answer the question about the animal.</prompt>"
    raise AssertionError(f"unexpected meta-prompt: {text[:80]}")


def settings(
    tmp_path: Path, optimizer: ScriptedLLM | None = None, sinks: list | None = None
) -> RunSettings:
    return RunSettings(
        runs_dir=tmp_path / "runs",
        cache_dir=tmp_path / "cache",
        backends={
            "task": task_model(),
            "optimizer": optimizer or ScriptedLLM(responder, model_id="scripted-protegi"),
            "judge": task_model(),
        },
        sinks=sinks or [],
    )


def lineage(run_dir: Path) -> list[tuple[str, str, tuple[str, ...], int]]:
    store = RunStore.open_existing(run_dir)
    try:
        return [
            (c["id"], c["operation"], tuple(c["parents"]), c["step"]) for c in store.candidates()
        ]
    finally:
        store.close()


@pytest.mark.parametrize("selector", ["ucb", "ucb-e", "successive-rejects"])
def test_protegi_finds_the_key_through_a_gradient_edit(tmp_path: Path, selector: str) -> None:
    task = write_animal_task(tmp_path / "task")
    options = {**OPTIONS, "selector": selector}
    result = optimize(task, optimizer="protegi", options=options, settings=settings(tmp_path))
    assert result.best.prompt.instruction == KEY
    assert result.best.operation == "edit" and result.best.parents == (result.seed.id,)
    assert result.best.score("dev") == 1.0 and result.seed.score("dev") == 0.0
    assert result.test_seed is not None and result.test_best is not None
    assert result.test_seed.mean == 0.0 and result.test_best.mean == 1.0
    assert result.status == "finished" and result.stopped_by is None
    # the paraphrase of the second edit repeats the first paraphrase: counted
    assert result.rejected_replies >= 1


def test_lineage_of_one_round(tmp_path: Path) -> None:
    task = write_animal_task(tmp_path / "task")
    options = {**OPTIONS, "rounds": 1}
    result = optimize(task, optimizer="protegi", options=options, settings=settings(tmp_path))
    rows = lineage(result.run_dir)
    ops = [(op, step) for _, op, _, step in rows]
    assert ops == [("seed", 0), ("edit", 1), ("paraphrase", 1), ("edit", 1)]
    seed, key_edit, paraphrase, other_edit = rows
    assert key_edit[2] == (seed[0],) and other_edit[2] == (seed[0],)
    assert paraphrase[2] == (key_edit[0],)  # a paraphrase descends from its edit
    assert result.rejected_replies == 1  # the duplicate paraphrase
    # 2 gradient calls, 2 edits, 2 paraphrases
    assert result.search_usage["optimizer"]["calls"] == 6


def test_the_seed_right_on_the_minibatch_needs_no_optimizer(tmp_path: Path) -> None:
    task = write_animal_task(tmp_path / "task")
    task.write_text(task.read_text().replace("Which animal is it?", KEY))
    result = optimize(task, optimizer="protegi", options=OPTIONS, settings=settings(tmp_path))
    assert result.best.id == result.seed.id and result.candidates == 1
    assert result.search_usage["optimizer"]["calls"] == 0


def test_usage_stays_within_the_estimate(tmp_path: Path) -> None:
    task = write_animal_task(tmp_path / "task")
    result = optimize(task, optimizer="protegi", options=OPTIONS, settings=settings(tmp_path))
    estimate = registry.create("protegi", OPTIONS).estimate(12, 12, 3)
    assert result.search_usage["task"]["calls"] <= estimate["task"]
    assert result.search_usage["optimizer"]["calls"] <= estimate["optimizer"]


def test_budget_ends_the_search_cleanly_with_the_seed(tmp_path: Path) -> None:
    task = write_animal_task(tmp_path / "task")
    result = optimize(
        task,
        optimizer="protegi",
        options={**OPTIONS, "reserve_final": False},
        budget={"task_calls": 20},
        settings=settings(tmp_path),
    )
    assert result.status == "budget" and result.stopped_by == "task_calls"
    assert result.search_usage["task"]["calls"] <= 20
    assert result.best.id == result.seed.id  # nothing reached the whole dev split
    assert result.test_best is not None and result.test_best.n == 18


def test_a_tight_budget_expands_fewer_beam_prompts(tmp_path: Path) -> None:
    """Round 1 needs 30 task calls plus 36 for the final scoring. Round 2 expanding
    both beam prompts would need 42 + 36, more than the 70 left of 100; expanding only
    the best one needs 30 + 36, so that is what it does."""
    events: list[Event] = []
    task = write_animal_task(tmp_path / "task")
    result = optimize(
        task,
        optimizer="protegi",
        options=OPTIONS,
        budget={"task_calls": 100},
        settings=settings(tmp_path, sinks=[events.append]),
    )
    assert result.best.prompt.instruction == KEY
    assert result.search_usage["task"]["calls"] <= 100
    assert not [e for e in events if isinstance(e, SearchStopped)]
    expanded = [e for e in events if isinstance(e, CandidateEvaluated) and e.split == "train-r2"]
    assert len(expanded) == 1  # one beam prompt looked for errors in round 2


def test_a_tight_budget_skips_rounds_to_pay_for_the_final_scoring(tmp_path: Path) -> None:
    """With 80 task calls, round 2 (30 + 36 even with one beam prompt) does not fit
    beside the final scoring in the 50 left after round 1."""
    events: list[Event] = []
    task = write_animal_task(tmp_path / "task")
    result = optimize(
        task,
        optimizer="protegi",
        options=OPTIONS,
        budget={"task_calls": 80},
        settings=settings(tmp_path, sinks=[events.append]),
    )
    assert result.status == "budget" and result.best.prompt.instruction == KEY
    assert result.search_usage["task"]["calls"] <= 80
    stops = [e for e in events if isinstance(e, SearchStopped)]
    assert len(stops) == 1 and "round 2 not started: task_calls left" in stops[0].reason
    assert max(step for *_, step in lineage(result.run_dir)) == 1


def test_optimizer_budget_stops_cleanly(tmp_path: Path) -> None:
    task = write_animal_task(tmp_path / "task")
    result = optimize(
        task,
        optimizer="protegi",
        options={**OPTIONS, "reserve_final": False},
        budget={"optimizer_calls": 2},
        settings=settings(tmp_path),
    )
    assert result.stopped_by == "optimizer_calls"
    assert result.search_usage["optimizer"]["calls"] <= 2
    assert result.best.id == result.seed.id


def test_malformed_replies_are_counted_and_never_crash(tmp_path: Path) -> None:
    """Gradients come back usable; every edit reply is unusable in its own way."""
    bad_edits = iter(
        [
            "",
            "<prompt></prompt>",
            "abcdefghijklmnopqrstuvwxyz " * 600,  # cut at 128 words: still too long
            "<prompt>Which animal is it?</prompt>",  # repeats the parent
            "<START><END>",
            "<prompt>Say <b>cat</b> or dog</prompt>",  # holds tags
        ]
        * 10
    )

    def junk(request: CompletionRequest) -> str:
        text = request.messages[-1].content
        if "could have gotten these examples wrong" in text:
            return responder(request)
        return next(bad_edits)

    events: list[Event] = []
    task = write_animal_task(tmp_path / "task")
    result = optimize(
        task,
        optimizer="protegi",
        options={**OPTIONS, "edits_per_gradient": 3},
        settings=settings(tmp_path, ScriptedLLM(junk, model_id="junk"), [events.append]),
    )
    assert result.status == "finished" and result.best.id == result.seed.id
    # rounds x gradients x edits, all on the seed (no edit ever joins the beam)
    assert result.rejected_replies == 2 * 2 * 3
    reasons = {e.reason for e in events if isinstance(e, ReplyRejected)}
    assert reasons == {"empty", "too long", "repeats the parent", "contains template tags"}


def test_a_model_that_never_gives_a_reason(tmp_path: Path) -> None:
    replies = ["", "<START>", "Reasons:", "ok", "1.\n2."]
    junk = ScriptedLLM(lambda r: replies[r.sample_index % len(replies)], model_id="junk")
    task = write_animal_task(tmp_path / "task")
    result = optimize(task, optimizer="protegi", options=OPTIONS, settings=settings(tmp_path, junk))
    assert result.best.id == result.seed.id and result.candidates == 1
    assert result.rejected_replies == 2 * 2  # rounds x gradient calls


def test_errors_shown_are_cut_to_fit_the_optimizer_context(tmp_path: Path) -> None:
    """The scripted model counts words: 4 errors do not fit in 140 with 128 for the
    reply, one does."""
    seen: list[str] = []

    def record(request: CompletionRequest) -> str:
        seen.append(request.messages[-1].content)
        return responder(request)

    small = ScriptedLLM(record, model_id="small", context_length=200)
    task = write_animal_task(tmp_path / "task")
    optimize(
        task,
        optimizer="protegi",
        options={**OPTIONS, "rounds": 1},
        settings=settings(tmp_path, small),
    )
    gradient_prompts = [s for s in seen if "could have gotten" in s]
    assert gradient_prompts and all(s.count("Input:") == 1 for s in gradient_prompts)


def test_same_seed_same_candidates(tmp_path: Path) -> None:
    task = write_animal_task(tmp_path / "task")
    first = optimize(task, optimizer="protegi", options=OPTIONS, settings=settings(tmp_path / "a"))
    second = optimize(task, optimizer="protegi", options=OPTIONS, settings=settings(tmp_path / "b"))
    assert lineage(first.run_dir) == lineage(second.run_dir)
    assert first.to_dict()["test"] == second.to_dict()["test"]
    assert first.search_usage["task"]["calls"] == second.search_usage["task"]["calls"]


def test_warm_rerun_makes_no_model_calls_and_gives_the_same_result(tmp_path: Path) -> None:
    task = write_animal_task(tmp_path / "task")
    cold = optimize(task, optimizer="protegi", options=OPTIONS, settings=settings(tmp_path))
    warm = optimize(task, optimizer="protegi", options=OPTIONS, settings=settings(tmp_path))
    assert cold.usage["optimizer"]["model_calls"] > 0
    assert warm.usage["task"]["model_calls"] == 0 and warm.usage["optimizer"]["model_calls"] == 0
    assert warm.usage["task"]["calls"] == cold.usage["task"]["calls"]
    assert warm.best.id == cold.best.id


@pytest.mark.parametrize(
    "option",
    [{"bogus": 1}, {"beam_size": 0}, {"selector": "thompson"}, {"temperature": "hot"}],
)
def test_bad_options_are_config_errors(tmp_path: Path, option: dict) -> None:
    from promptascent.errors import ConfigError

    task = write_animal_task(tmp_path / "task")
    with pytest.raises(ConfigError) as e:
        optimize(task, optimizer="protegi", options=option, settings=settings(tmp_path))
    assert next(iter(option)) in str(e.value)


# Parsing.


def test_reasons_in_paper_tags() -> None:
    reply = "Sure.<START>The prompt is vague.<END>\n<START>It never names the labels<END><START>Cut"
    assert parse_reasons(reply, min_chars=3) == [
        "The prompt is vague.",
        "It never names the labels",
        "Cut",
    ]
    assert parse_reasons("<START>reason one is here</START><start>and another one") == [
        "Reason one is here",
        "And another one",
    ]


def test_reasons_in_lists_and_lines() -> None:
    numbered = (
        "Here are 2 reasons why:\n"
        "1. The prompt does not say\n   which answers are allowed.\n"
        "2) It is ambiguous about direction.\n\nI hope this helps!"
    )
    assert parse_reasons(numbered) == [
        "The prompt does not say which answers are allowed.",
        "It is ambiguous about direction.",
    ]
    bullets = "- **Too vague** about the task\n* misses the format entirely"
    assert parse_reasons(bullets) == ["**Too vague** about the task", "Misses the format entirely"]
    assert parse_reasons("Reasons:\nThe prompt is far too short.\nIt lacks examples here.") == [
        "The prompt is far too short.",
        "It lacks examples here.",
    ]
    assert parse_reasons("Reason 1: it forgets the labels\nReason 2: it forgets the labels") == [
        "It forgets the labels"
    ]


def test_reasons_drop_echoes_and_junk() -> None:
    question = 'My current instruction is:\n"Which animal is it?"\nInput: cat\nExpected: dog'
    assert parse_reasons("Which animal is it?\nExpected: dog", echo=question) == []
    assert parse_reasons("") == [] and parse_reasons("ok") == []
    assert parse_reasons("x" * 500) == []
    assert parse_reasons("<START><b>bold</b> words here please<END>") == ["Bold words here please"]


def test_prompt_replies() -> None:
    assert parse_prompt_reply("<prompt>Answer yes or no.</prompt>").text == "Answer yes or no."
    assert parse_prompt_reply("<START>Answer yes or no.<END> and more").text == "Answer yes or no."
    assert parse_prompt_reply("Sure! Here is it: Answer yes or no.").text == "Answer yes or no."
    assert parse_prompt_reply("").reason == "empty"
    assert parse_prompt_reply("<prompt>Old one.</prompt>", forbidden=("old one",)).text is None


# The real embedded model, end to end, on a few navigate examples.


@pytest.mark.embedded
def test_protegi_on_the_embedded_model(tmp_path: Path, embedded: EmbeddedLLM) -> None:
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
    options = {
        "rounds": 1,
        "beam_size": 2,
        "minibatch_size": 4,
        "num_gradients": 1,
        "mc_samples": 1,
        "bandit_batch": 2,
        "bandit_pulls": 8,
        "max_tokens": 64,
    }
    budget: dict[str, float] = {"task_calls": 40, "optimizer_calls": 4}
    s = RunSettings(
        runs_dir=tmp_path / "runs",
        cache_dir=tmp_path / "cache",
        backends={"task": embedded, "optimizer": embedded, "judge": embedded},
    )
    result = optimize(task, optimizer="protegi", options=options, budget=budget, settings=s)
    assert result.status in ("finished", "budget")
    assert result.search_usage["task"]["calls"] <= 40
    assert result.search_usage["optimizer"]["calls"] <= 4
    seed_dev, best_dev = result.seed.score("dev"), result.best.score("dev")
    assert seed_dev is not None and best_dev is not None and best_dev >= seed_dev
    assert (result.run_dir / "result.json").exists()
    assert result.test_seed is not None and result.test_seed.n == 6
    print(
        f"\nseed dev {result.seed.score('dev')} test {result.test_seed.mean}; "
        f"best dev {result.best.score('dev')} "
        f"test {result.test_best.mean if result.test_best else None}; "
        f"candidates {result.candidates}, rejected {result.rejected_replies}, "
        f"best: {result.best.prompt.instruction!r}"
    )


def test_a_budget_too_small_for_the_full_final_still_gets_one_round(tmp_path: Path) -> None:
    """Round 1 (30 task calls) with the full final scoring (36) needs 66: more than 60.
    With the final cut to the round's best prompt and the seed (24), it fits: one round
    runs and its best prompt is scored on dev, the second beam prompt is not."""
    events: list[Event] = []
    task = write_animal_task(tmp_path / "task")
    result = optimize(
        task,
        optimizer="protegi",
        options=OPTIONS,
        budget={"task_calls": 60},
        settings=settings(tmp_path, sinks=[events.append]),
    )
    assert result.best.prompt.instruction == KEY and result.best.score("dev") == 1.0
    assert result.search_usage["task"]["calls"] <= 60
    on_dev = [e for e in events if isinstance(e, CandidateEvaluated) and e.split == "dev"]
    assert len(on_dev) == 2  # the seed and the best beam prompt
    stops = [e for e in events if isinstance(e, SearchStopped)]
    assert len(stops) == 1 and "round 2 not started" in stops[0].reason
