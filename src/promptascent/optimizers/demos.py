"""Few-shot demonstrations for the optimizers that search over them (`exemplars`,
`mipro`): labelled demos from train examples, bootstrapped demos from a prompt's own
correct outputs (as DSPy's BootstrapFewShot), and the context check a demo set
must pass before it is scored."""

from __future__ import annotations

from collections.abc import Iterable

from promptascent.data.example import Example
from promptascent.evaluation.evaluator import Evaluator
from promptascent.evaluation.result import EvaluationResult
from promptascent.prompts.prompt import Demo, Prompt


def labelled(examples: Iterable[Example]) -> tuple[Demo, ...]:
    """Each example as a demonstration with its (first) target as the output."""
    return tuple(Demo(ex.input, ex.target or "") for ex in examples)


def bootstrapped(
    result: EvaluationResult, examples: Iterable[Example], threshold: float
) -> list[tuple[Example, Demo]]:
    """The examples of `result` whose output scored at least `threshold`, each with
    a demonstration of that output (the model's own answer, stripped), in the order
    of `result`. Empty outputs never become demonstrations."""
    by_id = {ex.id: ex for ex in examples}
    return [
        (by_id[r.example_id], Demo(by_id[r.example_id].input, r.output.strip()))
        for r in result.results
        if r.score is not None and r.score >= threshold and r.output.strip()
    ]


def context_limit(evaluator: Evaluator, fraction: float) -> int:
    """The prompt tokens a demo set may take: `fraction` of the task model's context."""
    return int(fraction * evaluator.task_model.context_length)


def prompt_tokens(evaluator: Evaluator, prompt: Prompt, probe: Example) -> int:
    """Tokens of `prompt` rendered for `probe` (measure on the longest input: what
    fits there fits every example)."""
    return evaluator.task_model.prompt_tokens(evaluator.request(prompt, probe))
