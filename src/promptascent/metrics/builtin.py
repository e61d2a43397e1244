"""The built-in metrics. Each satisfies the Metric protocol of metrics.base."""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable
from functools import lru_cache

from promptascent.data.example import Example
from promptascent.errors import ConfigError, MetricError
from promptascent.metrics.base import Score
from promptascent.metrics.normalize import (
    find_phrase,
    fold,
    match_form,
    normalize_text,
    phrase_pattern,
    tokens,
)


def _unparsed(why: str) -> Score:
    """An unparsed output (scores 0), with feedback saying why no answer was read."""
    return Score(0.0, parsed=False, prediction=None, feedback=why)


def _verdict(hit: bool, got: str, expected: str, *, prediction: str | None = None) -> Score:
    """1 or 0 with feedback: "correct" or "expected X, got Y"."""
    feedback = "correct" if hit else f"expected {expected}, got {got}"
    chosen = got if prediction is None else prediction
    return Score(1.0 if hit else 0.0, prediction=chosen, feedback=feedback)


def _expected(targets: tuple[str, ...]) -> str:
    return " or ".join(repr(t) for t in targets[:3])


def _targets(example: Example, metric: str) -> tuple[str, ...]:
    """The accepted answers; MetricError when the example has none."""
    if not example.targets:
        raise MetricError(f"{metric}: example {example.id!r} has no target")
    return example.targets


class ExactMatch:
    """1 when the normalised output equals a normalised accepted answer (see
    normalize_text). An output that normalises to "" scores 0, unparsed."""

    name: str = "exact_match"
    needs_target: bool = True

    def score(self, output: str, example: Example) -> Score:
        targets = _targets(example, self.name)
        got = normalize_text(output)
        if not got:
            return _unparsed("the output was empty")
        hit = any(got == normalize_text(t) for t in targets)
        return _verdict(hit, repr(got), _expected(targets), prediction=got)


class Contains:
    """1 when some accepted answer appears in the output as a whole word or phrase
    (case-insensitive, normalised; "cat" is not found in "concatenate")."""

    name: str = "contains"
    needs_target: bool = True

    def score(self, output: str, example: Example) -> Score:
        targets = _targets(example, self.name)
        if not normalize_text(output):
            return _unparsed("the output was empty")
        text = match_form(output)
        for target in targets:
            if find_phrase(normalize_text(target), text) is not None:
                return Score(1.0, prediction=target, feedback="correct")
        return Score(
            0.0, prediction=None, feedback=f"the output did not contain {_expected(targets)}"
        )


class ChoiceAccuracy:
    """Multiple choice: the prediction is the choice the output names first.

    Each choice, and each also_accept alias (which stands for the target), is searched
    case-insensitively as a whole word or phrase ("_" and space alike). The earliest
    match wins; at the same position the longest. Scores 1 when the prediction is the
    target. An output naming no choice scores 0 with parsed=False and prediction None:
    it is never mapped to a default class. MetricError when the example has no choices
    or no target.
    """

    name: str = "choice_accuracy"
    needs_target: bool = True

    def score(self, output: str, example: Example) -> Score:
        if not example.choices:
            raise MetricError(f"{self.name}: example {example.id!r} has no choices")
        if example.target is None:
            raise MetricError(f"{self.name}: example {example.id!r} has no target")
        prediction = first_named_choice(
            output, example.choices, example.also_accept, example.target
        )
        if prediction is None:
            answers = ", ".join(example.choices)
            return _unparsed(f"expected {example.target}, but the answer was not one of: {answers}")
        hit = same_choice(prediction, example.target)
        return _verdict(hit, prediction, example.target)


_NEGATED = re.compile(r"(?:\bnot|n't|\bnever)\s+$")


def first_named_choice(
    output: str,
    choices: tuple[str, ...],
    aliases: tuple[str, ...] = (),
    alias_of: str | None = None,
) -> str | None:
    """The choice named earliest in `output` (longest at a tie), or None. A mention
    right after a negation ("not", "isn't", "never") is not naming that choice.

    An alias found in the output counts as `alias_of`; an alias spelled like a choice is
    ignored, so a choice always keeps its own meaning.
    """
    text = match_form(output)
    best: tuple[int, int] | None = None
    found: str | None = None
    for phrase, meaning in _candidates(choices, aliases, alias_of):
        pattern = phrase_pattern(phrase)
        if pattern is None:
            continue
        # "not plausible" does not name "plausible" as the answer
        m = next(
            (m for m in pattern.finditer(text) if not _NEGATED.search(text, 0, m.start())), None
        )
        if m is None:
            continue
        key = (m.start(), -(m.end() - m.start()))
        if best is None or key < best:
            best, found = key, meaning
    return found


def _choice_form(text: str) -> str:
    return " ".join(match_form(text).split())


def same_choice(a: str, b: str) -> bool:
    """True when a and b name the same choice (case, "_" and spacing aside)."""
    return a == b or _choice_form(a) == _choice_form(b)


@lru_cache(maxsize=1024)
def _candidates(
    choices: tuple[str, ...], aliases: tuple[str, ...], alias_of: str | None
) -> tuple[tuple[str, str], ...]:
    forms = {_choice_form(c) for c in choices}
    pairs = [(c, c) for c in choices]
    if alias_of is not None:
        pairs += [(a, alias_of) for a in aliases if _choice_form(a) not in forms]
    return tuple(pairs)


class RegexMatch:
    """Extracts the first match of `pattern` from the output (group 1 if the pattern
    has a group, else the whole match) and compares it, normalised, with the accepted
    answers. No match (or an empty group) scores 0, unparsed."""

    name: str = "regex"
    needs_target: bool = True

    def __init__(self, pattern: str) -> None:
        if not isinstance(pattern, str):
            raise ConfigError(f"metric regex: pattern must be a string, got {pattern!r}")
        try:
            self.pattern = re.compile(pattern)
        except re.error as exc:
            raise ConfigError(f"metric regex: invalid pattern {pattern!r}: {exc}") from exc

    def score(self, output: str, example: Example) -> Score:
        targets = _targets(example, self.name)
        m = self.pattern.search(output)
        got = None if m is None else m.group(1) if self.pattern.groups else m.group(0)
        if got is None or not normalize_text(got):
            return _unparsed(
                f"expected {_expected(targets)}, but no answer in the expected form was found"
            )
        hit = any(normalize_text(got) == normalize_text(t) for t in targets)
        return _verdict(hit, repr(got), _expected(targets), prediction=got)


_UNITS = (
    *("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"),
    *("ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen"),
    *("seventeen", "eighteen", "nineteen"),
)
_TENS = ("twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
_WORD_VALUE = {w: i for i, w in enumerate(_UNITS)} | {w: 20 + 10 * i for i, w in enumerate(_TENS)}
_DIGITS = r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|[-+]?\.\d+"
_WORDS = (
    rf"(?:{'|'.join(_TENS)})(?:(?:-|\s+)(?:{'|'.join(_UNITS[1:10])}))?"
    rf"|{'|'.join(sorted(_UNITS, key=len, reverse=True))}"
)
_NUMBER = re.compile(rf"(?<![\w.])(?:(?P<digits>{_DIGITS})|(?P<words>{_WORDS}))(?!\w)")


def parse_number(text: str) -> float | None:
    """The first number in `text`: digits with an optional sign, decimal part and
    thousands commas ("-1,234.5"), or English words zero to ninety-nine ("twenty-one").
    None when there is none. Larger numbers in words are not read ("one hundred" is 1).
    """
    m = _NUMBER.search(fold(text).replace("\u2212", "-"))
    if m is None:
        return None
    if m.group("digits") is not None:
        return float(m.group("digits").replace(",", ""))
    parts = re.split(r"-|\s+", m.group("words"))
    return float(sum(_WORD_VALUE[p] for p in parts))


def _format_number(x: float) -> str:
    return str(int(x)) if x.is_integer() and abs(x) < 1e15 else repr(x)


class Numeric:
    """1 when the first number in the output (see parse_number) equals a numeric
    accepted answer ("12", "twelve") within `tolerance`, which is both relative and
    absolute: math.isclose(got, want, rel_tol=tolerance, abs_tol=tolerance). An output
    without a number scores 0, unparsed. MetricError when no accepted answer is a number.
    """

    name: str = "numeric"
    needs_target: bool = True

    def __init__(self, tolerance: float = 1e-6) -> None:
        if isinstance(tolerance, bool) or not isinstance(tolerance, int | float):
            raise ConfigError(f"metric numeric: tolerance must be a number, got {tolerance!r}")
        if not math.isfinite(tolerance) or tolerance < 0:
            raise ConfigError(f"metric numeric: tolerance must be >= 0, got {tolerance!r}")
        self.tolerance = float(tolerance)

    def score(self, output: str, example: Example) -> Score:
        wanted = [_full_number(t) for t in _targets(example, self.name)]
        numbers = [w for w in wanted if w is not None]
        if not numbers:
            raise MetricError(f"{self.name}: example {example.id!r} has no numeric target")
        got = parse_number(output)
        expected = " or ".join(_format_number(w) for w in numbers[:3])
        if got is None:
            return _unparsed(f"expected {expected}, but the output held no number")
        tol = self.tolerance
        hit = any(math.isclose(got, w, rel_tol=tol, abs_tol=tol) for w in numbers)
        return _verdict(hit, _format_number(got), expected)


def _full_number(text: str) -> float | None:
    """The number `text` consists of (after normalisation), else None."""
    norm = normalize_text(text)
    m = _NUMBER.fullmatch(norm.replace("\u2212", "-"))
    return parse_number(norm) if m is not None else None


class TokenF1:
    """SQuAD-style token F1: the harmonic mean of token precision and recall between
    the output and an accepted answer (multiset overlap of normalised, punctuation-free
    tokens; articles are kept), best over the accepted answers. An output without
    tokens scores 0, unparsed."""

    name: str = "token_f1"
    needs_target: bool = True

    def score(self, output: str, example: Example) -> Score:
        targets = _targets(example, self.name)
        got = tokens(output)
        if not got:
            return _unparsed("the output was empty")
        best = max(_f1(got, tokens(t)) for t in targets)
        feedback = (
            "correct" if best == 1.0 else f"token F1 {best:.2f}; expected {_expected(targets)}"
        )
        return Score(best, prediction=" ".join(got), feedback=feedback)


def _f1(predicted: list[str], gold: list[str]) -> float:
    common = sum((Counter(predicted) & Counter(gold)).values())
    if common == 0:
        return 0.0
    precision = common / len(predicted)
    recall = common / len(gold)
    return 2 * precision * recall / (precision + recall)


ScoreFunction = Callable[[str, Example], float | bool | Score]


class CallableMetric:
    """Wraps a user function func(output, example) -> float | bool | Score.

    `name` is the spec it was loaded from ("module:function"). A bool counts as 1 or 0;
    a number or Score value outside [0, 1] (or not finite) raises MetricError, as does
    any other return type or an exception from the function (chained). `needs_target`
    is the function's own `needs_target` attribute when it has one, else True.
    """

    def __init__(self, name: str, func: ScoreFunction) -> None:
        self.name: str = name
        self.needs_target: bool = bool(getattr(func, "needs_target", True))
        self._func = func

    def score(self, output: str, example: Example) -> Score:
        try:
            result = self._func(output, example)
        except MetricError:
            raise
        except Exception as exc:
            raise MetricError(
                f"metric {self.name}: failed on example {example.id!r}: {type(exc).__name__}: {exc}"
            ) from exc
        if isinstance(result, Score):
            self._check(result.value, example)
            return result
        if isinstance(result, bool):
            return Score(1.0 if result else 0.0)
        if isinstance(result, int | float):
            self._check(float(result), example)
            return Score(float(result))
        raise MetricError(
            f"metric {self.name}: returned {type(result).__name__} on example "
            f"{example.id!r}; expected float, bool or Score"
        )

    def _check(self, value: float, example: Example) -> None:
        if not (math.isfinite(value) and 0.0 <= value <= 1.0):
            raise MetricError(
                f"metric {self.name}: value {value!r} on example {example.id!r} is outside [0, 1]"
            )
