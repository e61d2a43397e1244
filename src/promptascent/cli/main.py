"""The promptascent command line."""

from __future__ import annotations

import sqlite3
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
import yaml
from rich.console import Console
from rich.table import Table

from promptascent.cli.flags import flag_message
from promptascent.cli.progress import ProgressDisplay
from promptascent.cli.summary import fmt, print_result
from promptascent.cli.terminal import terminal_markup, terminal_text
from promptascent.config.task import load_task
from promptascent.describe.intent import TaskDraft
from promptascent.describe.pipeline import (
    DescribedTaskSpec,
    dry_run_plan,
    merge_models,
    prepare_spec,
    read_described_task,
    synth_task,
)
from promptascent.describe.synth import SynthProgress
from promptascent.errors import ConfigError, PromptascentError, StorageError, TemplateError
from promptascent.estimate import RunEstimate, estimate
from promptascent.events import Event, TrackerFailed
from promptascent.llm.budget import Budget
from promptascent.llm.client import CachePolicy
from promptascent.llm.types import Role
from promptascent.preference.duel import Record
from promptascent.preference.session import CONFIG_KEY as PREFER_CONFIG
from promptascent.prompts.export import check_format
from promptascent.run_export import export_run
from promptascent.runner import (
    DEFAULT_CACHE_DIR,
    DEFAULT_RUNS_DIR,
    Plan,
    Runner,
    RunResult,
    RunSettings,
    new_run_id,
    plan,
    resume_run,
)
from promptascent.store.run_lock import current_status
from promptascent.store.run_store import FILENAME, RunStore
from promptascent.tracking import check_trackers

T = TypeVar("T")

# Usage errors (unknown flag or command, bad value, missing argument) are click's
# exceptions; typer may run on its own copy of click, so take the classes from it.
_CLICK_ERROR: type[Exception] = next(
    c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException"
)
_USAGE_ERROR: type[Exception] = next(
    c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError"
)

app = typer.Typer(
    name="promptascent",
    help="Find a better prompt automatically, and show the evidence.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
out = Console(highlight=False, soft_wrap=True)
if not out.is_terminal:  # pipes and files: wide enough that tables are not cut
    out = Console(highlight=False, soft_wrap=True, width=max(out.width, 120))
err = Console(stderr=True, highlight=False)

RunsDir = Annotated[Path, typer.Option("--runs-dir", help="Folder of run stores.")]
CacheDir = Annotated[
    Path, typer.Option("--cache-dir", help="Folder of the response and evaluation caches.")
]
NoCache = Annotated[bool, typer.Option("--no-cache", help="Neither read nor write the caches.")]
RefreshCache = Annotated[
    bool,
    typer.Option("--refresh-cache", help="Call the models again and overwrite cached replies."),
]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress display.")]
Track = Annotated[
    list[str],
    typer.Option(
        "--track",
        help="Send the run (each run of a compare) to an experiment tracker: mlflow, wandb "
        "or otel (repeatable; docs/tracking.md).",
    ),
]
Scoring = Annotated[
    str | None,
    typer.Option(
        help="generate, likelihood (the most likely choice answers; multiple choice) or "
        "auto (overrides evaluation.scoring)."
    ),
]


def _settings(
    runs_dir: Path, cache_dir: Path, no_cache: bool, refresh: bool, quiet: bool
) -> RunSettings:
    if no_cache and refresh:
        raise ConfigError("--no-cache and --refresh-cache exclude each other")
    policy = CachePolicy(read=not (no_cache or refresh), write=not no_cache)
    return RunSettings(
        runs_dir=runs_dir, cache_dir=None if no_cache else cache_dir, cache_policy=policy
    )


def _options(pairs: list[str]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--option {pair!r}: expected KEY=VALUE")
        options[key.strip()] = yaml.safe_load(value)
    return options


def _models(
    task_model: str | None, optimizer_model: str | None, judge_model: str | None
) -> dict[Role, str]:
    given: dict[Role, str | None] = {
        "task": task_model,
        "optimizer": optimizer_model,
        "judge": judge_model,
    }
    return {role: v for role, v in given.items() if v}


def _with_progress(settings: RunSettings, quiet: bool, work: Callable[[], T]) -> T:
    """Runs `work` with a live progress display on a terminal (none with --quiet or
    when stderr is not a terminal). `work` must build its runner after this subscribes."""
    if quiet or not err.is_terminal:
        return work()
    display = ProgressDisplay(err)
    settings.sinks.append(display)
    with display:
        return work()


@app.command()
def optimize(
    task_file: Annotated[
        Path | None, typer.Argument(help="The task YAML file (not with --resume).")
    ] = None,
    optimizer: Annotated[
        str | None, typer.Option("--optimizer", "-o", help="Optimizer name (overrides the file).")
    ] = None,
    option: Annotated[
        list[str], typer.Option("--option", help="Optimizer option KEY=VALUE (repeatable).")
    ] = [],  # noqa: B006
    task_model: Annotated[
        str | None,
        typer.Option(
            help="Task model: embedded[:PATH], openai:MODEL[@URL] or litellm:MODEL[@URL]."
        ),
    ] = None,
    optimizer_model: Annotated[
        str | None, typer.Option(help="Optimizer model (same forms).")
    ] = None,
    judge_model: Annotated[str | None, typer.Option(help="Judge model (same forms).")] = None,
    budget: Annotated[
        str | None, typer.Option(help="Limits, e.g. task_calls=600,minutes=10 (override the file).")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed (overrides the file).")] = None,
    length_penalty: Annotated[
        float | None,
        typer.Option(
            help="Maximise score - L * prompt tokens / seed tokens, e.g. 0.05 (overrides the file)."
        ),
    ] = None,
    scoring: Scoring = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Print the estimated calls, tokens and cost (with --describe, also the "
            "draft, data and optimizer planned); spend nothing.",
        ),
    ] = False,
    resume: Annotated[
        str | None,
        typer.Option(help="Continue an interrupted run (id, unique prefix or folder)."),
    ] = None,
    run_id: Annotated[
        str | None, typer.Option(help="Name of the run folder (default: time-task-optimizer).")
    ] = None,
    describe: Annotated[
        str | None,
        typer.Option(
            "--describe",
            help="Start from a task description alone: draft the task, synthesize data, "
            "choose the optimizer, run (see docs/describe.md).",
        ),
    ] = None,
    out_dir: Annotated[
        Path | None,
        typer.Option("--out", help="With --describe: folder for the drafted task and its data."),
    ] = None,
    examples: Annotated[
        int | None,
        typer.Option("--examples", help="With --describe: synthetic examples to make (40)."),
    ] = None,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="With --describe: run without asking.")
    ] = False,
    runs_dir: RunsDir = DEFAULT_RUNS_DIR,
    cache_dir: CacheDir = DEFAULT_CACHE_DIR,
    no_cache: NoCache = False,
    refresh_cache: RefreshCache = False,
    quiet: Quiet = False,
    track: Track = [],  # noqa: B006
) -> None:
    """Optimize the task's seed prompt and report it against the seed on held-out data."""
    settings = _settings(runs_dir, cache_dir, no_cache, refresh_cache, quiet)
    _track(settings, track)
    if resume is not None:
        if task_file is not None or dry_run:
            raise ConfigError("--resume takes no task file and no --dry-run: the run has its own")
        run_dir = _resolve_run(resume, runs_dir)
        result = _with_progress(
            settings,
            quiet,
            lambda: _interruptible(
                run_dir,
                runs_dir,
                lambda: resume_run(run_dir, sinks=settings.sinks, trackers=settings.trackers),
            ),
        )
        print_result(out, result.to_dict())
        return
    if task_file is None and describe is None:
        raise ConfigError("optimize needs a task file (or --describe TEXT, or --resume RUN)")
    described = _described(task_file, describe)
    if described is not None:
        if dry_run:  # the plan of the describe steps and the run: no call, no file
            planned = dry_run_plan(
                described,
                out_dir=out_dir,
                examples=examples,
                models=_models(task_model, optimizer_model, judge_model),
                budget=Budget.parse(budget) if budget else None,
                optimizer=optimizer,
                options=_options(option),
                seed=seed,
                settings=settings,
            )
            for line in planned.lines():
                out.print(terminal_text(line), markup=False)
            _print_estimate(planned.estimate)
            return
        p = _prepare_described(
            described,
            out_dir=out_dir,
            examples=examples,
            yes=yes,
            optimizer=optimizer,
            options=_options(option),
            budget=Budget.parse(budget) if budget else None,
            seed=seed,
            models=_models(task_model, optimizer_model, judge_model),
            settings=settings,
            quiet=quiet,
        )
    else:
        if out_dir is not None or examples is not None:
            raise ConfigError("--out and --examples go with --describe or a described task file")
        assert task_file is not None
        p = _plan(
            task_file,
            optimizer=optimizer,
            optimizer_options=_options(option),
            budget=Budget.parse(budget) if budget else None,
            seed=seed,
            models=_models(task_model, optimizer_model, judge_model),
            length_penalty=length_penalty,
            scoring=scoring,
        )
    if dry_run:
        _print_estimate(estimate(p))
        for note in p.data.notes:
            out.print(f"note: {terminal_markup(note)}")
        return
    runner_box: list[Runner] = []

    def work() -> RunResult:
        runner_box.append(Runner(p, settings, run_id=run_id))
        return _interruptible(runs_dir / runner_box[0].run_id, runs_dir, runner_box[0].run)

    result = _with_progress(settings, quiet, work)
    print_result(out, result.to_dict())


def _track(settings: RunSettings, track: list[str]) -> None:
    """The --track flags: the trackers every run of the command reports to (checked
    before anything runs), and a warning on stderr when one fails."""
    settings.trackers = tuple(dict.fromkeys(track))
    check_trackers(settings.trackers)
    settings.sinks.append(_warn_tracker_failed)


def _warn_tracker_failed(event: Event) -> None:
    """A tracker that failed is named once on stderr; the run goes on without it."""
    if isinstance(event, TrackerFailed):
        err.print(
            f"warning: tracker {event.tracker} failed and is off for this run: "
            f"{terminal_text(event.error)}",
            markup=False,
            soft_wrap=True,
        )


def _described(task_file: Path | None, describe: str | None) -> DescribedTaskSpec | None:
    """The described task of --describe, or of a task file holding a description and
    no data; None for a normal task file."""
    if describe is not None:
        if task_file is not None:
            raise ConfigError("--describe takes no task file: give one or the other")
        return DescribedTaskSpec(description=describe)
    assert task_file is not None
    return read_described_task(task_file) if task_file.is_file() else None


def _prepare_described(
    spec: DescribedTaskSpec,
    *,
    out_dir: Path | None,
    examples: int | None,
    yes: bool,
    optimizer: str | None,
    options: dict[str, Any],
    budget: Budget | None,
    seed: int | None,
    models: dict[Role, str],
    settings: RunSettings,
    quiet: bool,
) -> Plan:
    """Drafts the task (printed, confirmed on a terminal unless --yes), synthesizes its
    data, chooses the optimizer and plans the run."""

    def on_draft(draft: TaskDraft, path: Path, text: str) -> None:
        out.print(f"drafted task ({draft.task_type}), written to {path}:")
        out.print(terminal_text(text.rstrip("\n")), markup=False)
        if (
            not yes
            and sys.stdin.isatty()
            and not typer.confirm("Synthesize the examples and run the optimizer?", default=True)
        ):
            out.print(f"stopped before synthesis; edit {path}, then run this command again")
            raise typer.Exit(1)

    prepared = prepare_spec(
        spec,
        out_dir=out_dir,
        examples=examples,
        models=models,
        settings=settings,
        budget=budget,
        optimizer=optimizer,
        options=options,
        seed=seed,
        on_draft=on_draft,
        on_strategy=lambda choice: out.print(f"optimizer: {terminal_markup(choice.reason)}"),
        emit=None if quiet else _synth_log,
    )
    outcome = prepared.outcome
    for line in outcome.synth.summary():
        out.print(f"synthetic data: {terminal_markup(line)}")
    out.print(f"written to {outcome.task_path.parent}")
    return prepared.plan


def _synth_log(event: Event) -> None:
    """A line on stderr every 10 generations (synthesis can take minutes)."""
    if isinstance(event, SynthProgress) and event.attempts % 10 == 0:
        err.print(
            f"synth: {event.kept}/{event.wanted} kept after {event.attempts} generations "
            f"({event.dropped} dropped)",
            markup=False,
        )


@app.command()
def synth(
    description: Annotated[str, typer.Argument(help="What the task is, in a sentence or two.")],
    n: Annotated[int, typer.Option("--n", help="Examples to synthesize.")] = 40,
    out_dir: Annotated[
        Path | None,
        typer.Option("--out", help="Folder for task.yaml, train.jsonl, dev.jsonl."),
    ] = None,
    optimizer_model: Annotated[
        str | None,
        typer.Option(
            help="The model that drafts and writes: embedded[:PATH], openai:MODEL[@URL] "
            "or litellm:MODEL[@URL]."
        ),
    ] = None,
    budget: Annotated[
        str | None,
        typer.Option(help="Limits, e.g. optimizer_calls=100,minutes=5 (default: 3 calls/example)."),
    ] = None,
    seed: Annotated[
        int, typer.Option(help="Random seed (same seed: same data, from the cache).")
    ] = 0,
    check_labels: Annotated[
        bool,
        typer.Option("--check-labels", help="Also ask the model to classify each kept input."),
    ] = False,
    drop_disagreeing: Annotated[
        bool,
        typer.Option(
            "--drop-disagreeing",
            help="Check the labels as --check-labels does, and drop the inputs the model "
            "labels differently.",
        ),
    ] = False,
    cache_dir: CacheDir = DEFAULT_CACHE_DIR,
    no_cache: NoCache = False,
    refresh_cache: RefreshCache = False,
    quiet: Quiet = False,
) -> None:
    """Draft a task from a description and synthesize its examples (train and dev)."""
    settings = _settings(DEFAULT_RUNS_DIR, cache_dir, no_cache, refresh_cache, quiet)
    outcome = synth_task(
        description,
        out_dir=out_dir,
        n=n,
        models=merge_models(None, _models(None, optimizer_model, None)),
        settings=settings,
        budget=Budget.parse(budget) if budget else None,
        seed=seed,
        check_labels="drop" if drop_disagreeing else "record" if check_labels else "off",
        emit=None if quiet else _synth_log,
    )
    draft = outcome.draft
    labels = f": {', '.join(draft.labels)}" if draft.labels else ""
    out.print(
        f"task: {terminal_markup(draft.name)} ({terminal_markup(draft.task_type)}"
        f"{terminal_markup(labels)})"
    )
    for note in draft.notes:
        out.print(f"  repaired: {terminal_markup(note)}")
    for line in outcome.synth.summary():
        out.print(terminal_markup(line))
    usage = outcome.usage
    out.print(
        f"optimizer model: {int(usage['calls'])} calls, {int(usage['cache_hits'])} from cache"
    )
    files = ", ".join(p.name for p in outcome.synth.files.values())
    out.print(f"written to {outcome.task_path.parent}: task.yaml, {files}")


def _plan(task_file: Path, **overrides: Any) -> Plan:
    """Loads and validates a task; errors found while validating name the task file."""
    task = load_task(task_file)
    try:
        return plan(task, **overrides)
    except ConfigError as e:
        raise ConfigError(f"{task_file}: {e}", key=e.key) from None
    except TemplateError as e:
        raise TemplateError(f"{task_file}: {e}") from None


def _resume_hint(command: str, run_dir: Path, runs_dir: Path) -> str:
    """The command that continues the run in `run_dir`: by its id when it is in
    `runs_dir` (with --runs-dir when that is not the default), else by its path."""
    if run_dir.parent.resolve() != runs_dir.resolve():
        return f"promptascent {command} --resume {run_dir}"
    flag = "" if runs_dir == DEFAULT_RUNS_DIR else f" --runs-dir {runs_dir}"
    return f"promptascent {command} --resume {run_dir.name}{flag}"


def _interruptible(
    run_dir: Path,
    runs_dir: Path,
    work: Callable[[], T],
    *,
    command: str = "optimize",
    kept: str = "every finished call",
    new: bool = False,
) -> T:
    """Runs `work` on the run in `run_dir`; on Ctrl-C says how to continue it
    (`command --resume`), then exits 130; a full disk's error gets the same command.
    For a `new` run (made by `work`), a stop before its store was there says that
    there is nothing to resume."""
    run_id = run_dir.name
    try:
        return work()
    except StorageError as e:
        if e.resumable and (run_dir / FILENAME).is_file():
            hint = _resume_hint(command, run_dir, runs_dir)
            raise StorageError(f"{e}: {hint}", resumable=True) from e
        raise
    except KeyboardInterrupt:
        if new and not (run_dir / FILENAME).is_file():
            err.print(
                f"interrupted before run {run_id} was stored: nothing to resume", markup=False
            )
        else:
            err.print(
                f"interrupted: run {run_id} keeps {kept}; continue it with\n"
                f"  {_resume_hint(command, run_dir, runs_dir)}",
                markup=False,
                soft_wrap=True,  # a command to copy: never broken across lines
            )
        sys.exit(130)


def _print_estimate(e: RunEstimate) -> None:
    table = Table(title="estimate (upper bounds; nothing was spent)")
    for col in ("phase", "calls", "prompt tokens", "max completion tokens", "max $"):
        table.add_column(col, justify="right")
    for name, row in e.phases().items():
        table.add_row(
            name if name != "test" else "test (after search)",
            str(row.calls),
            str(row.prompt_tokens),
            str(row.max_completion_tokens),
            f"{row.max_dollars:.4f}",
        )
    out.print(table)
    if e.tokenizers:
        counted = "; ".join(f"{role}: {name}" for role, name in e.tokenizers.items())
        out.print(f"tokens counted by: {counted}", markup=False, highlight=False)
    if e.prices:
        priced = "; ".join(f"{role}: {quote.describe()}" for role, quote in e.prices.items())
        out.print(f"prices: {priced}", markup=False, highlight=False)
    out.print(f"budget: {e.budget or 'none'}")
    out.print(f"scoring: {terminal_markup(e.scoring)}")


@app.command("eval")
def eval_(
    task_file: Annotated[Path, typer.Argument(help="The task YAML file.")],
    prompt: Annotated[
        Path | None,
        typer.Option(
            "--prompt",
            help="Prompt file: text (an instruction template) or JSON (an exported "
            "prompt). Default: the task's seed prompt.",
        ),
    ] = None,
    split: Annotated[str, typer.Option(help="train, dev or test.")] = "test",
    scoring: Scoring = None,
    task_model: Annotated[
        str | None,
        typer.Option(
            help="Task model: embedded[:PATH], openai:MODEL[@URL] or litellm:MODEL[@URL]."
        ),
    ] = None,
    runs_dir: RunsDir = DEFAULT_RUNS_DIR,
    cache_dir: CacheDir = DEFAULT_CACHE_DIR,
    no_cache: NoCache = False,
    refresh_cache: RefreshCache = False,
    quiet: Quiet = False,
) -> None:
    """Score one prompt on a split of the task's data."""
    from promptascent.evaluate import evaluate_prompt, read_prompt_file

    settings = _settings(runs_dir, cache_dir, no_cache, refresh_cache, quiet)
    p = _plan(task_file, models=_models(task_model, None, None), scoring=scoring)
    the_prompt = read_prompt_file(prompt) if prompt else p.seed_prompt
    res, usage = _with_progress(
        settings, quiet, lambda: evaluate_prompt(p, the_prompt, split, settings)
    )
    ci = res.ci()
    loss = "" if res.mean_loss is None else f" loss={fmt(res.mean_loss)}"
    out.print(
        f"{split}: {fmt(res.mean)}  95% CI [{fmt(ci.low)}, {fmt(ci.high)}]  n={res.n} "
        f"unparsed={res.unparsed} errors={res.errors}{loss}  (prompt {res.prompt_id})"
    )
    preds = ", ".join(f"{terminal_markup(k)}: {v}" for k, v in res.predictions().most_common(5))
    out.print(f"predictions: {preds}")
    out.print(
        f"task model: {int(usage['task']['calls'])} calls, "
        f"{int(usage['task']['cache_hits'])} from cache"
    )


@app.command()
def refine(
    run: Annotated[str, typer.Argument(help="The run to refine (id, unique prefix or folder).")],
    feedback: Annotated[
        list[str],
        typer.Option(
            help='What is wrong with the outputs, e.g. "answers are too long" (repeatable).'
        ),
    ] = [],  # noqa: B006
    candidate: Annotated[
        str | None, typer.Option(help="Start from this candidate's prompt (default: the best).")
    ] = None,
    spans: Annotated[
        bool,
        typer.Option(
            "--spans",
            help="Add the span comments stored with the run on that prompt and its outputs "
            "(made in `promptascent serve`).",
        ),
    ] = False,
    optimizer: Annotated[
        str | None, typer.Option("--optimizer", "-o", help="Optimizer (default: the run's).")
    ] = None,
    option: Annotated[
        list[str], typer.Option("--option", help="Optimizer option KEY=VALUE (repeatable).")
    ] = [],  # noqa: B006
    budget: Annotated[
        str | None, typer.Option(help="Limits for the new run (default: the run's).")
    ] = None,
    run_id: Annotated[
        str | None,
        typer.Option(help="Name of the new run's folder (default: time-task-optimizer)."),
    ] = None,
    runs_dir: RunsDir = DEFAULT_RUNS_DIR,
    cache_dir: CacheDir = DEFAULT_CACHE_DIR,
    no_cache: NoCache = False,
    refresh_cache: RefreshCache = False,
    quiet: Quiet = False,
    track: Track = [],  # noqa: B006
) -> None:
    """Continue a finished run from its best prompt (or a candidate's), with your
    comments as requirements."""
    from promptascent.refinement import refine as refine_run

    settings = _settings(runs_dir, cache_dir, no_cache, refresh_cache, quiet)
    _track(settings, track)
    run_dir = _resolve_run(run, runs_dir)
    result = _with_progress(
        settings,
        quiet,
        lambda: refine_run(
            run_dir,
            feedback,
            candidate=candidate,
            spans=spans,
            optimizer=optimizer,
            options=_options(option),
            budget=Budget.parse(budget) if budget else None,
            settings=settings,
            run_id=run_id,
        ),
    )
    print_result(out, result.to_dict())


@app.command("compare")
def compare_(
    task_file: Annotated[Path, typer.Argument(help="The task YAML file.")],
    optimizers: Annotated[
        str, typer.Option(help="Comma-separated optimizer names, e.g. ape,opro,random.")
    ],
    option: Annotated[
        list[str],
        typer.Option("--option", help="OPTIMIZER.OPTION=VALUE for one optimizer (repeatable)."),
    ] = [],  # noqa: B006
    budget: Annotated[
        str | None, typer.Option(help="The same limits for every optimizer, e.g. task_calls=600.")
    ] = None,
    seeds: Annotated[
        str, typer.Option(help="Comma-separated seeds; each optimizer runs once per seed.")
    ] = "0",
    task_model: Annotated[str | None, typer.Option(help="Task model (overrides the file).")] = None,
    optimizer_model: Annotated[str | None, typer.Option(help="Optimizer model.")] = None,
    judge_model: Annotated[str | None, typer.Option(help="Judge model.")] = None,
    length_penalty: Annotated[
        float | None,
        typer.Option(help="Maximise score - L * prompt tokens / seed tokens, e.g. 0.05."),
    ] = None,
    scoring: Scoring = None,
    runs_dir: RunsDir = DEFAULT_RUNS_DIR,
    cache_dir: CacheDir = DEFAULT_CACHE_DIR,
    no_cache: NoCache = False,
    refresh_cache: RefreshCache = False,
    quiet: Quiet = False,
    track: Track = [],  # noqa: B006
) -> None:
    """Run several optimizers with the same budget, seed and splits; compare them on test."""
    from promptascent.compare import compare, split_options

    settings = _settings(runs_dir, cache_dir, no_cache, refresh_cache, quiet)
    _track(settings, track)
    names = [n.strip() for n in optimizers.split(",") if n.strip()]
    try:
        seed_list = [int(x) for x in seeds.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"--seeds {seeds!r}: expected comma-separated integers") from None
    task = load_task(task_file)
    models = _models(task_model, optimizer_model, judge_model)
    if models or length_penalty is not None or scoring is not None:
        task = plan(task, models=models, length_penalty=length_penalty, scoring=scoring).task
    comparison = _with_progress(
        settings,
        quiet,
        lambda: compare(
            task,
            names,
            budget=Budget.parse(budget) if budget else None,
            seeds=seed_list,
            options=split_options(_options(option), names),
            settings=settings,
        ),
    )
    table = Table(title=f"{task.name}: test split, same budget and splits for every optimizer")
    for col in ("optimizer", "seed", "seed prompt", "best", "best - seed [CI]", "task calls",
                "opt calls", "tokens", "wall s", "status"):  # fmt: skip
        table.add_column(col)
    for row in comparison.to_dict()["rows"]:
        base, best, diff = row["test_seed"], row["test_best"], row["difference"]
        table.add_row(
            row["optimizer"],
            str(row["seed"]),
            fmt(base["mean"]) if base else "-",
            f"{fmt(best['mean'])} [{fmt(best['ci_low'])}, {fmt(best['ci_high'])}]" if best else "-",
            f"{diff['mean']:+.3f} [{diff['ci_low']:+.3f}, {diff['ci_high']:+.3f}]" if diff else "-",
            str(int(row["task_calls"])),
            str(int(row["optimizer_calls"])),
            str(int(row["task_tokens"] + row["optimizer_tokens"])),
            f"{row['wall_seconds']:.0f}",
            row["status"],
        )
    out.print(table)
    for scoring in dict.fromkeys(row["scoring"] for row in comparison.to_dict()["rows"]):
        out.print(f"scoring: {terminal_markup(scoring)}")
    out.print(f"written to {comparison.folder}")


@app.command()
def prefer(
    task_file: Annotated[
        Path | None, typer.Argument(help="The task YAML file (not with --resume).")
    ] = None,
    run: Annotated[
        str | None,
        typer.Option(help="Compare the best candidates of this run (id, prefix or folder)."),
    ] = None,
    candidates: Annotated[
        int,
        typer.Option(help="Candidates to compare: the run's best, or the seed and paraphrases."),
    ] = 4,
    rounds: Annotated[
        int | None, typer.Option(help="Duels in all, skips included (default 20).")
    ] = None,
    resume: Annotated[
        str | None, typer.Option(help="Continue a preference run (id, unique prefix or folder).")
    ] = None,
    run_id: Annotated[
        str | None, typer.Option(help="Name of the run folder (default: time-task-prefer).")
    ] = None,
    runs_dir: RunsDir = DEFAULT_RUNS_DIR,
    cache_dir: CacheDir = DEFAULT_CACHE_DIR,
    no_cache: NoCache = False,
) -> None:
    """Compare the outputs of two prompts at a time and keep the better one: a
    dueling bandit picks the pairs, and the prompts are ranked by their win records."""
    from promptascent.cli.prefer_ui import TerminalChooser, print_ranking
    from promptascent.preference.session import KIND, resume_preferences, start_preferences

    settings = _settings(runs_dir, cache_dir, no_cache, False, True)
    ui = Console(highlight=False)
    kept = "every verdict given"
    if resume is not None:
        if task_file is not None or run is not None:
            raise ConfigError("--resume takes no task file and no --run: the run has its own")
        run_dir = _resolve_run(resume, runs_dir)
        store = RunStore.open_existing(run_dir)
        try:
            config = store.get("prefer_config") or {}
            total = int(rounds or config.get("rounds") or 0)
        finally:
            store.close()
        chooser = TerminalChooser(ui, total)
        result = _interruptible(
            run_dir,
            runs_dir,
            lambda: resume_preferences(run_dir, chooser, rounds=rounds, settings=settings),
            command="prefer",
            kept=kept,
        )
    else:
        if task_file is None:
            raise ConfigError("prefer needs a task file (or --resume RUN)")
        task = load_task(task_file)
        from_run = _resolve_run(run, runs_dir) if run is not None else None
        total = 20 if rounds is None else rounds  # --rounds 0 is an error, not the default
        new_id = run_id or new_run_id(task.name, KIND)
        try:
            result = _interruptible(
                runs_dir / new_id,
                runs_dir,
                lambda: start_preferences(
                    task,
                    TerminalChooser(ui, total),
                    from_run=from_run,
                    candidates=candidates,
                    rounds=total,
                    settings=settings,
                    run_id=new_id,
                ),
                command="prefer",
                kept=kept,
                new=True,
            )
        except ConfigError as e:
            raise ConfigError(f"{task_file}: {e}", key=e.key) from None
        except TemplateError as e:
            raise TemplateError(f"{task_file}: {e}") from None
    print_ranking(ui, result, _resume_hint("prefer", result.run_dir, runs_dir))


@app.command()
def serve(
    host: Annotated[
        str, typer.Option(help="Address to bind (default 127.0.0.1: this machine only).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8765,
    runs_dir: RunsDir = DEFAULT_RUNS_DIR,
    cache_dir: CacheDir = DEFAULT_CACHE_DIR,
) -> None:
    """A local web app: runs and compares, start, follow and stop runs, rank outputs by
    preference, comment on spans and refine (docs/web.md). Prints a token that every
    change needs."""
    from promptascent.web.server import serve as run_server

    def announce(line: str) -> None:
        out.print(line, markup=False, highlight=False, soft_wrap=True)
        out.file.flush()

    try:
        run_server(runs_dir, cache_dir, host=host, port=port, announce=announce)
    except KeyboardInterrupt:  # uvicorn hands the signal on once it has shut down
        err.print("server stopped; the runs it was running are interrupted and can be resumed")
        sys.exit(130)


def _resolve_run(run: str, runs_dir: Path) -> Path:
    direct = Path(run)
    if (direct / FILENAME).is_file():
        return direct
    if (runs_dir / run / FILENAME).is_file():
        return runs_dir / run
    matches = (
        sorted(d for d in runs_dir.glob(f"{run}*") if (d / FILENAME).is_file())
        if runs_dir.is_dir()
        else []
    )
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise ConfigError(
            f"run {run!r} is ambiguous in {runs_dir}: {', '.join(m.name for m in matches[:5])}"
        )
    raise ConfigError(f"no run {run!r} in {runs_dir} (see `promptascent runs`)")


@app.command()
def runs(runs_dir: RunsDir = DEFAULT_RUNS_DIR) -> None:
    """List the runs in the runs folder, newest last."""
    folders = (
        sorted(d for d in runs_dir.glob("*") if (d / FILENAME).is_file())
        if runs_dir.is_dir()
        else []
    )
    if not folders:
        out.print(f"no runs in {runs_dir}")
        return
    table = Table()
    for col in ("run", "status", "seed (test)", "best (test)", "difference [95% CI]"):
        table.add_column(col)
    for d in folders:
        try:
            store = RunStore.open_existing(d)
        except StorageError:  # one damaged store does not hide the others
            table.add_row(d.name, "unreadable (see `promptascent show`)", "-", "-", "-")
            continue
        try:
            status, result = current_status(d, store.get("status", "?")), store.get("result")
        finally:
            store.close()
        if result and result["test"]["seed"]:
            t = result["test"]
            diff = t["difference"]
            table.add_row(
                d.name,
                status,
                fmt(t["seed"]["mean"]),
                fmt(t["best"]["mean"]),
                f"{diff['mean']:+.3f} [{diff['ci_low']:+.3f}, {diff['ci_high']:+.3f}]",
            )
        else:
            table.add_row(d.name, status, "-", "-", "-")
    out.print(table)


@app.command()
def show(
    run: Annotated[str, typer.Argument(help="Run id, unique prefix, or folder.")],
    runs_dir: RunsDir = DEFAULT_RUNS_DIR,
) -> None:
    """Show a run: result, and every candidate with its lineage and scores."""
    run_dir = _resolve_run(run, runs_dir)
    store = RunStore.open_existing(run_dir)
    try:
        result, status, candidates = store.get("result"), store.get("status"), store.candidates()
        preference_run = store.get(PREFER_CONFIG) is not None
    finally:
        store.close()
    status = current_status(run_dir, str(status))
    if result:
        print_result(out, result)
    elif preference_run:
        out.print(f"preference run, status: {status}")
    else:
        out.print(f"status: {status} (no result recorded)")
        if status == "interrupted":
            out.print(f"continue it with: promptascent optimize --resume {run_dir.name}")
    table = Table(title=f"{len(candidates)} candidates")
    for col in ("id", "step", "operation", "parents", "scores", "instruction"):
        table.add_column(col, overflow="fold")
    for c in candidates:
        scores = ", ".join(f"{k} {fmt(v['mean'])} (n={v['n']})" for k, v in c["scores"].items())
        table.add_row(
            c["id"],
            str(c["step"]),
            c["operation"] + (f": {terminal_markup(c['note'][:120])}" if c.get("note") else ""),
            ",".join(c["parents"]),
            scores,
            terminal_markup(c["prompt"]["instruction"][:200]),
        )
    out.print(table)
    _print_win_record(run, runs_dir)


@app.command()
def report(
    target: Annotated[
        str,
        typer.Argument(help="A run (id, unique prefix or folder) or a compare folder."),
    ],
    out_dir: Annotated[
        Path | None,
        typer.Option(
            "--out", help="Folder for report.html and report.md (default: the run's folder)."
        ),
    ] = None,
    runs_dir: RunsDir = DEFAULT_RUNS_DIR,
) -> None:
    """Write a run's report (one self-contained HTML page and a Markdown summary), or a
    comparison's compare page: see docs/report.md."""
    from promptascent.report import compare_report, run_report

    compare_dir = _compare_folder(target, runs_dir)
    folder = compare_dir or _resolve_run(target, runs_dir)
    written = compare_report(folder) if compare_dir else run_report(folder)
    html, md = written.write(out_dir or folder)
    if written.partial:
        out.print(
            "partial report: the run has not ended; it shows what was recorded so far",
            markup=False,
        )
    out.print(f"report written to {html} and {md}", markup=False)


def _compare_folder(target: str, runs_dir: Path) -> Path | None:
    """The compare folder `target` names (a folder holding compare.json, by path, by
    name in `runs_dir`, or by a unique prefix of a compare-... name), or None."""
    from promptascent.report.compare_page import FILENAME as COMPARE_FILE

    for folder in (Path(target), runs_dir / target):
        if (folder / COMPARE_FILE).is_file():
            return folder
    if not target.startswith("compare-") or not runs_dir.is_dir():
        return None
    matches = sorted(d for d in runs_dir.glob(f"{target}*") if (d / COMPARE_FILE).is_file())
    if len(matches) > 1:
        raise ConfigError(
            f"compare {target!r} is ambiguous in {runs_dir}: "
            + ", ".join(m.name for m in matches[:5])
        )
    return matches[0] if matches else None


def _print_win_record(run: str, runs_dir: Path) -> None:
    """A preference run's ranking with win records (nothing for other runs)."""
    from promptascent.preference.loop import standings

    store = RunStore.open_existing(_resolve_run(run, runs_dir))
    try:
        ids = [c["id"] for c in store.candidates()]
        records = [Record.from_dict(r) for r in store.preferences()]
    finally:
        store.close()
    if not records or len(ids) < 2:
        return
    judged = sum(1 for r in records if r.judged)
    table = Table(title=f"win record: {judged} judged duels, {len(records) - judged} skipped")
    for col in ("rank", "candidate", "won-lost-tied", "win rate", "strength"):
        table.add_column(col)
    for rank, s in enumerate(standings(ids, records), 1):
        rate = "-" if s.win_rate is None else f"{s.win_rate:.2f}"
        table.add_row(str(rank), s.candidate_id, s.record_text(), rate, f"{s.strength:+.2f}")
    out.print(table)


@app.command()
def export(
    run: Annotated[str, typer.Argument(help="Run id, unique prefix, or folder.")],
    format: Annotated[
        str,
        typer.Option(
            "--format",
            "-f",
            help="text | messages | json | promptfoo | langchain | dspy | registry",
        ),
    ] = "text",
    candidate: Annotated[
        str | None, typer.Option(help="A candidate id instead of the best.")
    ] = None,
    runs_dir: RunsDir = DEFAULT_RUNS_DIR,
) -> None:
    """Print the best prompt exactly as it was scored, or in another tool's format
    (docs/export.md)."""
    check_format(format)
    text = export_run(_resolve_run(run, runs_dir), format, candidate)
    sys.stdout.write(text + "\n")


def main() -> None:
    """Runs the CLI. An error in the input (a PromptascentError, a bad flag or argument,
    a file the OS refuses) is one line on stderr, "error: ...", exit status 2; with
    --debug the traceback is printed first."""
    debug = "--debug" in sys.argv
    if debug:
        sys.argv.remove("--debug")
    try:
        code = app(standalone_mode=False)
    except _CLICK_ERROR as e:
        if type(e).__name__ == "NoArgsIsHelpError":  # no arguments: the help was printed
            sys.exit(2)
        _fail(_click_message(e), debug)
    except typer.Abort:
        sys.exit(130)
    except ConfigError as e:  # named by the flag that set the value, where one did
        _fail(flag_message(_command(sys.argv[1:]), e), debug)
    except PromptascentError as e:
        _fail(str(e), debug)
    except OSError as e:
        where = f"{e.filename}: " if e.filename else ""
        _fail(f"{where}{e.strerror or e}", debug)
    except sqlite3.Error as e:  # one no file-level check recognised: still one line
        _fail(f"SQLite: {e} (add --debug for where)", debug)
    except KeyboardInterrupt:
        err.print(
            "interrupted: finished calls are in the cache, so running again repeats no paid call"
        )
        sys.exit(130)
    if isinstance(code, int) and code:
        sys.exit(code)


def _command(argv: list[str]) -> str | None:
    """The command a command line runs (the CLI has no options before it)."""
    return next((a for a in argv if not a.startswith("-")), None)


def _click_message(e: Exception) -> str:
    """A usage error (unknown flag or command, bad value, missing argument) with the
    command whose --help lists what is accepted."""
    message: str = e.format_message()  # type: ignore[attr-defined]
    ctx = getattr(e, "ctx", None)
    if isinstance(e, _USAGE_ERROR) and ctx is not None:
        message = f"{message} (see: {ctx.command_path} --help)"
    return message


def _fail(message: str, debug: bool) -> None:
    """Prints the error as one line (a traceback first with --debug) and exits."""
    if debug:
        traceback.print_exc()
    # An error may quote data or a server's reply: no escape sequence reaches the terminal.
    one_line = " ".join(
        part.strip() for part in terminal_text(message).splitlines() if part.strip()
    )
    sys.stderr.write(f"error: {one_line}\n")
    sys.stderr.flush()
    sys.exit(2)


if __name__ == "__main__":
    main()
