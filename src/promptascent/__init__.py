"""promptascent: automatic prompt optimization with evidence.

import promptascent
result = promptascent.optimize("task.yaml", optimizer="ape", budget={"task_calls": 300})
print(result.best_prompt.instruction, result.comparison)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from promptascent.compare import Comparison
from promptascent.config.task import TaskSpec, load_task, task_from_dict
from promptascent.data.example import Dataset, Example
from promptascent.errors import PromptascentError
from promptascent.llm.budget import Budget
from promptascent.prompts.prompt import Demo, Prompt
from promptascent.runner import Runner, RunResult, RunSettings, plan

__version__ = "0.1.0"


def optimize(
    task: str | Path | TaskSpec | dict[str, Any],
    *,
    optimizer: str | None = None,
    options: dict[str, Any] | None = None,
    budget: Budget | dict[str, float] | None = None,
    seed: int | None = None,
    models: dict[str, str] | None = None,
    length_penalty: float | None = None,
    settings: RunSettings | None = None,
) -> RunResult:
    """Runs one optimization and returns its result (best prompt, test scores against
    the seed with confidence intervals, usage per role, where the run was written).

    `task` is a task file, a TaskSpec, or the same mapping a task file holds (paths in
    it relative to the current folder). Keyword arguments override the task.
    """
    if isinstance(task, (str, Path)):
        spec = load_task(task)
    elif isinstance(task, dict):
        spec = task_from_dict(task)
    else:
        spec = task
    if isinstance(budget, dict):
        budget = Budget.from_mapping(budget, where="budget")
    p = plan(
        spec,
        optimizer=optimizer,
        optimizer_options=options,
        budget=budget,
        seed=seed,
        models=models,  # type: ignore[arg-type]
        length_penalty=length_penalty,
    )
    return Runner(p, settings).run()


def compare(
    task: str | Path | TaskSpec,
    optimizers: list[str],
    *,
    budget: Budget | dict[str, float] | None = None,
    seeds: list[int] | tuple[int, ...] = (0,),
    options: dict[str, dict[str, Any]] | None = None,
    settings: RunSettings | None = None,
) -> Comparison:
    """Runs each optimizer (once per seed) under the same budget on the same splits and
    returns the comparison; each run is recorded as `optimize` records it."""
    from promptascent.compare import compare as run_compare

    spec = load_task(task) if isinstance(task, (str, Path)) else task
    if isinstance(budget, dict):
        budget = Budget.from_mapping(budget, where="budget")
    return run_compare(
        spec, optimizers, budget=budget, seeds=seeds, options=options, settings=settings
    )


def resume(run_dir: str | Path, *, settings: RunSettings | None = None) -> RunResult:
    """Continues an interrupted run from its folder (see `promptascent.runner.resume_run`)."""
    from promptascent.runner import resume_run

    return resume_run(Path(run_dir), sinks=settings.sinks if settings else None)


__all__ = [
    "Budget",
    "Comparison",
    "Dataset",
    "Demo",
    "Example",
    "Prompt",
    "PromptascentError",
    "RunResult",
    "RunSettings",
    "TaskSpec",
    "compare",
    "optimize",
    "resume",
]
