"""Planning a run: a task and its overrides validated into a frozen `Plan` (data
loaded, seed prompt, metric, optimizer, budget), before anything is spent or recorded.
A run (runner.py), an `eval`, the describe steps' estimate and a preference session
start from here."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from promptascent.config.task import ModelSpec, PromptSpec, TaskSpec
from promptascent.data.task_data import TaskData, load_task_data
from promptascent.errors import ConfigError, MetricError
from promptascent.evaluation.evaluator import TaskParams
from promptascent.evaluation.scoring import SCORINGS, ScoringChoice, resolve_scoring
from promptascent.llm.base import ModelInfo
from promptascent.llm.budget import Budget
from promptascent.llm.types import Role
from promptascent.metrics.base import Metric
from promptascent.metrics.code import CodeMetric
from promptascent.metrics.registry import get_metric
from promptascent.optimizers import registry
from promptascent.optimizers.base import Optimizer
from promptascent.optimizers.kfold import KFoldSelection
from promptascent.prompts.answer_format import answer_format_line
from promptascent.prompts.constraints import Constraints, split_keep_tags
from promptascent.prompts.prompt import Demo, Prompt


@dataclass(frozen=True)
class Plan:
    """A validated task, ready to run or to estimate. Frozen: a variant of a plan is a
    new plan (`dataclasses.replace`)."""

    task: TaskSpec
    data: TaskData
    seed_prompt: Prompt
    metric: Metric
    optimizer: Optimizer
    budget: Budget
    task_params: TaskParams
    protected: tuple[str, ...] = ()

    def load_code(self) -> None:
        """Imports the code the task file names (a code metric) and checks every example
        against it. Called when a run starts, before anything is spent; never by plan(),
        so --dry-run runs no user code. ConfigError when the import fails."""
        if isinstance(self.metric, CodeMetric) and not self.metric.loaded:
            self.metric.load()
            _check_metric(self.metric, self.data, search=self.optimizer.needs_dev)

    def scoring(self, task_model: ModelInfo) -> ScoringChoice:
        """How this run scores outputs on `task_model` (ConfigError when the task's
        `evaluation.scoring` cannot work there). Every split that will be scored is
        checked: train, dev and test, or test alone for an optimizer that selects
        without labels."""
        ev = self.task.evaluation
        d = self.data
        splits = (d.train, d.dev, d.test) if self.optimizer.needs_dev else (d.test,)
        choice = resolve_scoring(
            ev.scoring,
            normalize=ev.normalize,
            calibration=ev.calibration,
            select_by=ev.select_by,
            task_model=task_model,
            splits=[s for s in splits if s is not None and len(s)],
        )
        inner = getattr(self.optimizer, "inner", self.optimizer)  # k-fold wraps it
        if inner.requires_likelihood and choice.likelihood is None:
            why = f" ({choice.note})" if choice.note else ""
            raise ConfigError(
                f"optimizer {inner.name} measures prompts by their likelihood loss: set "
                "evaluation.scoring: likelihood (or auto, or --scoring likelihood) with a "
                f"task model that scores continuations{why}"
            )
        return choice

    def constraints(self, count_tokens: Callable[[str], int] | None) -> Constraints:
        c = self.task.constraints
        return Constraints(
            protected=self.protected,
            max_prompt_tokens=c.max_prompt_tokens,
            keep_output_format=c.keep_output_format,
            seed_output_format=self.seed_prompt.output_format,
            count_tokens=count_tokens,
        )


def plan(
    task: TaskSpec,
    *,
    optimizer: str | None = None,
    optimizer_options: dict[str, Any] | None = None,
    budget: Budget | None = None,
    seed: int | None = None,
    models: dict[Role, str] | None = None,
    length_penalty: float | None = None,
    scoring: str | None = None,
) -> Plan:
    """Validates a task with overrides (flags win over the file) and loads its data."""
    task = task.model_copy(update={"seed": task.seed if seed is None else seed})
    if scoring is not None:
        if scoring not in SCORINGS:
            raise ConfigError(
                f"evaluation.scoring: {scoring!r} is not one of {', '.join(SCORINGS)}",
                key="evaluation.scoring",
            )
        evaluation = task.evaluation.model_copy(update={"scoring": scoring})
        task = task.model_copy(update={"evaluation": evaluation})
    if length_penalty is not None:
        if not 0.0 <= length_penalty <= 1.0:
            raise ConfigError(
                f"length_penalty: {length_penalty:g} is not in [0, 1]", key="length_penalty"
            )
        task = task.model_copy(update={"length_penalty": length_penalty})
    if models:
        task = task.model_copy(update={"models": task.models.with_overrides(models)})
    task = _templates_from_task_dir(task)
    data = load_task_data(task)
    seed_prompt, kept = seed_prompt_of(task, data)
    protected = (*kept, *task.constraints.protected)
    for span in protected:
        if span not in seed_prompt.instruction:
            raise ConfigError(f"constraints.protected: {span!r} is not in the seed prompt")
    if task.metric is not None:  # the task file is trusted: it may name code
        metric = get_metric(task.metric, code_dir=task.base_dir)
    elif data.metric is not None:  # a data folder is not: built-in metrics only
        metric = get_metric(data.metric)
    else:
        raise ConfigError("missing key 'metric' (and the data folder names none)")
    name = optimizer or task.optimizer.name
    options = (
        task.optimizer.options() if optimizer is None or optimizer == task.optimizer.name else {}
    )
    options.update(optimizer_options or {})
    opt = registry.create(name, options)
    if not len(data.dev) and opt.needs_dev:
        raise ConfigError(
            f"data: no dev split, and optimizer {name} selects on one "
            "(give data.dev, or dev_from_train: true; spo needs none)"
        )
    folds = task.evaluation.folds
    if folds:
        if not opt.needs_dev:
            raise ConfigError(
                f"evaluation.folds: {opt.name} selects without a dev split; k-fold "
                "selection is for the optimizers that select on dev"
            )
        pooled = len(data.train) + len(data.dev)
        if folds == 1 or pooled < 2 * folds:
            raise ConfigError(
                f"evaluation.folds: {folds} folds need 2 or more folds of at least 2 "
                f"examples; train and dev hold {pooled}"
            )
        opt = KFoldSelection(opt, folds)
    file_budget = Budget.from_mapping(task.budget, where="budget")
    full_budget = file_budget.merged(budget) if budget else file_budget
    p = task.task_params
    params = TaskParams(p.temperature, p.max_tokens, task.seed, tuple(p.stop))
    for ex in (*data.train.examples[:1], *data.dev.examples[:1]):
        # fail now, not mid-run, on a placeholder the data lacks
        seed_prompt.render(ex.fields, where=f"seed_prompt, example {ex.id}")
    _check_metric(metric, data, search=opt.needs_dev)
    return Plan(task, data, seed_prompt, metric, opt, full_budget, params, protected)


def _templates_from_task_dir(task: TaskSpec) -> TaskSpec:
    """Chat template files named relative to the task file, made absolute (a resumed
    run and a backend built elsewhere find the same file)."""
    updates = {}
    for role in ("task", "optimizer", "judge"):
        spec: ModelSpec = getattr(task.models, role)
        path = Path(spec.chat_template).expanduser()
        if spec.chat_template != "chatml" and not path.is_absolute():
            absolute = str((task.base_dir / path).resolve())
            updates[role] = spec.model_copy(update={"chat_template": absolute})
    if not updates:
        return task
    return task.model_copy(update={"models": task.models.model_copy(update=updates)})


def _check_metric(metric: Metric, data: TaskData, *, search: bool = True) -> None:
    """Every example the metric will score must have what it needs (a target,
    choices): found now, before anything is spent, not in the middle of a run. With
    `search` False (an optimizer that scores nothing itself, like SPO), only the test
    split is scored: train and dev may be unlabelled. A code metric not imported yet
    is checked when it is (Plan.load_code): planning runs no user code."""
    if isinstance(metric, CodeMetric) and not metric.loaded:
        return
    for split in (data.train, data.dev, data.test) if search else (data.test,):
        if split is None:
            continue
        for ex in split:
            try:
                # A metric that asks a model (the judge) checks without a call.
                check = getattr(metric, "check", None)
                if callable(check):
                    check(ex)
                else:
                    metric.score("", ex)
            except MetricError as e:
                raise ConfigError(f"{split.name} split: {e}") from None


def seed_prompt_of(task: TaskSpec, data: TaskData) -> tuple[Prompt, tuple[str, ...]]:
    """The seed prompt, and the spans its `<keep>` tags protect (tags removed)."""
    sp = task.seed_prompt
    if isinstance(sp, PromptSpec):
        instruction, kept = split_keep_tags(sp.instruction)
        demos = tuple(Demo(d["input"], str(d["output"])) for d in sp.demos)
        output_format = sp.output_format
        if output_format == "auto":
            output_format = answer_format_line(list(data.train))
            if output_format is None:
                raise ConfigError("seed_prompt.output_format: 'auto' needs examples with choices")
        return Prompt(instruction, sp.system, demos, output_format), kept
    instruction, kept = split_keep_tags((sp if sp is not None else data.seed_prompt) or "")
    return Prompt(instruction), kept
