"""Which flag of which command sets which task-file key or library argument.

Library errors name keys ("evaluation.scoring: ...", ConfigError.key); a person at
the command line set the value with a flag, so the CLI shows the flag instead. One
table for every command: a key a command has no flag for is shown as the library
says it.
"""

from __future__ import annotations

import re

from promptascent.errors import ConfigError

_MODELS = {
    "models.task": "--task-model",
    "models.optimizer": "--optimizer-model",
    "models.judge": "--judge-model",
}

FLAGS: dict[str, dict[str, str]] = {
    "optimize": {
        **_MODELS,
        "budget": "--budget",
        "evaluation.scoring": "--scoring",
        "length_penalty": "--length-penalty",
        "examples": "--examples",
    },
    "synth": {"models.optimizer": "--optimizer-model", "budget": "--budget", "examples": "--n"},
    "eval": {"models.task": "--task-model", "evaluation.scoring": "--scoring", "split": "--split"},
    "refine": {"budget": "--budget", "feedback": "--feedback", "candidate": "--candidate"},
    "compare": {
        **_MODELS,
        "budget": "--budget",
        "evaluation.scoring": "--scoring",
        "length_penalty": "--length-penalty",
        "optimizers": "--optimizers",
        "options": "--option",
    },
    "prefer": {"candidates": "--candidates", "rounds": "--rounds"},
    "serve": {"port": "--port"},
}


def flag_message(command: str | None, error: ConfigError) -> str:
    """The error's message with its key replaced by the flag of `command` that set it
    ("budget.task_calls: ..." -> "--budget task_calls: ..."); unchanged when the error
    names no argument key or the command has no flag for it."""
    message = str(error)
    key = error.key
    if key is None or command is None:
        return message
    # The key opens the message, or follows the task file the CLI put before it.
    found = re.search(rf"(^|: ){re.escape(key)}(?=[:\s])", message)
    if found is None:
        return message
    at = found.end() - len(key)
    flags = FLAGS.get(command, {})
    # the longest key of the table the error's key falls under: budget.task_calls -> budget
    for known in sorted(flags, key=len, reverse=True):
        if key == known or key.startswith(known + "."):
            inner = key[len(known) + 1 :]
            flag = flags[known] + (f" {inner}" if inner else "")
            return message[:at] + flag + message[at + len(key) :]
    return message
