"""LLM judges: tolerant parsing of small-model verdicts, rubric scores, pairwise votes
with A/B swapped, agreement, errors that are never votes, and prompts that fit."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scripted import KEY, optimizer_model, task_model, write_animal_task

from promptascent import RunSettings, optimize
from promptascent.data.example import Example
from promptascent.errors import BudgetExhausted, ConfigError, ModelError, ModelServerError
from promptascent.evaluation.evaluator import Evaluator
from promptascent.llm.budget import Budget, BudgetGuard
from promptascent.llm.client import ModelClient
from promptascent.llm.scripted import ScriptedLLM
from promptascent.llm.types import CompletionRequest
from promptascent.llm.usage import UsageMeter
from promptascent.metrics.base import Score
from promptascent.metrics.judge import (
    JudgeStats,
    PairwiseJudge,
    RubricJudge,
    parse_preference,
    parse_rating,
)
from promptascent.metrics.registry import get_metric
from promptascent.prompts.fit import fit_pieces, prompt_limit, truncate
from promptascent.prompts.prompt import Prompt
from promptascent.store.run_store import RunStore


def client(responder, *, context_length: int = 4096, budget: Budget = Budget()) -> ModelClient:
    meter = UsageMeter()
    llm = ScriptedLLM(responder, model_id="scripted-judge", context_length=context_length)
    return ModelClient("judge", llm, meter=meter, guard=BudgetGuard(budget, meter))


def prompt_of(request: CompletionRequest) -> str:
    return request.messages[-1].content


# ----------------------------------------------------------------------------- parsers


@pytest.mark.parametrize(
    ("reply", "rating"),
    [
        ("Score: 4", 4.0),
        ("score:4/5", 4.0),
        ("4/5", 4.0),
        ("**4**", 4.0),
        ("4", 4.0),
        ("4.5", 4.5),
        ("I would rate this 4 out of 5.", 4.0),
        ("I'd give it a four.", 4.0),
        ("Four.", 4.0),
        ("Rating: 8/10", 4.0),  # rescaled to the 1..5 scale
        ("Score: 7", 5.0),  # clamped
        ("Score: 0", 1.0),  # clamped
        ("The output has 3 sentences. Score: 2", 2.0),  # the rating word wins
        ("The output is clear and correct. 5", 5.0),
        ("## Score\n**3**", 3.0),
        ("Given the input, the answer is fine.", None),
        ("The output is good.", None),
        ("", None),
        ("Score: none", None),
        ("There are 12 words.", None),  # 12 is outside the scale and not a rating
    ],
)
def test_parse_rating(reply: str, rating: float | None) -> None:
    assert parse_rating(reply, 1, 5) == rating


@pytest.mark.parametrize(
    ("reply", "verdict"),
    [
        ("<choose>A</choose>", "A"),
        ("<analyse>A is short.</analyse>\n<choose>B</choose>", "B"),
        ("<choose> B", "B"),  # unclosed
        ("<choose>A/B</choose>", None),  # the template's own placeholder
        ("A", "A"),
        ("(B)", "B"),
        ("**A**", "A"),
        ("B.", "B"),
        ("Output B is better.", "B"),
        ("A is indeed better because it follows the format.", "A"),
        ("Response A is clearly better.", "A"),
        ("I prefer Response B.", "B"),
        ("I choose output A", "A"),
        ("The better response is B.", "B"),
        ("Choice: A", "A"),
        ("The answer is B", "B"),
        ("the first one", "A"),
        ("The second response is better.", "B"),
        ("I would pick the second", "B"),
        ("B > A", "B"),
        ("A is worse than B.", "B"),
        ("Response A: long. Response B: short. I prefer B.", "B"),
        ("A is better. But B is better in style.", "A"),  # the first clear verdict
        ("It's a tie.", "tie"),
        ("Both are equally good.", "tie"),
        ("Neither output meets the requirements.", "tie"),
        ("B. Because it uses capital letters.", "B"),
        ("A or B", None),
        ("A/B", None),
        ("A lot of thinking and analysis.", None),  # "A" the article
        ("a good answer", None),
        ("The outputs differ in length.", None),
        ("", None),
    ],
)
def test_parse_preference(reply: str, verdict: str | None) -> None:
    assert parse_preference(reply) == verdict


@given(st.text(max_size=300), st.integers(-5, 5), st.integers(1, 10))
def test_parse_rating_never_crashes_and_stays_in_range(text: str, low: int, span: int) -> None:
    rating = parse_rating(text, low, low + span)
    assert rating is None or low <= rating <= low + span


@given(st.text(max_size=300))
def test_parse_preference_never_crashes(text: str) -> None:
    assert parse_preference(text) in (None, "A", "B", "tie")


@given(st.text(alphabet=st.sampled_from("AB <>/choose.,:12345 Score"), max_size=80))
def test_parsers_never_crash_on_verdict_like_text(text: str) -> None:
    parse_preference(text)
    parse_rating(text, 1, 5)


# ----------------------------------------------------------------------------- rubric metric


def example(target: str | None = None) -> Example:
    return Example("e1", "What is 2 + 2?", target=target)


def test_rubric_votes_are_averaged_and_an_unparsed_vote_is_not_a_score() -> None:
    replies = {0: "Score: 4", 1: "I cannot say.", 2: "5/5"}
    judge = RubricJudge(votes=3).bind(client(lambda r: replies[r.sample_index]))
    score = judge.score("4", example())
    assert score == Score((4.5 - 1) / 4, prediction="4.5")
    s = judge.stats
    assert (s.votes, s.unparsed, s.errors) == (2, 1, 0)
    assert (s.agreeing_pairs, s.compared_pairs) == (0, 1)


def test_rubric_without_any_rating_scores_zero_unparsed() -> None:
    judge = RubricJudge(votes=2).bind(client(lambda r: "The answer looks fine to me."))
    assert judge.score("4", example()) == Score(0.0, parsed=False)
    assert judge.stats.unparsed == 2 and judge.stats.votes == 0


def test_rubric_errors_are_counted_never_votes() -> None:
    def flaky(request: CompletionRequest) -> str:
        if request.sample_index == 0:
            raise ModelServerError("http://judge: 503")
        return "Score: 2"

    judge = RubricJudge(votes=2).bind(client(flaky))
    assert judge.score("5", example()).value == pytest.approx(0.25)
    assert (judge.stats.votes, judge.stats.errors) == (1, 1)


def test_rubric_raises_when_every_call_failed() -> None:
    def down(request: CompletionRequest) -> str:
        raise ModelServerError("http://judge: 503")

    judge = RubricJudge(votes=2).bind(client(down))
    with pytest.raises(ModelError):
        judge.score("5", example())
    assert judge.stats.errors == 2


def test_rubric_prompt_shows_the_rubric_input_output_and_reference_only_when_given() -> None:
    llm_client = client(lambda r: "Score: 5")
    judge = RubricJudge(rubric="Be brief.", low=0, high=10).bind(llm_client)
    assert judge.score("4", example(target="4")).value == pytest.approx(0.5)
    judge.score("four", example())
    with_ref, without = (prompt_of(r) for r in llm_client.backend.requests)  # type: ignore[attr-defined]
    for text in (with_ref, without):
        assert "Be brief." in text and "What is 2 + 2?" in text and "from 0 to 10" in text
    assert "Reference answer" in with_ref and "Reference answer" not in without


def test_rubric_empty_output_scores_zero_without_a_call() -> None:
    llm_client = client(lambda r: "Score: 5")
    judge = RubricJudge().bind(llm_client)
    assert judge.score("  ", example()) == Score(0.0, parsed=False)
    assert llm_client.backend.requests == []  # type: ignore[attr-defined]


def test_rubric_before_bind_is_a_clear_error_and_check_calls_nothing() -> None:
    judge = get_metric({"name": "judge", "rubric": "Short answers.", "votes": 3})
    assert isinstance(judge, RubricJudge) and judge.votes == 3 and not judge.needs_target
    judge.check(example())  # what the runner's validation calls: no model needed
    with pytest.raises(RuntimeError, match="no judge model bound"):
        judge.score("4", example())


def test_bind_returns_a_copy_counting_into_the_given_stats() -> None:
    stats = JudgeStats()
    unbound = RubricJudge()
    bound = unbound.bind(client(lambda r: "Score: 3"), stats)
    bound.score("x", example())
    assert stats.votes == 1 and unbound.stats.votes == 0
    with pytest.raises(RuntimeError):
        unbound.score("x", example())


@pytest.mark.parametrize(
    "options",
    [
        {"bogus": 1},
        {"low": 5, "high": 1},
        {"votes": 0},
        {"votes": 1.5},
        {"rubric": ""},
        {"temperature": 3},
    ],
)
def test_bad_judge_options_are_config_errors(options: dict) -> None:
    with pytest.raises(ConfigError, match="metric judge"):
        get_metric({"name": "judge", **options})


def test_repeated_votes_default_to_a_temperature_that_can_differ() -> None:
    assert RubricJudge().temperature == 0.0
    assert RubricJudge(votes=3).temperature > 0


# ----------------------------------------------------------------------------- evaluator


def test_a_judge_error_is_a_per_example_error_and_the_budget_still_stops() -> None:
    def down(request: CompletionRequest) -> str:
        raise ModelServerError("http://judge: 503")

    meter = UsageMeter()
    guard = BudgetGuard(Budget(), meter)
    task = ModelClient("task", ScriptedLLM(lambda r: "4"), meter=meter, guard=guard)
    evaluator = Evaluator(task, RubricJudge().bind(client(down)), concurrency=1)
    result = evaluator.evaluate(Prompt("Answer."), [example()])
    (r,) = result.results
    assert r.score is None and r.output == "4" and "503" in (r.error or "")
    assert result.errors == 1 and result.n == 0

    broke = client(lambda r: "Score: 5", budget=Budget(judge_calls=1))
    broke.complete(CompletionRequest(messages=()))  # spends the one judge call
    evaluator = Evaluator(task, RubricJudge().bind(broke), concurrency=1)
    with pytest.raises(BudgetExhausted):
        evaluator.evaluate(Prompt("Answer."), [example()])


# ----------------------------------------------------------------------------- pairwise


def blocks(text: str) -> tuple[list[str], list[str]]:
    """The A and B outputs a pairwise judge prompt shows, in order."""
    a = re.findall(r"\nA:\n(.*?)\n\nB:", text, re.S)
    b = re.findall(r"\nB:\n(.*?)(?:\n\nReference|\n\n---|\n\nWhich is better)", text, re.S)
    return a, b


def capitals_judge(request: CompletionRequest) -> str:
    """A consistent judge: prefers the set with more upper-case outputs, in prose."""
    a, b = blocks(prompt_of(request))
    up_a, up_b = sum(x.isupper() for x in a), sum(x.isupper() for x in b)
    if up_a == up_b:
        return "Both are equally good."
    return "Output A is better." if up_a > up_b else "I prefer B."


INPUTS = ["cat", "dog", "owl"]
LOWER = ["cat", "dog", "owl"]
UPPER = ["CAT", "DOG", "OWL"]


def test_a_consistent_judge_picks_the_better_set_from_both_positions() -> None:
    judge = PairwiseJudge(client(capitals_judge))
    pref = judge.compare("Answer in capital letters.", INPUTS, LOWER, UPPER, votes=4)
    assert (pref.winner, pref.a, pref.b, pref.ties) == ("B", 0, 4, 0)
    assert pref.agreement == 1.0 and pref.verdicts == ("B", "B", "B", "B")
    pref = judge.compare("Answer in capital letters.", INPUTS, UPPER, LOWER, votes=4)
    assert pref.winner == "A"


def test_every_second_vote_swaps_the_positions() -> None:
    llm_client = client(lambda r: "A")
    PairwiseJudge(llm_client).compare("req", INPUTS, LOWER, UPPER, votes=4)
    requests = llm_client.backend.requests  # type: ignore[attr-defined]
    assert [r.sample_index for r in requests] == [0, 1, 2, 3]
    shown = [blocks(prompt_of(r)) for r in requests]
    assert shown[0] == (LOWER, UPPER) and shown[2] == (LOWER, UPPER)
    assert shown[1] == (UPPER, LOWER) and shown[3] == (UPPER, LOWER)


def test_a_position_biased_judge_is_a_tie_and_agrees_at_chance() -> None:
    stats = JudgeStats()
    judge = PairwiseJudge(client(lambda r: "<choose>A</choose>"), stats=stats)
    pref = judge.compare("req", INPUTS, LOWER, UPPER, votes=4)
    # A, B, A, B once unswapped: no majority, so the challenger (B) does not win
    assert (pref.winner, pref.a, pref.b) == ("tie", 2, 2)
    assert pref.agreement == pytest.approx(2 / 6)
    judge.compare("req", INPUTS, LOWER, UPPER, votes=4)
    assert stats.compared_pairs == 12 and stats.near_chance
    assert any("near chance" in w for w in stats.warnings())


def test_pairwise_errors_and_unparsed_replies_are_counted_never_votes() -> None:
    def flaky(request: CompletionRequest) -> str:
        if request.sample_index == 1:
            raise ModelServerError("http://judge: 503")
        if request.sample_index == 2:
            return "Hmm, hard to say."
        return capitals_judge(request)

    stats = JudgeStats()
    pref = PairwiseJudge(client(flaky), stats=stats).compare("req", INPUTS, LOWER, UPPER, votes=4)
    assert (pref.winner, pref.b, pref.unparsed, pref.errors) == ("B", 2, 1, 1)
    assert pref.verdicts == ("B", None, None, "B")
    assert (stats.votes, stats.unparsed, stats.errors) == (2, 1, 1)


def test_no_usable_vote_is_a_tie_and_the_warning_says_the_judge_never_ran() -> None:
    def down(request: CompletionRequest) -> str:
        raise ModelServerError("http://judge: 503")

    stats = JudgeStats()
    pref = PairwiseJudge(client(down), stats=stats).compare("req", INPUTS, LOWER, UPPER)
    assert pref.winner == "tie" and pref.errors == 4 and pref.agreement is None
    assert any("no usable verdict in 4 calls" in w for w in stats.warnings())


def test_a_strict_majority_is_needed() -> None:
    replies = {0: "B", 1: "B", 2: "B", 3: "Both are equally good."}  # 1 is swapped: A
    pref = PairwiseJudge(client(lambda r: replies[r.sample_index])).compare(
        "req", INPUTS, LOWER, UPPER, votes=4
    )
    assert (pref.a, pref.b, pref.ties, pref.winner) == (1, 2, 1, "B")
    replies = {0: "B", 1: "B", 2: "It's a tie.", 3: "tie"}
    pref = PairwiseJudge(client(lambda r: replies[r.sample_index])).compare(
        "req", INPUTS, LOWER, UPPER, votes=4
    )
    assert (pref.a, pref.b, pref.winner) == (1, 1, "tie")


def test_references_are_shown_only_where_samples_have_them() -> None:
    llm_client = client(lambda r: "A")
    PairwiseJudge(llm_client).compare(
        "req", INPUTS, LOWER, UPPER, references=["CAT", None, ""], votes=1
    )
    text = prompt_of(llm_client.backend.requests[0])  # type: ignore[attr-defined]
    assert text.count("Reference (the wanted format)") == 1 and "\nCAT" in text


# ----------------------------------------------------------------------------- fitting


def test_the_judge_prompt_is_cut_to_fit_the_context() -> None:
    long = " ".join(["word"] * 3000)
    llm_client = client(lambda r: "B", context_length=600)
    pref = PairwiseJudge(llm_client, max_tokens=48).compare(
        "Answer in capital letters.", ["short input"] * 3, [long] * 3, ["OK"] * 3, votes=2
    )
    assert pref.errors == 0 and pref.b + pref.a == 2
    limit = prompt_limit(600, 48)
    for request in llm_client.backend.requests:  # type: ignore[attr-defined]
        text = prompt_of(request)
        assert len(text.split()) <= limit
        assert "[...]" in text and "short input" in text and "Answer in capital letters." in text


def test_a_prompt_that_cannot_fit_is_an_error_for_every_vote_and_no_call() -> None:
    llm_client = client(lambda r: "B", context_length=60)
    pref = PairwiseJudge(llm_client, max_tokens=48).compare("req", INPUTS, LOWER, UPPER)
    assert pref.errors == 4 and pref.winner == "tie"
    assert llm_client.backend.requests == []  # type: ignore[attr-defined]


def test_fit_pieces_keeps_short_pieces_whole_and_shares_the_rest() -> None:
    def count(text: str) -> int:
        return len(text.split())

    pieces = ["a b", " ".join(["x"] * 100), " ".join(["y"] * 100)]
    text = fit_pieces(lambda p: " | ".join(p), pieces, limit=50, count_tokens=count)
    a, x, y = text.split(" | ")
    assert a == "a b" and count(text) <= 50
    assert abs(count(x) - count(y)) <= 1 and x.endswith("[...]")
    assert fit_pieces(lambda p: "".join(p), ["fits"], limit=5, count_tokens=count) == "fits"
    assert truncate("one two three", 10, count) == "one two three"


# ----------------------------------------------------------------------------- in a run


def judge_responder(request: CompletionRequest) -> str:
    """Rates 5 an output that is the reference answer, 1 otherwise; in prose."""
    text = prompt_of(request)
    output = re.search(r"Output:\n(.*?)\n", text, re.S)
    reference = re.search(r"Reference answer \(the wanted answer\):\n(.*?)\n", text, re.S)
    if output and reference and output.group(1).strip() == reference.group(1).strip():
        return "I would rate this 5 out of 5."
    return "**1**"


def test_a_run_with_the_judge_metric_counts_judge_calls_and_records_agreement(
    tmp_path: Path,
) -> None:
    task = write_animal_task(tmp_path / "task")
    text = task.read_text().replace("metric: choice_accuracy", "metric: {name: judge}")
    task.write_text(text)
    settings = RunSettings(
        runs_dir=tmp_path / "runs",
        cache_dir=tmp_path / "cache",
        backends={
            "task": task_model(),
            "optimizer": optimizer_model(),
            "judge": ScriptedLLM(judge_responder, model_id="judge"),
        },
    )
    options = {"num_candidates": 3, "eval_examples": 6, "rounds": 0, "final_k": 2}
    result = optimize(task, optimizer="ape", options=options, settings=settings)
    assert result.best.prompt.instruction == KEY
    assert result.test_best is not None and result.test_best.mean == 1.0
    assert result.usage["judge"]["calls"] > 0
    assert result.judge is not None and result.judge["votes"] == result.usage["judge"]["calls"]
    store = RunStore.open_existing(result.run_dir)
    try:
        assert store.get("judge") == result.judge
    finally:
        store.close()


def test_a_judge_that_disagrees_with_itself_is_reported(tmp_path: Path) -> None:
    task = write_animal_task(tmp_path / "task")
    text = task.read_text().replace("metric: choice_accuracy", "metric: {name: judge, votes: 2}")
    task.write_text(text)
    noisy = ScriptedLLM(lambda r: "Score: 5" if r.sample_index else "Score: 1", model_id="noisy")
    settings = RunSettings(
        runs_dir=tmp_path / "runs",
        cache_dir=None,
        backends={"task": task_model(), "optimizer": optimizer_model(), "judge": noisy},
    )
    options = {"num_candidates": 1, "eval_examples": 4, "rounds": 0, "final_k": 1}
    result = optimize(task, optimizer="ape", options=options, settings=settings)
    assert result.judge is not None and result.judge["agreement"] == 0.0
    assert any("near chance" in n for n in result.notes)
