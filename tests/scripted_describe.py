"""Scripted models for the describe pipeline (intent analysis, synthesis, the run),
loadable from the CLI as `scripted:scripted_describe:optimizer` and
`scripted:scripted_describe:task`. Each call is appended to $PA_CALL_LOG when set,
so a test can count the calls that were really made."""

from __future__ import annotations

import os
import random
import re
import subprocess
import sys
from pathlib import Path

from promptascent.llm.types import CompletionRequest

INTENT_REPLY = (
    "name: Ticket urgency\n"
    "type: classification\n"
    "labels: low, medium, high\n"
    "input: support ticket\n"
    "output: one label\n"
    "prompt: Read the support ticket and decide how urgent it is."
)
# The word that marks a ticket's urgency, so the scripted task model can be right.
MARK = {"low": "minor", "medium": "annoying", "high": "critical"}
OPENINGS = ("Hello team,", "Hi,", "Urgent note:", "Good morning.", "Quick question:", "Dear IT,")
THINGS = (
    "printer", "laptop", "invoice portal", "VPN client", "badge reader", "monitor",
    "database", "website", "password reset", "phone line", "shared drive", "calendar",
)  # fmt: skip
VERBS = (
    "stopped working", "shows an error code", "is very slow", "keeps restarting",
    "lost all settings", "refuses my login", "prints blank pages", "freezes at noon",
)  # fmt: skip
TAILS = (
    "since Monday.", "after the update.", "for the whole floor.", "only for me.",
    "during every meeting.", "when I travel.", "on the new build.", "since last night.",
)  # fmt: skip


def _log(role: str) -> None:
    path = os.environ.get("PA_CALL_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(f"{role}\n")


def ticket(label: str | None, seed: int | None) -> str:
    rnd = random.Random(seed)
    mark = MARK.get(label or "", "odd")
    return (
        f"{rnd.choice(OPENINGS)} a {mark} issue: the {rnd.choice(THINGS)} "
        f"{rnd.choice(VERBS)} {rnd.choice(TAILS)}"
    )


def optimizer_responder(request: CompletionRequest) -> str:
    text = request.messages[-1].content
    if "Describe this task" in text:
        return INTENT_REPLY
    if "Write one new" in text:
        m = re.search(r'right answer is "([^"]+)"', text)
        return f"<input>{ticket(m.group(1) if m else None, request.seed)}</input>"
    if "Which answer is right" in text:
        return task_responder(request, formatted=True)
    return "<prompt>Decide how urgent the ticket is.</prompt>"


def task_responder(request: CompletionRequest, *, formatted: bool = False) -> str:
    """Names the label of the ticket's urgency word when told which answers are
    allowed; rambles otherwise."""
    text = request.messages[-1].content
    if formatted or "Answer with exactly one of" in text:
        for label, mark in MARK.items():
            if f" {mark} " in text:
                return label
        return "medium"
    return "This ticket seems to need some attention."


def optimizer(request: CompletionRequest) -> str:
    _log("optimizer")
    return optimizer_responder(request)


def task(request: CompletionRequest) -> str:
    _log("task")
    return task_responder(request)


def garbage(request: CompletionRequest) -> str:
    _log("optimizer")
    return ""


DISPUTED = "invoice portal"


def contrarian(request: CompletionRequest) -> str:
    """The optimizer model, except that its label check names another label for a
    ticket about the DISPUTED thing (logged as "disagree" too)."""
    _log("optimizer")
    text = request.messages[-1].content
    if "Which answer is right" in text and DISPUTED in text:
        _log("disagree")
        right = task_responder(request, formatted=True)
        labels = list(MARK)
        return labels[(labels.index(right) + 1) % len(labels)]
    return optimizer_responder(request)


def run_cli(
    *args: str, cwd: Path, log: Path | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """`python -m promptascent ARGS` in `cwd`, with this folder importable (the
    scripted models) and every model call logged to `log`."""
    tests = Path(__file__).resolve().parent
    env = {
        **os.environ,
        "COLUMNS": "200",
        "PYTHONPATH": os.pathsep.join([str(tests), os.environ.get("PYTHONPATH", "")]),
    }
    if log is not None:
        env["PA_CALL_LOG"] = str(log)
    proc = subprocess.run(
        [sys.executable, "-m", "promptascent", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


TICKETS = "Classify support tickets by urgency: low, medium or high"
OPT = "scripted:scripted_describe:optimizer"
TASK = "scripted:scripted_describe:task"
# A task file holding a description (and the scripted models) instead of data.
DESCRIBED_TASK_FILE = (
    f"description: '{TICKETS}'\n"
    f"models: {{task: '{TASK}', optimizer: '{OPT}', judge: '{TASK}'}}\n"
    "budget: {task_calls: 200}\n"
    "optimizer: {name: random}\n"
    "examples: 12\n"
    "out: gen\n"
)
