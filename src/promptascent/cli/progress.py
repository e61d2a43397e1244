"""Live progress on a terminal: a bar per phase and the best score so far."""

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
            TextColumn("{task.fields[best]}"),
            console=console,
        )
        self._task: TaskID | None = None
        self._best = ""
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
                f"{event.phase:<6}", total=event.total, cached=0, best=self._best
            )
        elif isinstance(event, ExampleScored) and self._task is not None:
            self._cached += int(event.cached)
            self.progress.update(self._task, advance=1, cached=self._cached)
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
