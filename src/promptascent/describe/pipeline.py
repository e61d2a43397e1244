"""From a description to a planned run: intent analysis, synthetic data, strategy.

`synth_task` drafts the task (written as an editable task.yaml, shown through a
callback before anything expensive runs) and synthesizes its data next to it.
`prepare_described` then reloads the task file (so edits made to the draft count),
chooses the optimizer (unless overridden) and plans the run, which the caller runs
with `Runner` like any other. The describe steps use the optimizer model through a
`ModelClient` with its own budget (`synth_budget`), the shared response cache and a
journal in the output folder, so rerunning them with the same seed pays for nothing.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from promptascent.config.task import (
    ModelsSpec,
    OptimizerSpec,
    TaskSpec,
    describe_validation_error,
    load_task,
    task_from_dict,
)
from promptascent.data.example import Dataset, Example
from promptascent.data.loaders import dataset_from_rows
from promptascent.data.task_data import TaskData
from promptascent.describe.intent import (
    TaskDraft,
    analyse_intent,
    check_description,
    draft_from_fields,
    task_slug,
)
from promptascent.describe.strategy import StrategyChoice, choose_optimizer
from promptascent.describe.synth import (
    MAX_EXAMPLES,
    LabelCheck,
    SynthResult,
    label_check,
    split_examples,
    synthesize,
)
from promptascent.errors import ConfigError
from promptascent.estimate import RunEstimate, estimate
from promptascent.events import EventSink
from promptascent.llm.budget import Budget
from promptascent.llm.types import Role
from promptascent.planning import Plan, plan
from promptascent.run_settings import RunSettings
from promptascent.store.files import write_atomic

DEFAULT_OUT_DIR = Path("generated")
DEFAULT_EXAMPLES = 40
DEFAULT_RUN_BUDGET: dict[str, float] = {"task_calls": 300}
TEST_FRACTION = 0.25  # held out by `optimize --describe`, so the run reports a score
DEV_FRACTION = 0.3
TASK_FILE = "task.yaml"
INTENT_ATTEMPTS = 2


class DescribedTaskSpec(BaseModel):
    """A task file holding a description instead of data (`promptascent optimize
    FILE` runs the describe pipeline on it). Unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")
    description: str
    name: str | None = None
    models: ModelsSpec = Field(default_factory=ModelsSpec)
    budget: dict[str, int | float] = Field(default_factory=dict)
    optimizer: OptimizerSpec | None = None
    examples: int = Field(DEFAULT_EXAMPLES, ge=3, le=1000)
    out: Path | None = None  # the folder for the drafted task and its data
    seed: int = 0
    base_dir: Path = Field(default=Path("."), exclude=True)


# The keys a described task file may hold (`base_dir` is not one: it is where the file is).
DESCRIBED_KEYS = tuple(k for k in DescribedTaskSpec.model_fields if k != "base_dir")


def read_described_task(path: Path) -> DescribedTaskSpec | None:
    """The described task a file holds: a mapping with `description` and no `data`.
    None for anything else (a normal task file, or one `load_task` will reject with
    its own error)."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    return described_from_dict(raw, base_dir=path.parent, source=str(path))


def described_from_dict(
    raw: Any, *, base_dir: Path = Path("."), source: str = "task"
) -> DescribedTaskSpec | None:
    if not isinstance(raw, dict) or "description" not in raw or "data" in raw:
        return None
    normal = [k for k in raw if k in TaskSpec.model_fields and k not in DESCRIBED_KEYS]
    if normal:
        raise ConfigError(
            f"{source}: no `data:` section, but {', '.join(map(str, normal))} "
            f"{'is a key' if len(normal) == 1 else 'are keys'} of a normal task file. "
            "A normal task needs `data:` (e.g. `data: {train: train.jsonl, dev: dev.jsonl, "
            "test: test.jsonl}` or `data: {folder: DIR}`); a description-only task holds "
            "only `description` and the optional keys "
            f"{', '.join(k for k in DESCRIBED_KEYS if k != 'description')}"
        )
    try:
        return DescribedTaskSpec(**raw, base_dir=base_dir)
    except ValidationError as e:
        raise ConfigError(
            f"{source}: {describe_validation_error(e, DescribedTaskSpec)} "
            "(a task file with a description and no data)"
        ) from None


def merge_models(base: ModelsSpec | None, flags: Mapping[Role, str] | None) -> ModelsSpec:
    """The models of a described task with some roles replaced (`backend:model`
    strings, ModelsSpec.with_overrides)."""
    return (base or ModelsSpec()).with_overrides(flags)


def synth_budget(
    n: int, *, attempts_per_example: int = 3, check_labels: LabelCheck = "off"
) -> Budget:
    """The default budget of the describe steps: every planned generation (and label
    check: one per kept input, or per usable generation when disagreeing ones are
    dropped) plus the intent analysis, in optimizer-model calls."""
    generations = attempts_per_example * n
    checks = {"off": 0, "record": n, "drop": generations}[label_check(check_labels)]
    return Budget(optimizer_calls=generations + checks + INTENT_ATTEMPTS)


class OptimizerSession:
    """The optimizer model in its role for the describe steps, built as a run builds
    its clients: backend (or `settings.backends` override), budget guard, the shared
    response cache, and a journal in `journal_dir`."""

    def __init__(
        self, models: ModelsSpec, settings: RunSettings, budget: Budget, journal_dir: Path
    ) -> None:
        self._hub = settings.hub(models, journal_dir=journal_dir).open()
        self.meter = self._hub.meter
        self.guard = self._hub.guard(budget)
        self.client = self._hub.client("optimizer", self.guard)

    def usage(self) -> dict[str, float]:
        return self.meter.to_dict()["optimizer"]

    def close(self) -> None:
        self._hub.close()


@dataclass(frozen=True)
class SynthOutcome:
    draft: TaskDraft
    synth: SynthResult
    task_path: Path
    usage: dict[str, float]  # the optimizer model's calls, cache hits, tokens


DraftHook = Callable[[TaskDraft, Path, str], None]


def default_out_dir(description: str) -> Path:
    return DEFAULT_OUT_DIR / task_slug(description)


def check_count(n: int, *, least: int) -> None:
    """ConfigError unless `n` (the examples to synthesize) is a whole number from
    `least` (one per split) to MAX_EXAMPLES."""
    if isinstance(n, bool) or not isinstance(n, int) or not least <= n <= MAX_EXAMPLES:
        raise ConfigError(
            f"examples: {n!r} examples; give a whole number from {least} to {MAX_EXAMPLES}",
            key="examples",
        )


def synth_task(
    description: str,
    *,
    out_dir: Path | None = None,
    n: int = DEFAULT_EXAMPLES,
    models: ModelsSpec | None = None,
    settings: RunSettings | None = None,
    budget: Budget | None = None,
    run_budget: dict[str, float] | None = None,
    optimizer: dict[str, Any] | None = None,
    seed: int = 0,
    test_fraction: float = 0.0,
    check_labels: LabelCheck = "off",
    on_draft: DraftHook | None = None,
    emit: EventSink | None = None,
) -> SynthOutcome:
    """Drafts the task from `description` (written to OUT/task.yaml, then shown via
    `on_draft(draft, path, yaml_text)`, which may raise to stop before any data is
    made), then synthesizes `n` examples into OUT/train.jsonl, dev.jsonl (and
    test.jsonl with `test_fraction`). `budget` bounds both steps (its limits
    replace those of `synth_budget(n)`); rerunning with the same seed and folder
    repeats no paid call."""
    description = check_description(description)
    check_count(n, least=3 if test_fraction > 0 else 2)
    settings = settings or RunSettings()
    models = models or ModelsSpec()
    out_dir = out_dir or default_out_dir(description)
    out_dir.mkdir(parents=True, exist_ok=True)
    session = OptimizerSession(
        models,
        settings,
        synth_budget(n, check_labels=check_labels).merged(budget or Budget()),
        out_dir,
    )
    try:
        draft = analyse_intent(description, session.client, attempts=INTENT_ATTEMPTS, seed=seed)
        splits = ["train", "dev"] + (["test"] if test_fraction > 0 else [])
        data = {s: f"{s}.jsonl" for s in splits}
        text = draft.to_yaml(data, models=models, budget=run_budget, optimizer=optimizer, seed=seed)
        task_path = out_dir / TASK_FILE
        write_atomic(task_path, text)
        if on_draft is not None:
            on_draft(draft, task_path, text)
        result = synthesize(
            draft,
            session.client,
            n,
            random.Random(seed),
            out_dir=out_dir,
            dev_fraction=DEV_FRACTION,
            test_fraction=test_fraction,
            check_labels=check_labels,
            emit=emit,
        )
        return SynthOutcome(draft, result, task_path, session.usage())
    finally:
        session.close()


@dataclass(frozen=True)
class Prepared:
    """A described task, drafted, synthesized and planned: run `plan` with Runner."""

    plan: Plan
    outcome: SynthOutcome
    strategy: StrategyChoice

    @property
    def draft(self) -> TaskDraft:
        return self.outcome.draft


def choose_strategy(
    draft: TaskDraft,
    n_train: int,
    n_dev: int,
    *,
    run_budget: Mapping[str, float],
    budget: Budget | None,
    optimizer: str | None,
    options: dict[str, Any] | None,
    file_optimizer: OptimizerSpec | None,
) -> StrategyChoice:
    """The optimizer of a described task: `optimizer` (the flag), else the task
    file's `file_optimizer`, else `choose_optimizer` for the draft, the split sizes
    and the run's task-call limit (`run_budget` with `budget` over it); `options`
    are added to any of them."""
    if optimizer is not None:
        return StrategyChoice(optimizer, dict(options or {}), f"{optimizer}: chosen by you")
    if file_optimizer is not None:
        name = file_optimizer.name
        return StrategyChoice(
            name, {**file_optimizer.options(), **(options or {})}, f"{name}: from the task file"
        )
    limits = Budget.from_mapping(run_budget)
    if budget is not None:
        limits = limits.merged(budget)
    calls = [x for x in (limits.task_calls, limits.calls) if x is not None]
    choice = choose_optimizer(
        draft.task_type, n_train, n_dev, min(calls) if calls else None, labelled=bool(draft.labels)
    )
    if options:
        choice = choice._replace(options={**choice.options, **options})
    return choice


def prepare_described(
    description: str,
    *,
    out_dir: Path | None = None,
    n: int = DEFAULT_EXAMPLES,
    models: ModelsSpec | None = None,
    settings: RunSettings | None = None,
    synth_limits: Budget | None = None,
    task_budget: dict[str, float] | None = None,
    budget: Budget | None = None,
    optimizer: str | None = None,
    options: dict[str, Any] | None = None,
    file_optimizer: OptimizerSpec | None = None,
    seed: int = 0,
    name: str | None = None,
    on_draft: DraftHook | None = None,
    on_strategy: Callable[[StrategyChoice], None] | None = None,
    emit: EventSink | None = None,
) -> Prepared:
    """The whole describe pipeline up to a planned run: draft (shown via `on_draft`),
    synthesize train/dev/test, choose the optimizer (`optimizer`/`options` or the
    described file's `file_optimizer` override it), plan. `task_budget` is the run's
    budget written into the task file (default DEFAULT_RUN_BUDGET); `budget`
    (flags) overrides it at planning, as for any task."""

    run_budget = dict(task_budget or DEFAULT_RUN_BUDGET)
    fixed = file_optimizer.model_dump() if file_optimizer is not None else None
    outcome = synth_task(
        description,
        out_dir=out_dir,
        n=n,
        models=models,
        settings=settings,
        budget=synth_limits,
        run_budget=run_budget,
        optimizer=fixed,
        seed=seed,
        test_fraction=TEST_FRACTION,
        on_draft=on_draft,
        emit=emit,
    )
    drafted_text = outcome.task_path.read_text(encoding="utf-8")
    task = load_task(outcome.task_path)  # edits made to the draft count
    if name:
        task = task.model_copy(update={"name": name})
    raw = yaml.safe_load(drafted_text) or {}
    splits = outcome.synth.splits
    n_train, n_dev = len(splits["train"]), len(splits["dev"])
    from_file = task.optimizer if "optimizer" in raw else None
    choice = choose_strategy(
        outcome.draft,
        n_train,
        n_dev,
        run_budget=task.budget,
        budget=budget,
        optimizer=optimizer,
        options=options,
        file_optimizer=from_file,
    )
    if optimizer is None and from_file is None:
        # Write the choice into the task file, unless the user edited the draft.
        text = outcome.draft.to_yaml(
            {s: f"{s}.jsonl" for s in splits},
            models=models,
            budget=run_budget,
            optimizer={"name": choice.name, **choice.options},
            optimizer_reason=choice.reason,
            seed=seed,
        )
        if outcome.task_path.read_text(encoding="utf-8") == drafted_text:
            write_atomic(outcome.task_path, text)
    if on_strategy is not None:
        on_strategy(choice)
    p = plan(task, optimizer=choice.name, optimizer_options=choice.options, budget=budget)
    test = splits.get("test", ())
    data = replace(
        p.data,
        notes=(
            *p.data.notes,
            f"described task: {outcome.draft.description}",
            f"synthetic data: train {n_train}, dev {n_dev}, test {len(test)} examples were "
            "written by the optimizer model from the description"
            + (
                " (labels proposed by it, not checked by a person); the test score measures "
                "agreement with them"
                if outcome.draft.labels
                else " (inputs only, no reference outputs); the test score is the judge's"
            ),
            f"optimizer: {choice.reason}",
            *(f"intent analysis: {note}" for note in outcome.draft.notes),
        ),
    )
    return Prepared(replace(p, data=data), outcome, choice)


def spec_out_dir(spec: DescribedTaskSpec, out_dir: Path | None) -> Path | None:
    """The folder of a described task's draft and data: `out_dir` (the flag), else
    the file's `out` (relative to the file), else None (the default folder)."""
    if out_dir is None and spec.out is not None:
        return spec.out if spec.out.is_absolute() else spec.base_dir / spec.out
    return out_dir


def prepare_spec(
    spec: DescribedTaskSpec,
    *,
    out_dir: Path | None,
    examples: int | None,
    models: Mapping[Role, str] | None,
    settings: RunSettings | None,
    budget: Budget | None,
    optimizer: str | None,
    options: dict[str, Any] | None,
    seed: int | None,
    on_draft: DraftHook | None = None,
    on_strategy: Callable[[StrategyChoice], None] | None = None,
    emit: EventSink | None = None,
) -> Prepared:
    """`prepare_described` for a described task file (or mapping), with the overrides
    of the CLI or the API: an explicit `out_dir`, `examples`, model flags, seed."""
    return prepare_described(
        spec.description,
        out_dir=spec_out_dir(spec, out_dir),
        n=examples if examples is not None else spec.examples,
        models=merge_models(spec.models, models),
        settings=settings,
        task_budget=dict(spec.budget) or None,
        budget=budget,
        optimizer=optimizer,
        options=options,
        file_optimizer=spec.optimizer,
        seed=spec.seed if seed is None else seed,
        name=spec.name,
        on_draft=on_draft,
        on_strategy=on_strategy,
        emit=emit,
    )


# --------------------------------------------------------------------------- dry run


def planned_split_sizes(n: int) -> dict[str, int]:
    """The train/dev/test sizes `prepare_described` splits `n` synthetic examples
    into, when all `n` are made: `split_examples` itself run on `n` blank examples
    (the sizes depend on the count alone)."""
    blank = [Example(f"planned-{i}", "") for i in range(n)]
    parts = split_examples(
        blank, random.Random(0), dev_fraction=DEV_FRACTION, test_fraction=TEST_FRACTION
    )
    return {name: len(part) for name, part in parts.items()}


@dataclass(frozen=True)
class DescribedDryRun:
    """What `optimize --describe --dry-run` shows, made without a model call, a file
    or a run: the task draft by rules alone (the real run asks the optimizer model
    first, so its draft may differ), the synthetic-data plan (`examples`, the planned
    `splits`, the describe steps' `synth_budget`, the folder `out_dir`), the
    optimizer `strategy` for those sizes, and the run's `estimate` (as
    `runner.estimate` gives it; its token figures come from placeholder examples as
    long as the description, since no data exists yet)."""

    draft: TaskDraft
    name: str
    examples: int
    splits: dict[str, int]
    synth_budget: Budget
    out_dir: Path
    strategy: StrategyChoice
    estimate: RunEstimate

    def lines(self) -> list[str]:
        """The plan as text lines (the estimate table is printed apart, from
        `estimate`, as for any `optimize --dry-run`)."""
        d = self.draft
        metric = d.metric if isinstance(d.metric, str) else d.metric.get("name", "?")
        rubric = d.metric.get("rubric") if isinstance(d.metric, dict) else None
        lines = [
            "dry run: no model was called, nothing was written, no run was created",
            "task draft, made by rules alone (the real run asks the optimizer model first; "
            "its draft may differ):",
            f"  name: {self.name}",
            f"  task type: {d.task_type}",
            f"  labels: {', '.join(d.labels)}" if d.labels else "  labels: none (open-ended)",
            f"  metric: {metric}" + (f" (rubric: {rubric})" if rubric else ""),
            f"  seed prompt: {d.seed_prompt}",
        ]
        if d.answer_format:
            lines.append(f"  answer format: {d.answer_format}")
        lines += [f"  note: {note}" for note in d.notes]
        splits = ", ".join(f"{k} {v}" for k, v in self.splits.items())
        limits = ", ".join(f"{k}={v:g}" for k, v in self.synth_budget.limits().items())
        lines += [
            f"synthetic data: {self.examples} examples written by the optimizer model "
            f"into {self.out_dir}; split {splits} (when all {self.examples} are kept)",
            f"  budget of the draft and the data: {limits} (every planned generation "
            "plus the intent analysis)",
            f"optimizer: {self.strategy.reason}",
        ]
        if self.strategy.options:
            options = ", ".join(f"{k}={v}" for k, v in self.strategy.options.items())
            lines.append(f"  options: {options}")
        lines.append(
            "estimate of the run: calls for the planned split sizes; token figures are "
            "estimated from the description length (no data exists yet)"
        )
        return lines


def dry_run_plan(
    spec: DescribedTaskSpec | str,
    *,
    out_dir: Path | None = None,
    examples: int | None = None,
    models: Mapping[Role, str] | None = None,
    budget: Budget | None = None,
    optimizer: str | None = None,
    options: dict[str, Any] | None = None,
    seed: int | None = None,
    settings: RunSettings | None = None,
) -> DescribedDryRun:
    """What `prepare_spec` (with the same overrides) would do, without a model call,
    a file written or a run: the draft by rules alone (`draft_from_fields`), the
    planned split sizes and budget of the synthetic data, the optimizer chosen for
    them, and the run's estimate on placeholder examples (the description as each
    input). `settings` matters only for its `backends` (token counting). Raises
    ConfigError where the real pipeline would stop before its run (a bad
    description, number of examples, optimizer, option, model or budget)."""
    if isinstance(spec, str):
        spec = DescribedTaskSpec(description=spec)
    description = check_description(spec.description)
    n = spec.examples if examples is None else examples
    check_count(n, least=3)  # train, dev and test, as `prepare_described` splits them
    models_spec = merge_models(spec.models, models)
    draft = draft_from_fields(description, {})
    sizes = planned_split_sizes(n)
    run_budget = dict(spec.budget) or dict(DEFAULT_RUN_BUDGET)
    choice = choose_strategy(
        draft,
        sizes["train"],
        sizes["dev"],
        run_budget=run_budget,
        budget=budget,
        optimizer=optimizer,
        options=options,
        file_optimizer=spec.optimizer,
    )
    # Placeholder examples, for validation and the estimate's token counts only (at
    # least 4: `plan` splits inline examples in two).
    rows: list[dict[str, Any]] = []
    for i in range(max(n, 4)):
        row: dict[str, Any] = {"id": f"planned-{i}", "input": description}
        if draft.labels:
            row.update(target=draft.labels[i % len(draft.labels)], choices=list(draft.labels))
        rows.append(row)
    fixed = spec.optimizer.model_dump() if spec.optimizer is not None else None
    mapping = draft.to_task_dict(
        {"examples": rows},
        models=models_spec,
        budget=run_budget,
        optimizer=fixed,
        seed=spec.seed if seed is None else seed,
    )
    task = task_from_dict(mapping, source="described task")
    if spec.name:
        task = task.model_copy(update={"name": spec.name})
    p = plan(task, optimizer=choice.name, optimizer_options=choice.options, budget=budget)
    parts: dict[str, Dataset] = {}
    start = 0
    for split in ("test", "dev", "train"):
        parts[split] = dataset_from_rows(
            rows[start : start + sizes[split]], name=split, where="placeholder examples"
        )
        start += sizes[split]
    p = replace(
        p, data=TaskData(parts["train"], parts["dev"], parts["test"], None, None, description)
    )
    return DescribedDryRun(
        draft=draft,
        name=task.name,
        examples=n,
        splits=sizes,
        synth_budget=synth_budget(n).merged(budget or Budget()),  # as `synth_task` has it
        out_dir=spec_out_dir(spec, out_dir) or default_out_dir(description),
        strategy=choice,
        estimate=estimate(p, backends=settings.backends if settings is not None else None),
    )
