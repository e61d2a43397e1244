"""Text from data, models and servers reaches the terminal without escape sequences
or control characters, and is never read as rich markup."""

from __future__ import annotations

import io
import re
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from promptascent.cli.prefer_ui import TerminalChooser
from promptascent.cli.progress import ProgressDisplay
from promptascent.cli.summary import print_result
from promptascent.cli.terminal import terminal_markup, terminal_text
from promptascent.data.example import Example
from promptascent.events import ReplyRejected
from promptascent.preference.duel import Duel

# Recolour, clear the screen, set the window title (BEL and ST terminated), a hyperlink,
# cursor up, the 8-bit CSI, a bell, a backspace and a carriage return that would let
# the text overwrite its own line.
HOSTILE = (
    "\x1b[31mred\x1b[0m \x1b[2J\x1b]0;pwned\x07\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\"
    "\x1b[1A\x9b2Jup\x07\x08 over\rwrite [bold]markup[/bold]"
)
CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def plain_console() -> tuple[Console, io.StringIO]:
    buf = io.StringIO()
    return Console(file=buf, width=200, highlight=False, color_system=None), buf


def assert_inert(text: str) -> None:
    assert "\x1b" not in text and not CONTROL.search(text), repr(text)


def test_terminal_text_removes_escape_sequences_and_control_characters() -> None:
    assert terminal_text(HOSTILE) == "red linkup overwrite [bold]markup[/bold]"
    assert (
        terminal_text("tabs\tand\nlines\r\nstay; ünïcode ✓") == "tabs\tand\nlines\nstay; ünïcode ✓"
    )
    assert terminal_text("\x1b]0;unterminated title") == "0;unterminated title"
    assert terminal_text("nul\x00 del\x7f lone esc\x1b") == "nul del lone esc"
    assert terminal_text(42) == "42"
    assert terminal_markup("[bold]x[/bold]\x1b[1m") == "\\[bold]x\\[/bold]"


def hostile_result() -> dict[str, object]:
    run = {"mean": 0.5, "ci_low": 0.1, "ci_high": 0.9, "n": 4, "unparsed": 0, "errors": 0}
    return {
        "run_id": "r",
        "run_dir": "runs/r",
        "status": "stopped",
        "stopped_by": f"the task model failed 8 calls in a row; last error: {HOSTILE}",
        "seed_candidate": "a",
        "best_candidate": "b",
        "best_prompt": {"instruction": f"Answer. {HOSTILE}\n\n{{input}}"},
        "best_lineage": [],
        "selection_split": "dev",
        "selection_scores": {"seed": 0.1, "best": 0.5},
        "test": {
            "seed": run,
            "best": {**run, "predictions": {HOSTILE: 3}},
            "difference": None,
            "majority_rate": 0.5,
        },
        "usage": {},
        "candidates": 2,
        "rejected_replies": 0,
        "notes": [f"data note {HOSTILE}"],
    }


def test_the_run_summary_shows_hostile_text_inert_and_literal() -> None:
    console, buf = plain_console()
    print_result(console, hostile_result())
    out = buf.getvalue()
    assert_inert(out)
    assert out.count("[bold]markup[/bold]") == 4  # prediction, stop reason, note, prompt
    assert "red linkup overwrite" in out


def test_the_preference_duel_shows_hostile_text_inert_and_literal() -> None:
    console, buf = plain_console()
    example = Example("e1", f"input {HOSTILE}", target=None)
    TerminalChooser(console, 3).show(Duel(0, example, "a", "b", f"A {HOSTILE}", f"B {HOSTILE}"))
    out = buf.getvalue()
    assert_inert(out)
    assert out.count("[bold]markup[/bold]") == 3


def test_progress_shows_a_rejected_reply_inert() -> None:
    console, buf = plain_console()
    with ProgressDisplay(console) as display:
        display(ReplyRejected(reason=f"too long: {HOSTILE}", step=1))
    assert_inert(buf.getvalue())
    assert "[bold]markup[/bold]" in buf.getvalue()


@pytest.mark.parametrize("name", ["no\x1b]0;pwned\x07such.yaml", "gone\x1b[2J.yaml"])
def test_an_error_line_quoting_hostile_text_is_inert(tmp_path: Path, name: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "promptascent", "optimize", name, "--dry-run"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2 and "task file not found" in proc.stderr
    assert_inert(proc.stderr.rstrip("\n"))
