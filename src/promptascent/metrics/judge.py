"""LLM judges: a rubric metric (pointwise scores) and pairwise preference.

A judge is a model in its own role ("judge"), with its own usage and budget. Small
models answer judge prompts in prose more often than in the requested form, so
their replies are read tolerantly (`parse_rating`, `parse_preference`); a reply that
gives no verdict is counted as unparsed and a failed call as an error: neither is
ever a vote or a score. `JudgeStats` counts both, and how often repeated and
position-swapped votes on the same question agree: a judge that agrees with itself
at chance level cannot tell outputs apart, and its verdicts are no signal.
"""

from __future__ import annotations

import copy
import re
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from promptascent.data.example import Example
from promptascent.errors import ConfigError, ContextOverflow, ModelError
from promptascent.llm.types import CompletionRequest, Message
from promptascent.metrics.base import Score
from promptascent.prompts.fit import fit_pieces, prompt_limit

if TYPE_CHECKING:
    from promptascent.llm.client import ModelClient

Verdict = Literal["A", "B", "tie"]

# Agreement below this, over at least NEAR_CHANCE_PAIRS compared pairs, is reported.
NEAR_CHANCE_AGREEMENT = 0.6
NEAR_CHANCE_PAIRS = 8

# --------------------------------------------------------------------------- parsing

_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
_WORD_VALUE = {w: float(i) for i, w in enumerate(_WORDS)}
_NUM = rf"(\d+(?:\.\d+)?|{'|'.join(_WORDS)})"
_FRACTION = rf"{_NUM}\s*(?:/|out\s+of)\s*(\d+(?:\.\d+)?)"
_KEYWORD = re.compile(
    rf"\b(?:scored?|scores|rating|rate[sd]?|grade[sd]?|mark|give|gave)\b[^\d\n]{{0,30}}?\b{_NUM}"
    rf"(?:\s*(?:/|out\s+of)\s*(\d+(?:\.\d+)?))?",
    re.IGNORECASE,
)
_FRACTION_RE = re.compile(rf"(?<![\w.]){_FRACTION}", re.IGNORECASE)
_DIGITS = re.compile(r"(?<![\w.-])(\d+(?:\.\d+)?)(?![\w]|\.\d)")


def _markdown_free(text: str) -> str:
    return re.sub(r"(?m)^\s*>+", " ", re.sub(r"[*_`#]+", " ", text))


def _value(token: str) -> float:
    return _WORD_VALUE.get(token.lower(), 0.0) if token[0].isalpha() else float(token)


def parse_rating(text: str, low: float, high: float) -> float | None:
    """The rating a judge reply gives on the scale low..high, clamped into it; None
    when it gives none. Read, first match wins: a number after a rating word ("Score:
    4", "I would rate this 4 out of 5", "I'd give it a four"), then a fraction ("4/5",
    "8 out of 10", rescaled to the scale when its denominator is not `high`), then the
    first bare number inside the scale ("**4**", "4."), or a reply that is only a
    number word ("Four.")."""
    clean = _markdown_free(text)
    m = _KEYWORD.search(clean)
    if m is not None:
        return _scaled(_value(m.group(1)), m.group(2), low, high)
    m = _FRACTION_RE.search(clean)
    if m is not None:
        return _scaled(_value(m.group(1)), m.group(2), low, high)
    for d in _DIGITS.finditer(clean):
        value = float(d.group(1))
        if low <= value <= high:
            return value
    word = re.sub(r"[^a-z]", "", clean.lower())
    if word in _WORD_VALUE and low <= _WORD_VALUE[word] <= high:
        return _WORD_VALUE[word]
    return None


def _scaled(value: float, denominator: str | None, low: float, high: float) -> float | None:
    if denominator is not None:
        d = float(denominator)
        if d <= 0:
            return None
        if d != high:
            value = value / d * high
    return float(min(max(value, low), high))


_LABEL = r"(?i:(?:output|response|answer|option|candidate|choice|set|assistant)s?)"
_QUALIFIER = (
    r"(?i:(?:(?:clearly|much|slightly|indeed|definitely|far|significantly|somewhat|"
    r"a\s+bit|the|overall)\s+)*)"
)
_BETTER = r"(?i:better|preferred|superior|stronger|best|more\s+\w+|winner|preferable)"
_IS = r"(?i:is|are|was|seems|looks)"
# Letters are matched case-sensitively: "a" is an article, "A" a verdict.
_LETTER = r"\(?\b([AB])\b\)?"
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(p), how)
    for p, how in (
        (rf"(?:{_LABEL}\s+)?{_LETTER}\s+{_IS}\s+{_QUALIFIER}{_BETTER}", "letter"),
        (rf"(?:{_LABEL}\s+)?{_LETTER}\s+{_IS}\s+{_QUALIFIER}(?i:worse)", "other"),
        (rf"\b{_LABEL}\s+{_LETTER}\s+(?i:wins|is\s+the\s+winner)", "letter"),
        (
            r"(?i:\b(?:prefer|choose|chose|pick|picked|select|selected|go\s+with|"
            r"(?:winner|choice|verdict|answer)(?:\s+is|\s*:)|"
            r"better\s+(?:one|output|response|answer)\s+is|I\s+would\s+say|I'd\s+say))"
            rf"\s*(?i:(?:the\s+)?{_LABEL}\s+)?{_LETTER}",
            "letter",
        ),
        (r"\b([AB])\s*>\s*[AB]\b", "letter"),
        (r"(?i:\b(?:prefer|choose|chose|pick|select)\s+the\s+(first|second)\b)", "ordinal"),
        (
            r"(?i:\bthe\s+(first|second)(?:\s+(?:one|output|response|answer|set))?\s+"
            rf"(?:is|are|was)\s+){_QUALIFIER}{_BETTER}",
            "ordinal",
        ),
        (
            r"(?i:\b(?:it'?s\s+a\s+tie|a\s+tie\b|tie\b|equally\s+(?:good|bad|well|strong|weak)|"
            r"both\s+(?:are|outputs|responses|sets)\s+(?:are\s+)?(?:equally|similar|the\s+same)|"
            r"neither\b|no\s+clear\s+winner))",
            "tie",
        ),
    )
)
_ONLY_LETTER = re.compile(r"^\W*\(?([AB])\)?\W*$")
_ONLY_ORDINAL = re.compile(
    r"^\W*(?:the\s+)?(first|second)(?:\s+(?:one|output|response|answer|set))?\W*$", re.I
)
_LEADING_LETTER = re.compile(r"^\W*\(?([AB])\)?(?:[.:,)!\n]|\s*$)")
_TAGGED = re.compile(r"<(choose|choice|answer|better|verdict)>(.*?)(?:</\1>|$)", re.I | re.S)


def parse_preference(text: str) -> Verdict | None:
    """Which of two outputs a judge reply prefers: "A", "B", "tie", or None when it
    gives no clear verdict. Read: the content of a <choose> tag (or <choice>,
    <answer>) when there is one; a reply that is only a letter ("A", "(B)", "**A**");
    else the first clear verdict in the prose ("Output B is better", "A is indeed
    better", "I prefer Response A", "the first one is better", "B > A", "A is worse",
    "it's a tie"); else a leading letter ("B. Because ..."). "A or B", "A/B" and
    prose without a verdict give None."""
    m = _TAGGED.search(text)
    if m is not None:
        inner = m.group(2).strip()
        return _verdict(inner) if inner else None
    return _verdict(text)


def _verdict(text: str) -> Verdict | None:
    clean = _markdown_free(text).strip()
    m = _ONLY_LETTER.match(clean)
    if m is not None:
        return m.group(1)  # type: ignore[return-value]
    m = _ONLY_ORDINAL.match(clean)
    if m is not None:
        return "A" if m.group(1).lower() == "first" else "B"
    found: list[tuple[int, Verdict]] = []
    for pattern, how in _PATTERNS:
        m = pattern.search(clean)
        if m is None:
            continue
        if how == "tie":
            found.append((m.start(), "tie"))
        elif how == "ordinal":
            word = m.group(1).lower()
            found.append((m.start(), "A" if word == "first" else "B"))
        else:
            letter = m.group(1)
            if how == "other":
                letter = "B" if letter == "A" else "A"
            found.append((m.start(), letter))  # type: ignore[arg-type]
    if found:
        return min(found, key=lambda x: x[0])[1]
    m = _LEADING_LETTER.match(clean)
    if m is not None and not re.match(r"^\W*[AB]\s*(?:/|or|and)\s*[AB]\b", clean):
        return m.group(1)  # type: ignore[return-value]
    return None


# --------------------------------------------------------------------------- statistics


class JudgeStats:
    """What a run's judge did, from every thread: usable votes, unparsed replies,
    failed calls, and of the pairs of votes on the same question (repeated, or with
    A/B swapped) how many agreed. Shared by every judge of a run."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.votes = 0
        self.unparsed = 0
        self.errors = 0
        self.agreeing_pairs = 0
        self.compared_pairs = 0

    def add(
        self,
        *,
        votes: int = 0,
        unparsed: int = 0,
        errors: int = 0,
        agreeing: int = 0,
        pairs: int = 0,
    ) -> None:
        with self._lock:
            self.votes += votes
            self.unparsed += unparsed
            self.errors += errors
            self.agreeing_pairs += agreeing
            self.compared_pairs += pairs

    def add_question(self, verdicts: list[Any], *, unparsed: int = 0, errors: int = 0) -> None:
        """One question's usable verdicts (ratings or A/B/tie, in the same frame):
        every pair of them is compared."""
        agreeing, pairs = _pairs(verdicts)
        self.add(
            votes=len(verdicts), unparsed=unparsed, errors=errors, agreeing=agreeing, pairs=pairs
        )

    @property
    def calls(self) -> int:
        return self.votes + self.unparsed + self.errors

    @property
    def agreement(self) -> float | None:
        """Share of compared vote pairs that agreed; None before any pair."""
        return self.agreeing_pairs / self.compared_pairs if self.compared_pairs else None

    @property
    def near_chance(self) -> bool:
        a = self.agreement
        return (
            a is not None and self.compared_pairs >= NEAR_CHANCE_PAIRS and a < NEAR_CHANCE_AGREEMENT
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "votes": self.votes,
            "unparsed": self.unparsed,
            "errors": self.errors,
            "agreement": self.agreement,
            "compared_pairs": self.compared_pairs,
            "near_chance": self.near_chance,
        }

    def warnings(self) -> list[str]:
        """What a run's notes should say about this judge (empty when all is well)."""
        out = []
        if self.calls and not self.votes:
            out.append(
                f"the judge gave no usable verdict in {self.calls} calls "
                f"({self.unparsed} unparsed, {self.errors} failed): its decisions are no signal"
            )
        if self.near_chance:
            out.append(
                f"judge agreement {self.agreement:.2f} over {self.compared_pairs} pairs of "
                "repeated or swapped votes is near chance: a judge that cannot tell the "
                "outputs apart is no signal"
            )
        return out


def _pairs(verdicts: list[Any]) -> tuple[int, int]:
    agreeing = pairs = 0
    for i in range(len(verdicts)):
        for j in range(i + 1, len(verdicts)):
            pairs += 1
            agreeing += verdicts[i] == verdicts[j]
    return agreeing, pairs


# --------------------------------------------------------------------------- context


def _ask(
    client: ModelClient, text: str, *, temperature: float, max_tokens: int, seed: int, index: int
) -> str:
    request = CompletionRequest(
        messages=(Message("user", text),),
        temperature=temperature,
        max_tokens=max_tokens,
        seed=seed,
        sample_index=index,
    )
    return client.complete(request).text


# --------------------------------------------------------------------------- rubric metric

RUBRIC_TEMPLATE = """Rate the output below.

Criteria:
{rubric}

Input:
{input}

Output:
{output}
{reference}
How well does the output meet the criteria? Give a score from {low} to {high} ({high} is best).
Start your reply with "Score:" and the number."""

DEFAULT_RUBRIC = "The output answers the input correctly, completely and concisely."


class RubricJudge:
    """Metric "judge": the judge model rates each output against a rubric, on the
    scale low..high; the mean of `votes` ratings (distinct samples) maps to [0, 1].

    The judge sees the rubric, the example's input, the output, and the example's
    target, when it has one, as a reference of the wanted answer. An empty output
    scores 0, unparsed, without a call. A reply without a rating is counted (unparsed)
    and not a rating; if no vote gives one, the score is 0, unparsed. A failed call is
    counted and is never a vote; if every call failed, the ModelError is raised (the
    evaluator records the example as an error, never a score).

    Made unbound by the metric registry; `bind` gives the copy that asks a judge
    model (the runner binds every run's metric to its judge)."""

    name: str = "judge"
    needs_target: bool = False

    def __init__(
        self,
        rubric: str = DEFAULT_RUBRIC,
        low: int = 1,
        high: int = 5,
        votes: int = 1,
        temperature: float | None = None,
        max_tokens: int = 32,
    ) -> None:
        if not isinstance(rubric, str) or not rubric.strip():
            raise ConfigError("metric judge: rubric must be a non-empty string")
        for key, value in (
            ("low", low),
            ("high", high),
            ("votes", votes),
            ("max_tokens", max_tokens),
        ):
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(f"metric judge: {key} must be a whole number, got {value!r}")
        if high <= low:
            raise ConfigError(f"metric judge: high ({high}) must be above low ({low})")
        if votes < 1 or max_tokens < 4:
            raise ConfigError("metric judge: votes must be >= 1 and max_tokens >= 4")
        if temperature is not None and (
            isinstance(temperature, bool)
            or not isinstance(temperature, int | float)
            or not 0 <= temperature <= 2
        ):
            raise ConfigError(f"metric judge: temperature must be in [0, 2], got {temperature!r}")
        self.rubric = rubric.strip()
        self.low, self.high, self.votes, self.max_tokens = low, high, votes, max_tokens
        # Repeated votes at temperature 0 would repeat one verdict.
        self.temperature = float(
            temperature if temperature is not None else (0.0 if votes == 1 else 0.7)
        )
        self.stats = JudgeStats()
        self._client: ModelClient | None = None

    def bind(self, client: ModelClient, stats: JudgeStats | None = None) -> RubricJudge:
        """A copy that asks `client`, counting into `stats` (default: this one's)."""
        bound = copy.copy(self)
        bound._client = client
        bound.stats = stats if stats is not None else self.stats
        return bound

    def check(self, example: Example) -> None:
        """Validates an example without calling the judge: every example has an input,
        which is all the judge needs."""

    def score(self, output: str, example: Example) -> Score:
        client = self._client
        if client is None:
            raise RuntimeError("metric judge: no judge model bound (RubricJudge.bind(client))")
        if not output.strip():
            return Score(0.0, parsed=False)
        prompt = self._prompt(client, output, example)
        ratings: list[float] = []
        unparsed = errors = 0
        last_error: ModelError | None = None
        for i in range(self.votes):
            try:
                reply = _ask(
                    client,
                    prompt,
                    temperature=self.temperature,
                    max_tokens=self.max_tokens,
                    seed=0,
                    index=i,
                )
            except ModelError as e:
                errors, last_error = errors + 1, e
                continue
            rating = parse_rating(reply, self.low, self.high)
            if rating is None:
                unparsed += 1
            else:
                ratings.append(rating)
        self.stats.add_question(ratings, unparsed=unparsed, errors=errors)
        if last_error is not None and errors == self.votes:
            raise last_error
        if not ratings:
            return Score(0.0, parsed=False)
        mean = sum(ratings) / len(ratings)
        return Score((mean - self.low) / (self.high - self.low), prediction=f"{mean:g}")

    def _prompt(self, client: ModelClient, output: str, example: Example) -> str:
        reference = example.target

        def render(p: list[str]) -> str:
            ref = f"\nReference answer (the wanted answer):\n{p[3]}\n" if reference else ""
            return RUBRIC_TEMPLATE.format(
                rubric=p[0], input=p[1], output=p[2], reference=ref, low=self.low, high=self.high
            )

        return fit_pieces(
            render,
            [self.rubric, example.input_text, output, reference or ""],
            limit=prompt_limit(client.context_length, self.max_tokens),
            count_tokens=client.backend.count_tokens,
        )


# --------------------------------------------------------------------------- pairwise

PAIRWISE_TEMPLATE = """Two sets of outputs, A and B, answer the same inputs.
Which set meets the requirements better?

Requirements:
{requirements}

{samples}

Which is better, A or B? Reply with one letter: A or B."""


@dataclass(frozen=True)
class Preference:
    """The verdict of repeated pairwise votes. `winner` is "A" or "B" by majority of
    the usable votes, else "tie" (a draw, or no usable vote at all). `verdicts` are
    the votes in order, in the caller's A/B frame (None: unparsed or failed)."""

    winner: Verdict
    a: int
    b: int
    ties: int
    unparsed: int
    errors: int
    agreement: float | None
    verdicts: tuple[Verdict | None, ...] = ()

    def describe(self) -> str:
        extra = [
            f"{n} {what}" for n, what in ((self.unparsed, "unparsed"), (self.errors, "failed")) if n
        ]
        tail = f" ({', '.join(extra)})" if extra else ""
        return f"judge votes A {self.a}, B {self.b}, ties {self.ties}{tail}: {self.winner}"


class PairwiseJudge:
    """Compares two sets of outputs on the same inputs against requirements.

    Each of `votes` calls is a separate sample (distinct sample_index); every second
    vote shows the sets with A and B swapped, so a judge that always names the first
    (or second) position splits its votes. The majority of the usable votes decides;
    a draw or no usable vote is a "tie", so a challenger in position B wins only on a
    strict majority. Failed calls (ModelError) are counted, never votes; running out
    of budget (BudgetExhausted) propagates."""

    def __init__(
        self,
        client: ModelClient,
        *,
        stats: JudgeStats | None = None,
        temperature: float = 0.3,
        max_tokens: int = 48,
        template: str = PAIRWISE_TEMPLATE,
    ) -> None:
        self.client = client
        self.stats = stats if stats is not None else JudgeStats()
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.template = template

    def compare(
        self,
        requirements: str,
        inputs: list[str],
        outputs_a: list[str],
        outputs_b: list[str],
        references: list[str | None] | None = None,
        votes: int = 4,
        *,
        seed: int = 0,
    ) -> Preference:
        if not len(inputs) == len(outputs_a) == len(outputs_b):
            raise ValueError("inputs, outputs_a and outputs_b must have the same length")
        refs: list[str | None] = (
            list(references) if references is not None else [None] * len(inputs)
        )
        try:
            prompts = {
                swapped: self._prompt(requirements, inputs, outputs_a, outputs_b, refs, swapped)
                for swapped in (False, True)
            }
        except ContextOverflow:  # every vote would fail the same way: each is an error
            self.stats.add(errors=votes)
            return Preference("tie", 0, 0, 0, 0, votes, None, (None,) * votes)
        verdicts: list[Verdict | None] = []
        unparsed = errors = 0
        for i in range(votes):
            swapped = i % 2 == 1
            try:
                reply = _ask(
                    self.client,
                    prompts[swapped],
                    temperature=self.temperature,
                    max_tokens=self.max_tokens,
                    seed=seed,
                    index=i,
                )
            except ModelError:
                errors += 1
                verdicts.append(None)
                continue
            verdict = parse_preference(reply)
            if verdict is None:
                unparsed += 1
            elif swapped and verdict != "tie":
                verdict = "B" if verdict == "A" else "A"
            verdicts.append(verdict)
        usable = [v for v in verdicts if v is not None]
        agreeing, pairs = _pairs(usable)
        self.stats.add(
            votes=len(usable), unparsed=unparsed, errors=errors, agreeing=agreeing, pairs=pairs
        )
        a, b = usable.count("A"), usable.count("B")
        winner: Verdict = "A" if a > b else "B" if b > a else "tie"
        return Preference(
            winner,
            a,
            b,
            usable.count("tie"),
            unparsed,
            errors,
            agreeing / pairs if pairs else None,
            tuple(verdicts),
        )

    def _prompt(
        self,
        requirements: str,
        inputs: list[str],
        outputs_a: list[str],
        outputs_b: list[str],
        refs: list[str | None],
        swapped: bool,
    ) -> str:
        first, second = (outputs_b, outputs_a) if swapped else (outputs_a, outputs_b)
        n = len(inputs)
        has_ref = [r is not None and r.strip() != "" for r in refs]
        pieces = [requirements, *inputs, *first, *second, *(r or "" for r in refs)]

        def render(p: list[str]) -> str:
            blocks = []
            for i in range(n):
                block = (
                    f"Input {i + 1}:\n{p[1 + i]}\n\nA:\n{p[1 + n + i]}\n\nB:\n{p[1 + 2 * n + i]}"
                )
                if has_ref[i]:
                    block += f"\n\nReference (the wanted format):\n{p[1 + 3 * n + i]}"
                blocks.append(block)
            return self.template.format(requirements=p[0], samples="\n\n---\n\n".join(blocks))

        return fit_pieces(
            render,
            pieces,
            limit=prompt_limit(self.client.context_length, self.max_tokens),
            count_tokens=self.client.backend.count_tokens,
        )
