"""Evaluation results: per-example outputs and scores, and their summary."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

from promptascent.evaluation.stats import (
    Interval,
    PairedComparison,
    bootstrap_ci,
    paired_difference,
)

# What selection compares: the metric's score, or the likelihood loss.
SelectBy = Literal["accuracy", "loss"]


@dataclass(frozen=True)
class ExampleResult:
    """One example under one prompt. `score` is None when the model call failed
    (`error` says why): an error is never a score."""

    example_id: str
    output: str
    score: float | None
    parsed: bool = True
    prediction: str | None = None
    error: str | None = None
    finish_reason: str = "stop"
    cached: bool = False
    skipped: bool = False  # the prompt did not fit the model's context
    # Likelihood scoring (evaluation/likelihood.py): the gold choice's cross-entropy
    # and probability under the softmax over the choices; None when generating.
    loss: float | None = None
    gold_prob: float | None = None
    # The metric's feedback on the output (Score.feedback), for reflection (GEPA);
    # recomputed from the output on every run, so neither stored nor compared.
    feedback: str | None = field(default=None, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "example_id": self.example_id,
            "output": self.output,
            "score": self.score,
            "parsed": self.parsed,
            "prediction": self.prediction,
            "error": self.error,
            "finish_reason": self.finish_reason,
            "loss": self.loss,
            "gold_prob": self.gold_prob,
        }

    def selection_value(self, select_by: SelectBy) -> float | None:
        """What selection compares for this example, higher is better: the score, or
        (select_by "loss") minus the loss. None when there is nothing to compare."""
        if select_by == "loss":
            return None if self.loss is None or self.score is None else -self.loss
        return self.score


@dataclass(frozen=True)
class EvaluationResult:
    """A prompt's results on examples. `select_by` is what selection compares (the
    evaluator's setting): "accuracy" (the metric's mean; under likelihood scoring the
    lower mean loss breaks ties, see CandidatePool.ranked) or "loss" (minus the mean
    loss of the gold choice). Reports always show the metric's mean."""

    prompt_id: str
    results: tuple[ExampleResult, ...]
    select_by: SelectBy = "accuracy"

    @cached_property
    def scored(self) -> tuple[ExampleResult, ...]:
        return tuple(r for r in self.results if r.score is not None)

    @property
    def scores(self) -> list[float]:
        return [r.score for r in self.scored if r.score is not None]

    @property
    def mean(self) -> float:
        s = self.scores
        return sum(s) / len(s) if s else float("nan")

    @property
    def n(self) -> int:
        return len(self.scored)

    @property
    def losses(self) -> list[float]:
        return [r.loss for r in self.scored if r.loss is not None]

    @property
    def mean_loss(self) -> float | None:
        """Mean cross-entropy of the gold choice (likelihood scoring), else None."""
        losses = self.losses
        return sum(losses) / len(losses) if losses else None

    @property
    def selection_scores(self) -> list[float]:
        """Per-example values selection compares (paired tests, racing, bandits)."""
        values = (r.selection_value(self.select_by) for r in self.scored)
        return [v for v in values if v is not None]

    @property
    def selection_mean(self) -> float:
        """The mean of `selection_scores` (nan when there are none)."""
        s = self.selection_scores
        return sum(s) / len(s) if s else float("nan")

    @property
    def errors(self) -> int:
        return len(self.results) - len(self.scored)

    @property
    def skipped(self) -> int:
        """Examples whose prompt did not fit the model's context (among the errors)."""
        return sum(1 for r in self.results if r.skipped)

    @property
    def unparsed(self) -> int:
        return sum(1 for r in self.scored if not r.parsed)

    def ci(self, *, confidence: float = 0.95, seed: int = 0) -> Interval:
        """Bootstrap interval of the mean (computed once per confidence and seed)."""
        cache: dict[tuple[float, int], Interval] = self.__dict__.setdefault("_ci", {})
        if (confidence, seed) not in cache:
            cache[confidence, seed] = bootstrap_ci(self.scores, confidence=confidence, seed=seed)
        return cache[confidence, seed]

    def predictions(self) -> Counter[str]:
        """How often each prediction was made ("<unparsed>" for none): a score at the
        majority-class rate with one prediction everywhere is a format fix, not skill."""
        return Counter((r.prediction or "") if r.parsed else "<unparsed>" for r in self.scored)

    def by_example(self) -> dict[str, ExampleResult]:
        return {r.example_id: r for r in self.results}

    def summary(self, confidence: float = 0.95) -> dict[str, Any]:
        ci = self.ci(confidence=confidence)
        return {
            "prompt_id": self.prompt_id,
            "mean": self.mean,
            "ci_low": ci.low,
            "ci_high": ci.high,
            "n": self.n,
            "unparsed": self.unparsed,
            "errors": self.errors,
            "skipped": self.skipped,
            "mean_loss": self.mean_loss,
        }

    def record(self) -> dict[str, Any]:
        """This evaluation as the run store keeps it: each example's result and the
        summary (plain data: store/run_store.py takes no objects of this layer)."""
        return {"results": [r.to_dict() for r in self.results], "summary": self.summary()}


def compare(
    base: EvaluationResult, other: EvaluationResult, *, seed: int = 0, confidence: float = 0.95
) -> PairedComparison:
    """Paired difference other - base on the examples both scored."""
    a, b = base.by_example(), other.by_example()
    ids = [i for i in a if i in b and a[i].score is not None and b[i].score is not None]
    return paired_difference(
        [a[i].score for i in ids],  # type: ignore[misc]
        [b[i].score for i in ids],  # type: ignore[misc]
        seed=seed,
        confidence=confidence,
    )
