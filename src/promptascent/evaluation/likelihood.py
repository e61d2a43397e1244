"""Likelihood scoring: a prompt's answer to a multiple-choice example is the choice the
task model finds most likely as its reply (rank classification, as lm-evaluation-harness
scores multiple choice). Every example gets a valid answer, so the score measures the
task, not whether the model obeyed an answer format; and the gold choice's probability
gives a continuous loss that ranks prompts finely where accuracy ties.

Per example: the log-likelihood of each choice as the assistant's reply after the
rendered prompt, normalised for length (`normalize`), optionally calibrated
(`calibration`), turned into probabilities by a softmax over the choices. The
prediction is the arg-max (the first choice at a tie); `loss` is the cross-entropy of
the gold choice, `gold_prob` its probability.
"""

from __future__ import annotations

import copy
import json
import math
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Literal

from promptascent.data.example import Example
from promptascent.errors import MetricError
from promptascent.llm.client import ModelClient
from promptascent.llm.types import LoglikRequest, LoglikResult
from promptascent.metrics.builtin import same_choice
from promptascent.prompts.prompt import Prompt

Normalization = Literal["sum", "mean", "byte"]
Calibration = Literal["none", "contextual", "pmi"]

# Content-free inputs of contextual calibration (Zhao et al., 2021).
CONTENT_FREE: tuple[str, ...] = ("N/A", "", "[MASK]")


@dataclass(frozen=True)
class LikelihoodScoring:
    """How choices are scored.

    `normalize`: "sum" (the log-probability of the whole choice: its real probability;
    right for labels), "mean" (per token) or "byte" (per UTF-8 byte, the harness's
    acc_norm; for free-text choices of different lengths).
    `calibration`: "none"; "contextual" (Zhao et al., 2021: the choice distribution the
    prompt gives on content-free inputs is divided out); "pmi" (domain-conditional PMI,
    Holtzman et al., 2021: each choice's score given the prompt with an empty input is
    subtracted). The calibration terms are asked once per prompt and choice set, and
    cached like any call."""

    normalize: Normalization = "sum"
    calibration: Calibration = "none"
    content_free: tuple[str, ...] = CONTENT_FREE

    def describe(self) -> str:
        cal = "no calibration" if self.calibration == "none" else f"{self.calibration} calibration"
        return f"likelihood ({self.normalize}, {cal})"

    def to_dict(self) -> dict[str, object]:
        return {**asdict(self), "content_free": list(self.content_free)}

    def key(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)


@dataclass(frozen=True)
class ChoiceVerdict:
    """The choices of one example under one prompt: calibrated scores, probabilities,
    the predicted choice (index), the gold choice (index), loss and gold probability."""

    choices: tuple[str, ...]
    scores: tuple[float, ...]
    probs: tuple[float, ...]
    prediction: int
    gold: int
    cached: bool

    @property
    def predicted(self) -> str:
        return self.choices[self.prediction]

    @property
    def gold_prob(self) -> float:
        return self.probs[self.gold]

    @property
    def loss(self) -> float:
        """Cross-entropy of the gold choice under the softmax over the choices (nats)."""
        return -_log_softmax(self.scores)[self.gold]


def gold_index(example: Example) -> int:
    """The index of the example's target among its choices. MetricError when the
    example has no choices or no target, or the target (or an also_accept alias) is not
    one of them: likelihood scoring needs the answer among the choices."""
    if not example.choices:
        raise MetricError(f"likelihood scoring: example {example.id!r} has no choices")
    if example.target is None:
        raise MetricError(f"likelihood scoring: example {example.id!r} has no target")
    for answer in example.targets:
        for i, choice in enumerate(example.choices):
            if same_choice(choice, answer):
                return i
    raise MetricError(
        f"likelihood scoring: example {example.id!r}: its target {example.target!r} is "
        "not one of its choices"
    )


class ChoiceScorer:
    """Scores examples' choices under prompts with the task model. Thread-safe."""

    def __init__(self, model: ModelClient, scoring: LikelihoodScoring) -> None:
        self.model = model
        self.scoring = scoring
        self._terms: dict[tuple[str, tuple[str, ...], tuple[str, ...]], tuple[float, ...]] = {}
        self._lock = threading.Lock()

    def with_model(self, model: ModelClient) -> ChoiceScorer:
        """This scorer asking `model` (e.g. the same model under another budget guard),
        sharing the calibration terms already measured."""
        view = copy.copy(self)
        view.model = model
        return view

    def verdict(self, prompt: Prompt, example: Example) -> ChoiceVerdict:
        """Raises ModelError (a failed call), BudgetExhausted, MetricError (the example
        cannot be scored this way)."""
        gold = gold_index(example)
        choices = tuple(example.choices or ())
        messages = prompt.render(example.fields, where=f"example {example.id}")
        result = self.model.loglik(LoglikRequest(messages, choices))
        scores = self._normalized(result, choices)
        fields = tuple(sorted(example.fields))
        if self.scoring.calibration == "contextual":
            prior = self._calibration(prompt, choices, fields)
            scores = [s - p for s, p in zip(_log_softmax(scores), prior, strict=True)]
        elif self.scoring.calibration == "pmi":
            premise = self._calibration(prompt, choices, fields)
            scores = [s - p for s, p in zip(scores, premise, strict=True)]
        log_probs = _log_softmax(scores)
        probs = tuple(math.exp(x) for x in log_probs)
        prediction = max(range(len(scores)), key=lambda i: (scores[i], -i))
        return ChoiceVerdict(choices, tuple(scores), probs, prediction, gold, result.cached)

    def _normalized(self, result: LoglikResult, choices: Sequence[str]) -> list[float]:
        how = self.scoring.normalize
        if how == "sum":
            return list(result.logprobs)
        if how == "mean":
            return [lp / max(1, n) for lp, n in zip(result.logprobs, result.tokens, strict=True)]
        return [
            lp / max(1, len(c.encode("utf-8")))
            for lp, c in zip(result.logprobs, choices, strict=True)
        ]

    def _calibration(
        self, prompt: Prompt, choices: tuple[str, ...], fields: tuple[str, ...]
    ) -> tuple[float, ...]:
        """The per-choice term calibration removes, for this prompt and choice set:
        contextual: log of the mean choice distribution over the content-free inputs;
        pmi: the normalised scores given the prompt with every input field empty."""
        key = (prompt.id, choices, fields)
        with self._lock:
            known = self._terms.get(key)
        if known is not None:
            return known
        if self.scoring.calibration == "pmi":
            result = self._ask(prompt, choices, fields, "")
            terms = tuple(self._normalized(result, choices))
        else:
            mean = [0.0] * len(choices)
            inputs = self.scoring.content_free
            for text in inputs:
                result = self._ask(prompt, choices, fields, text)
                for i, lp in enumerate(_log_softmax(self._normalized(result, choices))):
                    mean[i] += math.exp(lp) / len(inputs)
            terms = tuple(math.log(max(p, 1e-300)) for p in mean)
        with self._lock:
            self._terms[key] = terms
        return terms

    def _ask(
        self, prompt: Prompt, choices: tuple[str, ...], fields: tuple[str, ...], text: str
    ) -> LoglikResult:
        messages = prompt.render({f: text for f in fields}, where="a content-free input")
        return self.model.loglik(LoglikRequest(messages, choices))


def _log_softmax(scores: Sequence[float]) -> list[float]:
    top = max(scores)
    total = math.log(sum(math.exp(s - top) for s in scores))
    return [s - top - total for s in scores]
