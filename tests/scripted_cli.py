"""Scripted responders loadable from a task file (`backend: scripted, model:
"scripted_cli:task"`), for tests that drive the CLI in a subprocess. Each call is
appended to $PA_CALL_LOG, so a test can count the calls that were really made
(paid), including those of a process that was killed."""

from __future__ import annotations

import os
import time

from scripted import KEY, optimizer_responder, task_responder

from promptascent.llm.types import CompletionRequest


def _log(role: str) -> None:
    path = os.environ.get("PA_CALL_LOG")
    if path:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"{role}\n".encode())
        finally:
            os.close(fd)


def _wait_at_gate() -> None:
    """While the file named by $PA_GATE exists, an optimizer call waits (at most five
    minutes): a test holds a run in its search this way until it has stopped it."""
    gate = os.environ.get("PA_GATE")
    deadline = time.monotonic() + 300
    while gate and os.path.exists(gate) and time.monotonic() < deadline:
        time.sleep(0.05)


def task(request: CompletionRequest) -> str:
    _log("task")
    time.sleep(float(os.environ.get("PA_CALL_DELAY", "0.002")))
    return task_responder(request)


def optimizer(request: CompletionRequest) -> str:
    _log("optimizer")
    _wait_at_gate()
    time.sleep(float(os.environ.get("PA_CALL_DELAY", "0.002")))
    return optimizer_responder(request)


def reflector(request: CompletionRequest) -> str:
    """An optimizer model for GEPA's reflection and merge, and PromptAgent's feedback
    (read as one reason) and rewrite, that keeps no state (a resumed process must
    answer as the killed one did): the key on one request seed in three, a distinct
    wrong instruction on the others."""
    _log("optimizer")
    time.sleep(float(os.environ.get("PA_CALL_DELAY", "0.002")))
    if request.seed is not None and request.seed % 3 == 0:
        return f"<prompt>{KEY}</prompt>"
    return f"<prompt>Name the animal, variant {request.seed}.</prompt>"
