"""Scoring one prompt on a split, outside any search (`promptascent eval`)."""

from __future__ import annotations

import json
from pathlib import Path

from promptascent.errors import ConfigError
from promptascent.evaluation.cache import EvaluationCache
from promptascent.evaluation.evaluator import Evaluator
from promptascent.evaluation.result import EvaluationResult
from promptascent.events import PhaseStarted
from promptascent.llm.budget import Budget
from promptascent.planning import Plan
from promptascent.prompts.prompt import Prompt
from promptascent.run_settings import RunSettings


def read_prompt_file(path: Path) -> Prompt:
    """A .json file holds an exported prompt (`export --format json`); any other file
    is an instruction template, used as written."""
    if not path.is_file():
        raise ConfigError(f"{path}: prompt file not found")
    text = path.read_text(encoding="utf-8-sig")
    if path.suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ConfigError(f"{path}:{e.lineno}: invalid JSON: {e.msg}") from None
        if not isinstance(data, dict) or "instruction" not in data:
            raise ConfigError(f"{path}: a JSON prompt is an object with an 'instruction' key")
        return Prompt.from_dict(data)
    return Prompt(text.strip("\n"))


def evaluate_prompt(
    plan: Plan, prompt: Prompt, split: str, settings: RunSettings
) -> tuple[EvaluationResult, dict[str, dict[str, float]]]:
    data = {"train": plan.data.train, "dev": plan.data.dev, "test": plan.data.test}
    if split not in data:
        raise ConfigError(f"split {split!r}: use train, dev or test", key="split")
    examples = data[split]
    if examples is None:
        raise ConfigError(f"the task has no {split} split")
    plan.load_code()
    for ex in examples.examples[:1]:
        prompt.render(ex.fields, where=f"example {ex.id}")
    hub = settings.hub(plan.task.models).open()
    try:
        eval_cache_path = hub.evaluation_cache_path
        scoring = plan.scoring(hub.backend("task").info)
        evaluator = Evaluator(
            hub.client("task", hub.guard(plan.budget)),
            plan.metric,
            params=plan.task_params,
            concurrency=plan.task.evaluation.concurrency,
            cache=EvaluationCache(eval_cache_path) if eval_cache_path else None,
            emit=_Bus(settings),
            likelihood=scoring.likelihood,
            select_by=scoring.select_by,
        )
        evaluator.emit(PhaseStarted("eval", len(examples)))
        result = evaluator.evaluate(prompt, list(examples))
        return result, hub.meter.to_dict()
    finally:
        hub.close()


class _Bus:
    def __init__(self, settings: RunSettings) -> None:
        self.sinks = settings.sinks

    def __call__(self, event: object) -> None:
        for sink in self.sinks:
            sink(event)  # type: ignore[arg-type]


__all__ = ["Budget", "evaluate_prompt", "read_prompt_file"]
