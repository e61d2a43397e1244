"""promptascent: automatic prompt optimization with evidence.

import promptascent
result = promptascent.optimize("task.yaml", optimizer="ape", budget={"task_calls": 300})
print(result.best_prompt.instruction, result.comparison)
"""

from __future__ import annotations

import os
import sys


def _run_as_module() -> bool:
    """Whether Python is starting `python -m promptascent` and importing this package
    to find its __main__ (sys.argv[0] is "-m" only until then)."""
    if sys.argv[:1] != ["-m"]:
        return False
    args = sys.orig_argv[1:]
    for i, arg in enumerate(args):
        if arg == "-m":
            return args[i + 1 : i + 2] == [__name__]
        if arg.startswith("-m"):
            return arg[2:] == __name__
    return False


# `python -m promptascent` puts the current folder first on the import path, before the
# installed packages: a file there named like a module promptascent imports (yaml.py)
# would run. The folder a command runs in holds data, not code (README: What is
# trusted), so it is dropped before anything else is imported.
if _run_as_module() and sys.path and sys.path[0] in ("", os.getcwd()):
    del sys.path[0]

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from promptascent.compare import Comparison
from promptascent.config.task import TaskSpec, load_task, task_from_dict
from promptascent.data.example import Dataset, Example
from promptascent.errors import PromptascentError
from promptascent.llm.budget import Budget
from promptascent.prompts.prompt import Demo, Prompt
from promptascent.runner import Runner, RunResult, RunSettings, plan

if TYPE_CHECKING:
    from promptascent.preference.duel import Record
    from promptascent.preference.loop import Chooser
    from promptascent.preference.session import PreferResult

__version__ = "0.1.0"
T = TypeVar("T")


def optimize(
    task: str | Path | TaskSpec | dict[str, Any] | None = None,
    *,
    description: str | None = None,
    out: str | Path | None = None,
    examples: int | None = None,
    optimizer: str | None = None,
    options: dict[str, Any] | None = None,
    budget: Budget | dict[str, float] | None = None,
    seed: int | None = None,
    models: dict[str, str] | None = None,
    length_penalty: float | None = None,
    scoring: str | None = None,
    settings: RunSettings | None = None,
    progress: bool = True,
) -> RunResult:
    """Runs one optimization and returns its result (best prompt, test scores against
    the seed with confidence intervals, usage per role, where the run was written).

    `task` is a task file, a TaskSpec, or the same mapping a task file holds (paths in
    it relative to the current folder). Keyword arguments override the task.

    With `description` instead of a task (or a task file or mapping holding only a
    `description`, models, budget...), the describe pipeline runs first: the task is
    drafted, `examples` synthetic examples are made into the folder `out` (with its
    task.yaml), the optimizer is chosen unless `optimizer` is given; see
    docs/describe.md. The result's notes say that its test split is synthetic.

    `progress` (on by default) draws the live progress on stderr, as the CLI does:
    each phase, the best score so far, and the calls and dollars spent against the
    budget; `progress=False` prints nothing. Nothing is ever printed to stdout.
    """
    from promptascent.describe.pipeline import (
        DescribedTaskSpec,
        described_from_dict,
        read_described_task,
    )

    described: DescribedTaskSpec | None = None
    if description is not None:
        if task is not None:
            raise PromptascentError("optimize: give a task or a description, not both")
        described = DescribedTaskSpec(description=description)
    elif isinstance(task, (str, Path)) and Path(task).is_file():
        described = read_described_task(Path(task))
    elif isinstance(task, dict):
        described = described_from_dict(task)
    elif task is None:
        raise PromptascentError("optimize: give a task (file, mapping, TaskSpec) or a description")
    settings = _with_progress(settings, progress)
    if described is not None:
        return _run_shown(
            settings,
            lambda: _optimize_described(
                described,
                out=out,
                examples=examples,
                optimizer=optimizer,
                options=options,
                budget=budget,
                seed=seed,
                models=models,
                settings=settings,
            ),
        )
    if out is not None or examples is not None:
        raise PromptascentError("optimize: `out` and `examples` go with a description")
    assert task is not None
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
        scoring=scoring,
    )
    return _run_shown(settings, Runner(p, settings).run)


def _with_progress(settings: RunSettings | None, progress: bool) -> RunSettings | None:
    """The settings with the live progress display (cli/progress.py) on stderr added
    to their sinks (a copy: the caller's settings are not changed)."""
    if not progress:
        return settings
    from dataclasses import replace

    from rich.console import Console

    from promptascent.cli.progress import ProgressDisplay

    console = Console(stderr=True)
    if not console.is_terminal:  # a log or a captured stream: its last state, unclipped
        console = Console(stderr=True, width=160)
    settings = settings or RunSettings()
    return replace(settings, sinks=[*settings.sinks, ProgressDisplay(console)])


def _run_shown(settings: RunSettings | None, work: Callable[[], T]) -> T:
    """Runs `work` with the settings' progress display (if any) started and stopped."""
    from promptascent.cli.progress import ProgressDisplay

    display = next(
        (s for s in (settings.sinks if settings else []) if isinstance(s, ProgressDisplay)), None
    )
    if display is None:
        return work()
    with display:
        return work()


def _optimize_described(
    spec: Any,
    *,
    out: str | Path | None,
    examples: int | None,
    optimizer: str | None,
    options: dict[str, Any] | None,
    budget: Budget | dict[str, float] | None,
    seed: int | None,
    models: dict[str, str] | None,
    settings: RunSettings | None,
) -> RunResult:
    from promptascent.describe.pipeline import prepare_spec

    if isinstance(budget, dict):
        budget = Budget.from_mapping(budget, where="budget")
    prepared = prepare_spec(
        spec,
        out_dir=Path(out) if out is not None else None,
        examples=examples,
        models=models,  # type: ignore[arg-type]
        settings=settings,
        budget=budget,
        optimizer=optimizer,
        options=options,
        seed=seed,
    )
    return Runner(prepared.plan, settings).run()


def compare(
    task: str | Path | TaskSpec,
    optimizers: list[str],
    *,
    budget: Budget | dict[str, float] | None = None,
    seeds: list[int] | tuple[int, ...] = (0,),
    options: dict[str, dict[str, Any]] | None = None,
    settings: RunSettings | None = None,
    progress: bool = True,
) -> Comparison:
    """Runs each optimizer (once per seed) under the same budget on the same splits and
    returns the comparison; each run is recorded as `optimize` records it. `progress`
    as in `optimize`."""
    from promptascent.compare import compare as run_compare

    spec = load_task(task) if isinstance(task, (str, Path)) else task
    if isinstance(budget, dict):
        budget = Budget.from_mapping(budget, where="budget")
    shown = _with_progress(settings, progress)
    return _run_shown(
        shown,
        lambda: run_compare(
            spec, optimizers, budget=budget, seeds=seeds, options=options, settings=shown
        ),
    )


def prefer(
    task: str | Path | TaskSpec | dict[str, Any] | None,
    chooser: Chooser,
    *,
    run: str | Path | None = None,
    candidates: int = 4,
    rounds: int | None = None,
    resume: str | Path | None = None,
    settings: RunSettings | None = None,
    run_id: str | None = None,
    on_record: Callable[[Record], None] | None = None,
) -> PreferResult:
    """Ranks candidate prompts by a person's preferences (see docs/preferences.md).

    `chooser(duel)` judges one duel (an input and the outputs of two prompts, shown
    as A and B) and answers "A", "B", "tie", "skip" or "quit". The candidates are the
    `candidates` best of the run in folder `run`, or the seed prompt and paraphrases by
    the optimizer model; a dueling bandit picks the pairs for `rounds` duels (default
    20). Every verdict is recorded as it is made (and passed to `on_record`). `resume`
    (a run folder) continues a preference run instead: `task` is then ignored, and
    `rounds`, if given, sets a new total. Returns the ranking with win records.
    """
    from promptascent.preference.session import resume_preferences, start_preferences

    if resume is not None:
        return resume_preferences(
            Path(resume),
            chooser,
            rounds=rounds,
            settings=settings,
            on_record=on_record,
        )
    if task is None:
        raise PromptascentError("prefer needs a task (or resume=RUN_DIR)")
    if isinstance(task, (str, Path)):
        spec = load_task(task)
    elif isinstance(task, dict):
        spec = task_from_dict(task)
    else:
        spec = task
    return start_preferences(
        spec,
        chooser,
        from_run=Path(run) if run is not None else None,
        candidates=candidates,
        rounds=20 if rounds is None else rounds,
        settings=settings,
        run_id=run_id,
        on_record=on_record,
    )


def resume(
    run_dir: str | Path, *, settings: RunSettings | None = None, progress: bool = True
) -> RunResult:
    """Continues an interrupted run from its folder (see `promptascent.runner.resume_run`);
    `progress` as in `optimize`."""
    from promptascent.runner import resume_run

    shown = _with_progress(settings, progress)
    return _run_shown(
        shown, lambda: resume_run(Path(run_dir), sinks=shown.sinks if shown else None)
    )


def refine(
    run_dir: str | Path,
    feedback: str | Sequence[str] = (),
    *,
    candidate: str | None = None,
    spans: bool = False,
    optimizer: str | None = None,
    options: dict[str, Any] | None = None,
    budget: Budget | dict[str, float] | None = None,
    settings: RunSettings | None = None,
    progress: bool = True,
) -> RunResult:
    """Continues a finished run from its best prompt (or `candidate`'s) with each
    `feedback` comment on its outputs, and with `spans` the span comments stored on
    that prompt, as new requirements; a new run, recording where it came from (see
    `promptascent.refinement`). `progress` as in `optimize`."""
    from promptascent.refinement import refine as refine_run

    if isinstance(budget, dict):
        budget = Budget.from_mapping(budget, where="budget")
    # Without settings a refined run goes beside the run it refines (refinement.py).
    shown = _with_progress(settings or RunSettings(runs_dir=Path(run_dir).parent), progress)
    return _run_shown(
        shown,
        lambda: refine_run(
            run_dir,
            feedback,
            candidate=candidate,
            spans=spans,
            optimizer=optimizer,
            options=options,
            budget=budget,
            settings=shown,
        ),
    )


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
    "prefer",
    "refine",
    "resume",
]
