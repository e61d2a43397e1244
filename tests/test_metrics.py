"""Tests for the built-in metrics, normalisation and the metric registry."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from promptascent.data.example import Example
from promptascent.errors import ConfigError, MetricError
from promptascent.metrics.base import Metric, Score
from promptascent.metrics.builtin import (
    ChoiceAccuracy,
    Contains,
    ExactMatch,
    Numeric,
    RegexMatch,
    TokenF1,
    first_named_choice,
    parse_number,
)
from promptascent.metrics.normalize import normalize_text, tokens
from promptascent.metrics.registry import KNOWN_METRICS, get_metric, load_metric


def ex(
    target: str | None,
    *,
    choices: tuple[str, ...] | None = None,
    also: tuple[str, ...] = (),
    id: str = "e1",
) -> Example:
    return Example(id, "question", target, choices, also)


# ----------------------------------------------------------------------------- normalize


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ('"Paris."', "paris"),
        ("  Hello \t  World!! ", "hello world"),
        ("The Cat", "the cat"),
        ("-5", "-5"),
        ("(a)", "a"),
        ("« Ça va ? »", "ça va"),
        ("ＦＵＬＬ　width", "full width"),
        ("Straße", "strasse"),
        ("", ""),
        ("...", ""),
    ],
)
def test_normalize_text(raw: str, expected: str) -> None:
    assert normalize_text(raw) == expected


@given(st.text())
def test_normalize_is_idempotent(text: str) -> None:
    once = normalize_text(text)
    assert normalize_text(once) == once


def test_tokens_drop_punctuation() -> None:
    assert tokens("It's, the  END.") == ["its", "the", "end"]


# ----------------------------------------------------------------------------- exact_match


@pytest.mark.parametrize(
    ("output", "value"),
    [
        ("Paris", 1.0),
        ("  paris. ", 1.0),
        ('"PARIS"', 1.0),
        ("Paris, France", 0.0),
        ("the Paris", 0.0),
        ("Lutèce", 1.0),
    ],
)
def test_exact_match(output: str, value: float) -> None:
    assert ExactMatch().score(output, ex("Paris", also=("lutèce",))).value == value


def test_exact_match_empty_output_is_unparsed() -> None:
    assert ExactMatch().score("  ", ex("Paris")) == Score(0.0, parsed=False, prediction=None)


def test_exact_match_needs_a_target() -> None:
    with pytest.raises(MetricError, match="'e1'"):
        ExactMatch().score("x", ex(None))


# ----------------------------------------------------------------------------- contains


@pytest.mark.parametrize(
    ("output", "value"),
    [
        ("The answer is Paris.", 1.0),
        ("I think paris, france", 1.0),
        ("Parisian food", 0.0),
        ("new york city", 1.0),
        ("New   York", 1.0),
        ("Newark", 0.0),
    ],
)
def test_contains_whole_words(output: str, value: float) -> None:
    assert Contains().score(output, ex("Paris", also=("New York.",))).value == value


# ----------------------------------------------------------------------------- choice_accuracy

YES_NO = ("yes", "no")
PLAUSIBLE = ("plausible", "implausible")
AB = ("(a)", "(b)")
INTENTS = ("add_to_playlist", "book_restaurant", "rate_book")


@pytest.mark.parametrize(
    ("output", "target", "choices", "value", "prediction"),
    [
        ("Yes.", "yes", YES_NO, 1.0, "yes"),
        ("NO", "yes", YES_NO, 0.0, "no"),
        ("No, wait: yes", "yes", YES_NO, 0.0, "no"),
        ("yes or no? yes", "yes", YES_NO, 1.0, "yes"),
        ("implausible", "implausible", PLAUSIBLE, 1.0, "implausible"),
        ("Implausible.", "plausible", PLAUSIBLE, 0.0, "implausible"),
        ("This is implausible, not plausible", "implausible", PLAUSIBLE, 1.0, "implausible"),
        ("Plausible!", "plausible", PLAUSIBLE, 1.0, "plausible"),
        ("(b) is sarcastic, (a) is not", "(a)", AB, 0.0, "(b)"),
        ("Answer: (a).", "(a)", AB, 1.0, "(a)"),
        ("(A)", "(a)", AB, 1.0, "(a)"),
        ("book restaurant", "book_restaurant", INTENTS, 1.0, "book_restaurant"),
        ("Intent: BOOK_RESTAURANT", "book_restaurant", INTENTS, 1.0, "book_restaurant"),
        ("rate book, not book restaurant", "book_restaurant", INTENTS, 0.0, "rate_book"),
        ("True", "True", ("True", "False"), 1.0, "True"),
        ("it is false.", "True", ("True", "False"), 0.0, "False"),
        ("wall-e", "wall-e", ("wall-e", "wall"), 1.0, "wall-e"),
        ("Ça va", "ça va", ("ça va", "non"), 1.0, "ça va"),
    ],
)
def test_choice_accuracy(
    output: str, target: str, choices: tuple[str, ...], value: float, prediction: str
) -> None:
    assert ChoiceAccuracy().score(output, ex(target, choices=choices)) == Score(
        value, prediction=prediction
    )


@pytest.mark.parametrize(
    ("output", "choices"),
    [
        ("", YES_NO),
        ("I am not sure", YES_NO),
        ("yesterday nobody came", YES_NO),
        ("a", AB),
        ("book", INTENTS),
        ("the statement is implausibly odd", PLAUSIBLE),
    ],
)
def test_choice_accuracy_unparsed_is_never_a_default_class(
    output: str, choices: tuple[str, ...]
) -> None:
    score = ChoiceAccuracy().score(output, ex(choices[0], choices=choices))
    assert score == Score(0.0, parsed=False, prediction=None)


def test_choice_accuracy_also_accept_maps_to_target() -> None:
    example = ex("True", choices=("True", "False"), also=("correct",))
    assert ChoiceAccuracy().score("Correct.", example) == Score(1.0, prediction="True")
    assert ChoiceAccuracy().score("false, not correct", example).prediction == "False"


def test_choice_accuracy_requires_choices_and_target() -> None:
    with pytest.raises(MetricError, match=r"example 'q7' has no choices"):
        ChoiceAccuracy().score("yes", ex("yes", id="q7"))
    with pytest.raises(MetricError, match="'q8'"):
        ChoiceAccuracy().score("yes", ex(None, choices=YES_NO, id="q8"))


@given(st.text(), st.sampled_from([YES_NO, PLAUSIBLE, AB, INTENTS]))
def test_choice_accuracy_never_raises_on_text(output: str, choices: tuple[str, ...]) -> None:
    score = ChoiceAccuracy().score(output, ex(choices[-1], choices=choices))
    assert score.value in (0.0, 1.0)
    assert score.parsed == (score.prediction is not None)
    assert score.prediction is None or score.prediction in choices


# ----------------------------------------------------------------------------- regex


def test_regex_group_and_whole_match() -> None:
    grouped = RegexMatch(r"Answer:\s*(\w+)")
    assert grouped.score("blah. Answer: Yes", ex("yes")) == Score(1.0, prediction="Yes")
    assert grouped.score("Answer: no", ex("yes")).value == 0.0
    assert grouped.score("no answer here", ex("yes")) == Score(0.0, parsed=False)
    whole = RegexMatch(r"\d+")
    assert whole.score("I see 42 apples", ex("42")) == Score(1.0, prediction="42")


def test_regex_invalid_pattern_is_config_error() -> None:
    with pytest.raises(ConfigError, match="invalid pattern"):
        RegexMatch("(unclosed")


# ----------------------------------------------------------------------------- numeric


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("twelve", 12.0),
        ("There are Twenty-one apples", 21.0),
        ("ninety nine", 99.0),
        ("zero", 0.0),
        ("-1,234.5 and 3", -1234.5),
        ("\u22125 degrees", -5.0),
        ("It costs $12.", 12.0),
        ("v2 and 12th, then 7", 7.0),
        ("0.5", 0.5),
        ("seventeen", 17.0),
        ("no numbers", None),
        ("someone", None),
    ],
)
def test_parse_number(text: str, number: float | None) -> None:
    assert parse_number(text) == number


@pytest.mark.parametrize(
    ("output", "value", "parsed"),
    [
        ("I count 12 objects.", 1.0, True),
        ("Twelve.", 1.0, True),
        ("12.0", 1.0, True),
        ("13", 0.0, True),
        ("eleven, no, twelve", 0.0, True),
        ("I cannot count", 0.0, False),
    ],
)
def test_numeric(output: str, value: float, parsed: bool) -> None:
    score = Numeric().score(output, ex("twelve", also=("12",)))
    assert (score.value, score.parsed) == (value, parsed)


def test_numeric_tolerance_and_non_numeric_target() -> None:
    loose = Numeric(tolerance=0.01)
    assert loose.score("100.9", ex("100")).value == 1.0
    assert loose.score("101.5", ex("100")).value == 0.0
    assert loose.score("0.005", ex("0")).value == 1.0
    assert Numeric().score("100.9", ex("100")).value == 0.0
    with pytest.raises(MetricError, match="numeric target"):
        Numeric().score("3", ex("three cats"))
    with pytest.raises(ConfigError):
        Numeric(tolerance=-1)


# ----------------------------------------------------------------------------- token_f1


def test_token_f1() -> None:
    f1 = TokenF1()
    assert f1.score("the cat sat", ex("The cat sat.")).value == 1.0
    # 2 common tokens of 3 predicted and 4 gold: p = 2/3, r = 1/2, f1 = 4/7.
    assert f1.score("the cat ran", ex("the cat sat down")).value == pytest.approx(4 / 7)
    assert f1.score("a dog", ex("the cat")).value == 0.0
    # Best over the accepted answers; repeated tokens count once per occurrence.
    assert f1.score("cat cat", ex("dog", also=("cat",))).value == pytest.approx(2 / 3)
    assert f1.score("...", ex("cat")) == Score(0.0, parsed=False)


# ----------------------------------------------------------------------------- registry


def test_registry_names_and_dicts() -> None:
    assert KNOWN_METRICS == (
        "choice_accuracy",
        "contains",
        "exact_match",
        "judge",
        "numeric",
        "regex",
        "token_f1",
    )
    for name in ("exact_match", "contains", "choice_accuracy", "token_f1", "numeric"):
        metric = get_metric(name)
        assert isinstance(metric, Metric)
        assert metric.name == name
    regex = get_metric({"name": "regex", "pattern": r"(\d+)"})
    assert isinstance(regex, RegexMatch)
    numeric = get_metric({"name": "numeric", "tolerance": 0.01})
    assert isinstance(numeric, Numeric) and numeric.tolerance == 0.01


def test_registry_errors() -> None:
    with pytest.raises(ConfigError, match=r"unknown metric 'bleu'.*choice_accuracy.*token_f1"):
        get_metric("bleu")
    with pytest.raises(ConfigError, match="unknown option 'tolerence'"):
        get_metric({"name": "numeric", "tolerence": 0.1})
    with pytest.raises(ConfigError, match="unknown option 'pattern'"):
        get_metric({"name": "exact_match", "pattern": "x"})
    with pytest.raises(ConfigError, match="missing option 'pattern'"):
        get_metric("regex")
    with pytest.raises(ConfigError, match="'name'"):
        get_metric({"pattern": "x"})


@pytest.fixture
def metric_module(tmp_path: Path) -> Iterator[str]:
    name = "pa_test_user_metrics"
    (tmp_path / f"{name}.py").write_text(
        textwrap.dedent(
            """
            from promptascent.metrics.base import Score

            def length_ok(output, example):
                return len(output) <= 5

            def half(output, example):
                return 0.5

            def too_big(output, example):
                return 2.0

            def score_obj(output, example):
                return Score(1.0, prediction=output)

            def broken(output, example):
                raise KeyError("boom")

            def no_target(output, example):
                return 1.0

            no_target.needs_target = False
            NOT_CALLABLE = 3
            """
        ),
        encoding="utf-8",
    )
    sys.path.insert(0, str(tmp_path))
    try:
        yield name
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop(name, None)


def test_callable_metric(metric_module: str) -> None:
    example = ex("x")
    metric = get_metric(f"{metric_module}:length_ok", code_dir=Path("."))
    assert metric.name == f"{metric_module}:length_ok"
    assert metric.needs_target is True
    assert metric.score("abc", example) == Score(1.0)
    assert metric.score("abcdefgh", example) == Score(0.0)
    assert load_metric(f"{metric_module}:half").score("", example).value == 0.5
    assert load_metric(f"{metric_module}:score_obj").score("hi", example).prediction == "hi"
    assert load_metric(f"{metric_module}:no_target").needs_target is False
    with pytest.raises(MetricError, match=r"outside \[0, 1\]"):
        load_metric(f"{metric_module}:too_big").score("", example)
    with pytest.raises(MetricError, match="KeyError"):
        load_metric(f"{metric_module}:broken").score("", example)


def test_callable_metric_load_errors(metric_module: str) -> None:
    with pytest.raises(ConfigError, match="no_such_module_xyz:f"):
        load_metric("no_such_module_xyz:f")
    with pytest.raises(ConfigError, match=f"{metric_module}:missing"):
        load_metric(f"{metric_module}:missing")
    with pytest.raises(ConfigError, match="not callable"):
        load_metric(f"{metric_module}:NOT_CALLABLE")
    with pytest.raises(ConfigError, match="module:function"):
        load_metric("just_a_module:")


@pytest.mark.parametrize(
    ("output", "prediction"),
    [
        ("Not plausible.", None),  # names no choice as the answer: unparsed, not "plausible"
        ("It is not True, so False.", "False"),
        ("This isn't plausible; it is implausible.", "implausible"),
        ("The sentence is never plausible", None),
        ("plausible, not implausible", "plausible"),
        ("Nothing odd: plausible", "plausible"),  # "not" only as a whole word
    ],
)
def test_a_negated_choice_is_not_the_answer(output: str, prediction: str | None) -> None:
    choices = ("True", "False") if "True" in output else ("plausible", "implausible")
    assert first_named_choice(output, choices) == prediction


def test_code_is_refused_where_no_task_file_names_it() -> None:
    """A spec from a data folder's task.json is looked up without a task file's folder:
    built-in metrics only."""
    assert get_metric({"name": "numeric", "tolerance": 0.5}).name == "numeric"
    for spec in ("os:system", {"name": "./m.py:score"}):
        with pytest.raises(ConfigError, match="code is named only in the task file you pass"):
            get_metric(spec)


# Feedback: a sentence on each verdict, for an optimizer that reflects (GEPA).


def test_choice_accuracy_feedback_says_what_was_expected_and_what_was_named() -> None:
    e = ex("yes", choices=("yes", "no"))
    assert ChoiceAccuracy().score("No.", e).feedback == "expected yes, got no"
    assert ChoiceAccuracy().score("yes", e).feedback == "correct"
    unparsed = ChoiceAccuracy().score("maybe", e)
    assert unparsed.feedback == "expected yes, but the answer was not one of: yes, no"


@pytest.mark.parametrize(
    ("metric", "output", "target", "feedback"),
    [
        (ExactMatch(), "Rome", "Paris", "expected 'Paris', got 'rome'"),
        (ExactMatch(), "  ", "Paris", "the output was empty"),
        (Contains(), "It is Rome", "Paris", "the output did not contain 'Paris'"),
        (Numeric(), "about 12", "13", "expected 13, got 12"),
        (Numeric(), "no idea", "13", "expected 13, but the output held no number"),
        (RegexMatch(r"ANSWER: (\w+)"), "Paris", "Paris", None),
        (TokenF1(), "the red car", "the blue car", None),
    ],
)
def test_built_in_metrics_give_feedback(
    metric: Metric, output: str, target: str, feedback: str | None
) -> None:
    got = metric.score(output, ex(target)).feedback
    if feedback is None:  # wording of its own: says what was expected
        assert got is not None and target in got
    else:
        assert got == feedback


def test_feedback_changes_neither_the_score_nor_equality() -> None:
    e = ex("yes", choices=("yes", "no"))
    verdict = ChoiceAccuracy().score("no", e)
    assert verdict == Score(0.0, prediction="no")
    assert (verdict.value, verdict.parsed) == (0.0, True)


def test_a_user_metrics_feedback_reaches_the_result(tmp_path: Path) -> None:
    from promptascent.evaluation.evaluator import Evaluator
    from promptascent.llm.budget import Budget, BudgetGuard
    from promptascent.llm.client import ModelClient
    from promptascent.llm.scripted import ScriptedLLM
    from promptascent.llm.usage import UsageMeter
    from promptascent.metrics.builtin import CallableMetric
    from promptascent.prompts.prompt import Prompt

    def graded(output: str, example: Example) -> Score:
        return Score(0.5, feedback=f"half right: {output}")

    meter = UsageMeter()
    llm = ScriptedLLM(lambda r: "seven", model_id="s")
    client = ModelClient("task", llm, meter=meter, guard=BudgetGuard(Budget(), meter))
    evaluator = Evaluator(client, CallableMetric("m:graded", graded))
    result = evaluator.evaluate(Prompt("Count."), [ex("7")])
    assert result.results[0].feedback == "half right: seven"
