"""The terminal chooser of `promptascent prefer`: shows a duel, reads one line.

Reads plain lines, so it works on a terminal, through tmux, or from a pipe. Model
outputs and inputs are data: shown as text, never read as rich markup, and without
escape sequences or control characters (cli/terminal.py).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TextIO

from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from promptascent.cli.terminal import terminal_text
from promptascent.preference.duel import Choice, Duel
from promptascent.preference.session import PreferResult

KEYS: dict[str, Choice] = {
    "a": "A",
    "b": "B",
    "t": "tie",
    "tie": "tie",
    "s": "skip",
    "skip": "skip",
    "q": "quit",
    "quit": "quit",
}
PROMPT = "Which output is better? [a] A  [b] B  [t] tie  [s] skip  [q] quit > "
SIDE_BY_SIDE_WIDTH = 100  # narrower terminals show A above B


class TerminalChooser:
    """A `Chooser` for a person at a terminal. End of input (Ctrl-D, a closed pipe)
    and Ctrl-C quit cleanly: what was recorded stays recorded."""

    def __init__(
        self, console: Console, rounds: int, *, readline: Callable[[], str] | None = None
    ) -> None:
        self.console = console
        self.rounds = rounds
        self._readline = readline

    def __call__(self, duel: Duel) -> Choice:
        self.show(duel)
        while True:
            self.console.print(PROMPT, end="", markup=False)
            self.console.file.flush()
            try:
                line = self._read()
            except KeyboardInterrupt:
                self.console.print()
                return "quit"
            if not line:  # end of input
                self.console.print()
                return "quit"
            key = line.strip().lower()
            if key in KEYS:
                return KEYS[key]
            self.console.print(
                f"unknown answer {line.strip()!r}: type a, b, t, s or q, then Enter", markup=False
            )

    def _read(self) -> str:
        if self._readline is not None:
            return self._readline()
        stream: TextIO = sys.stdin
        return stream.readline()

    def show(self, duel: Duel) -> None:
        c = self.console
        c.print()
        c.rule(Text(f"duel {duel.round + 1}/{self.rounds}"))
        c.print(
            Panel(Text(terminal_text(duel.example.input_text)), title="input", title_align="left")
        )
        a = Panel(Text(terminal_text(duel.output_a)), title="A", title_align="left")
        b = Panel(Text(terminal_text(duel.output_b)), title="B", title_align="left")
        if c.width >= SIDE_BY_SIDE_WIDTH:
            grid = Table.grid(expand=True, padding=(0, 1))
            grid.add_column(ratio=1)
            grid.add_column(ratio=1)
            grid.add_row(a, b)
            c.print(grid)
        else:
            c.print(Group(a, b))


def print_ranking(console: Console, result: PreferResult, resume_hint: str) -> None:
    """The ranking with win records, the best prompt, and where the run is stored."""
    table = Table(
        title=f"ranking after {result.judged} judged duels "
        f"({len(result.records) - result.judged} skipped) of {result.rounds}"
    )
    for col in ("rank", "candidate", "won-lost-tied", "win rate", "strength", "instruction"):
        table.add_column(col, overflow="fold")
    for rank, s in enumerate(result.standings, 1):
        rate = "-" if s.win_rate is None else f"{s.win_rate:.2f}"
        instruction = result.candidate(s.candidate_id).prompt.instruction
        table.add_row(
            str(rank),
            s.candidate_id,
            s.record_text(),
            rate,
            f"{s.strength:+.2f}",
            Text(terminal_text(instruction[:200])),
        )
    console.print(table)
    best = result.best
    if not result.judged:
        console.print("no verdicts yet: no best prompt", markup=False)
    else:
        console.print(
            f"best: {best.candidate_id} (won {best.wins}, lost {best.losses}, tied {best.ties})",
            markup=False,
        )
        console.print(Text(terminal_text(result.best_prompt.instruction)))
    ended = {
        "finished": "all rounds recorded",
        "quit": "stopped by you",
        "budget": f"stopped by the budget ({result.stopped_by})",
        "stopped": f"stopped: {terminal_text(result.stopped_by)}",
    }.get(result.status, result.status)
    console.print(f"status: {ended}", markup=False)
    for note in result.notes:
        console.print(f"note: {terminal_text(note)}", markup=False)
    console.print(f"run written to {result.run_dir}", markup=False)
    if result.status != "finished":
        console.print(f"continue with: {resume_hint}", markup=False)
