"""The Evaluator: a prompt on examples, through the task model, scored by the metric."""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass

from promptascent.data.example import Example
from promptascent.errors import ContextOverflow, ModelError
from promptascent.evaluation.cache import EvaluationCache
from promptascent.evaluation.likelihood import ChoiceScorer, ChoiceVerdict, LikelihoodScoring
from promptascent.evaluation.result import EvaluationResult, ExampleResult, SelectBy
from promptascent.events import EventSink, ExampleScored, ignore
from promptascent.llm.budget import BudgetGuard
from promptascent.llm.client import ModelClient
from promptascent.llm.types import Completion, CompletionRequest
from promptascent.metrics.base import Metric
from promptascent.prompts.prompt import Prompt


@dataclass(frozen=True)
class TaskParams:
    """How the task model is sampled when a prompt is evaluated."""

    temperature: float = 0.0
    max_tokens: int = 48
    seed: int = 0
    stop: tuple[str, ...] = ()

    @property
    def request_seed(self) -> int | None:
        """The seed sent with a task call: none when decoding is greedy (temperature 0),
        where it changes nothing, so that runs with different seeds (compare's seeds,
        a rerun with another seed) share the cached replies of the same prompt on the
        same example."""
        return self.seed if self.temperature > 0 else None

    def key(self) -> str:
        params = asdict(self)
        if self.request_seed is None:
            del params["seed"]
        return json.dumps(params, sort_keys=True)


class Evaluator:
    """Evaluates prompts on examples with bounded concurrency.

    Scoring: by generation (the task model answers, the metric scores its output) or,
    with `likelihood` set, by likelihood (evaluation/likelihood.py: the most likely
    choice is the answer the metric scores; each result also carries the gold choice's
    loss and probability). `select_by` is stamped on every result (EvaluationResult).

    Model errors (of the task model, or of a judge the metric asks) become per-example
    errors (counted, never scored). Running out of
    budget raises BudgetExhausted: the examples finished so far are already in the
    caches, so a resumed or repeated evaluation does not pay for them again.
    """

    def __init__(
        self,
        task_model: ModelClient,
        metric: Metric,
        *,
        params: TaskParams = TaskParams(),
        concurrency: int = 4,
        cache: EvaluationCache | None = None,
        emit: EventSink = ignore,
        likelihood: LikelihoodScoring | None = None,
        select_by: SelectBy = "accuracy",
    ) -> None:
        self.task_model = task_model
        self.metric = metric
        self.params = params
        self.concurrency = max(1, concurrency)
        self.cache = cache
        self.emit = emit
        self.likelihood = likelihood
        self.select_by = select_by
        self._choices = ChoiceScorer(task_model, likelihood) if likelihood else None

    def with_guard(self, guard: BudgetGuard) -> Evaluator:
        """This evaluator with its task model checking `guard` (ModelClient.with_guard):
        everything else (metric, parameters, caches, events, scoring) is shared."""
        view = copy.copy(self)
        view.task_model = self.task_model.with_guard(guard)
        if self._choices is not None:
            view._choices = self._choices.with_model(view.task_model)
        return view

    @property
    def scoring(self) -> str:
        """How outputs are scored, in words ("generate", "likelihood (sum, ...)")."""
        return self.likelihood.describe() if self.likelihood else "generate"

    def request(self, prompt: Prompt, example: Example) -> CompletionRequest:
        return CompletionRequest(
            messages=prompt.render(example.fields, where=f"example {example.id}"),
            temperature=self.params.temperature,
            max_tokens=self.params.max_tokens,
            stop=self.params.stop,
            seed=self.params.request_seed,
        )

    def _complete(self, prompt: Prompt, example: Example) -> Completion:
        key = None
        if self.cache is not None:
            key = EvaluationCache.key(
                prompt.id, example.content_id, self.task_model.model_id, self.params.key()
            )
            hit = self.cache.get(key)
            if hit is not None:
                return self.task_model.replay(hit, lambda: self.request(prompt, example))
        completion = self.task_model.complete(self.request(prompt, example))
        if self.cache is not None and key is not None:
            self.cache.put(key, completion)
        return completion

    def run_one(self, prompt: Prompt, example: Example, *, score: bool = True) -> ExampleResult:
        if self._choices is not None and score:
            result = self._by_likelihood(self._choices, prompt, example)
            self.emit(ExampleScored(prompt.id, result.cached))
            return result
        try:
            completion = self._complete(prompt, example)
        except ModelError as e:
            result = ExampleResult(
                example.id,
                "",
                None,
                parsed=False,
                error=str(e),
                skipped=isinstance(e, ContextOverflow),
            )
        else:
            result = (
                self._score(completion, example)
                if score
                else ExampleResult(
                    example.id,
                    completion.text,
                    None,
                    finish_reason=completion.finish_reason,
                    cached=completion.cached,
                )
            )
        self.emit(ExampleScored(prompt.id, result.cached))
        return result

    def _by_likelihood(
        self, scorer: ChoiceScorer, prompt: Prompt, example: Example
    ) -> ExampleResult:
        try:
            verdict = scorer.verdict(prompt, example)
        except ModelError as e:
            return ExampleResult(
                example.id,
                "",
                None,
                parsed=False,
                error=str(e),
                skipped=isinstance(e, ContextOverflow),
            )
        # Accuracy by definition: the most likely choice is the gold one (gold_index
        # already matched the target and its aliases against the choices).
        return ExampleResult(
            example.id,
            verdict.predicted,
            1.0 if verdict.prediction == verdict.gold else 0.0,
            parsed=True,
            prediction=verdict.predicted,
            cached=verdict.cached,
            loss=verdict.loss,
            gold_prob=verdict.gold_prob,
            feedback=likelihood_feedback(verdict),
        )

    def _score(self, completion: Completion, example: Example) -> ExampleResult:
        try:
            verdict = self.metric.score(completion.text, example)
        except ModelError as e:  # a judge metric's call failed: an error, never a score
            return ExampleResult(
                example.id,
                completion.text,
                None,
                parsed=False,
                error=f"metric {self.metric.name}: {e}",
                finish_reason=completion.finish_reason,
                cached=completion.cached,
            )
        return ExampleResult(
            example.id,
            completion.text,
            verdict.value,
            parsed=verdict.parsed,
            prediction=verdict.prediction,
            finish_reason=completion.finish_reason,
            cached=completion.cached,
            feedback=verdict.feedback,
        )

    def evaluate(self, prompt: Prompt, examples: Sequence[Example]) -> EvaluationResult:
        return self._run(prompt, examples, score=True)

    def generate(self, prompt: Prompt, examples: Sequence[Example]) -> EvaluationResult:
        """The task model's outputs without the metric, for optimizers that judge
        outputs themselves (SPO): every result's score is None, with `error` set where
        the call failed. Cached and budgeted like `evaluate`."""
        return self._run(prompt, examples, score=False)

    def _run(self, prompt: Prompt, examples: Sequence[Example], *, score: bool) -> EvaluationResult:
        if self.concurrency == 1 or len(examples) <= 1:
            return EvaluationResult(
                prompt.id,
                tuple(self.run_one(prompt, ex, score=score) for ex in examples),
                self.select_by,
            )
        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="evaluate") as pool:
            futures: list[Future[ExampleResult]] = [
                pool.submit(self.run_one, prompt, ex, score=score) for ex in examples
            ]
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
            failed = next((f for f in done if f.exception() is not None), None)
            if failed is not None:
                for f in futures:
                    f.cancel()
                exc = failed.exception()
                assert exc is not None  # BudgetExhausted, or a bug: never swallowed
                raise exc
            return EvaluationResult(prompt.id, tuple(f.result() for f in futures), self.select_by)


def likelihood_feedback(verdict: ChoiceVerdict) -> str:
    """The feedback on a choice scored by likelihood: the most likely choice against
    the gold one, with the gold choice's probability."""
    gold = verdict.choices[verdict.gold]
    p = f"{verdict.gold_prob:.2f}"
    if verdict.prediction == verdict.gold:
        return f"correct: {gold} was the most likely answer (probability {p})"
    return f"expected {gold}, but {verdict.predicted} was more likely ({gold}: probability {p})"
