"""Live progress: a bar per phase, the best score so far, and the calls and dollars
spent against the budget. The CLI draws it on a terminal; the Python API
(`promptascent.optimize(progress=True)`, the default) on stderr."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from promptascent.cli.terminal import terminal_text
from promptascent.events import (
    BudgetSpent,
    BudgetStopped,
    Event,
    ExampleScored,
    PhaseStarted,
    ReplyRejected,
    StepFinished,
)


class ProgressDisplay:
    """An event sink drawing rich progress bars. Use as a context manager."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("cached {task.fields[cached]}"),
            TimeElapsedColumn(),
            TextColumn("{task.fields[spent]}"),
            TextColumn("{task.fields[best]}"),
            console=console,
        )
        self._task: TaskID | None = None
        self._best = ""
        self._spent = ""
        self._cached = 0

    def __enter__(self) -> ProgressDisplay:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def __call__(self, event: Event) -> None:
        if isinstance(event, PhaseStarted):
            if self._task is not None:
                self.progress.update(self._task, visible=True)
            self._cached = 0
            self._task = self.progress.add_task(
                f"{event.phase:<6}", total=event.total, cached=0, best=self._best, spent=self._spent
            )
        elif isinstance(event, ExampleScored) and self._task is not None:
            self._cached += int(event.cached)
            self.progress.update(self._task, advance=1, cached=self._cached)
        elif isinstance(event, BudgetSpent):
            self._spent = spent_text(event)
            if self._task is not None:
                self.progress.update(self._task, spent=self._spent)
        elif isinstance(event, StepFinished):
            self._best = (
                f"best {event.best_score:.3f} ({event.best_candidate_id}, step {event.step})"
            )
            if self._task is not None:
                self.progress.update(self._task, best=self._best)
        elif isinstance(event, ReplyRejected):
            self.progress.console.print(
                f"optimizer reply rejected: {terminal_text(event.reason)}", markup=False
            )
        elif isinstance(event, BudgetStopped):
            self.progress.console.print(
                f"budget reached ({event.limit}): stopping the search", markup=False
            )


def spent_text(event: BudgetSpent) -> str:
    """What the run has spent against its limits, e.g. "calls 124/600 $0.0120/$1.00":
    every call (cache hits included, as call limits count), the task model's when it
    has a limit of its own, and dollars when any were spent or limited."""
    limits = event.limits
    parts = [f"calls {event.calls}" + (f"/{limits['calls']:g}" if "calls" in limits else "")]
    if "task_calls" in limits:
        parts.append(f"task calls {event.task_calls}/{limits['task_calls']:g}")
    if event.dollars or "dollars" in limits:
        parts.append(
            f"${event.dollars:.4f}" + (f"/${limits['dollars']:.2f}" if "dollars" in limits else "")
        )
    return " ".join(parts)
