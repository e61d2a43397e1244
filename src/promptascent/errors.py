"""Errors a user can see. Each carries a one-line message naming the problem and where it is."""

from __future__ import annotations


class PromptascentError(Exception):
    """Base of every error promptascent raises on purpose; the CLI prints its message, exit 2."""


class ConfigError(PromptascentError):
    """A task file, flag or option is invalid. The message names the key and the file.

    `key`: set when the bad value was an argument of the call (an override of the task
    file, a count of examples): the task-file key or argument name the message starts
    with ("evaluation.scoring", "budget.task_calls", "examples"). The library never
    names a front end's controls; a front end that set the value under another name
    says its own (the CLI: its flag, cli/flags.py)."""

    def __init__(self, message: str, *, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


class DataError(PromptascentError):
    """A dataset file is missing, empty or malformed. The message names the file and line."""


class TemplateError(PromptascentError):
    """A prompt template names a field the example lacks, or is malformed."""


class MetricError(PromptascentError):
    """A metric cannot score an example (for example, the target it needs is missing)."""


class RunInUse(PromptascentError):
    """Another live process is working on the run folder (store/run_lock.py). Names the
    run and that process."""


class StorageError(PromptascentError):
    """A file promptascent keeps (a run store, a run's journal, a cache) cannot be read or
    written: it is corrupt or truncated, or the disk is full. The message names the file
    and what to do. `resumable`: the file is sound but could not be written (a full
    disk): once that is mended, resuming the run continues it."""

    def __init__(self, message: str, *, resumable: bool = False) -> None:
        super().__init__(message)
        self.resumable = resumable


class BudgetExhausted(PromptascentError):
    """A budget limit would be exceeded by the next model call; the call was not made."""

    def __init__(self, limit: str, used: float, cap: float) -> None:
        super().__init__(f"budget exhausted: {limit} would exceed {cap:g} (used {used:g})")
        self.limit = limit
        self.used = used
        self.cap = cap


class ModelUnavailable(PromptascentError):
    """A model failed on every one of many calls in a row: the run stops cleanly with
    its best-so-far instead of scoring everything as an error. Not a ModelError, so
    no per-example handler swallows it."""

    def __init__(self, role: str, failures: int, last: str) -> None:
        super().__init__(f"the {role} model failed {failures} calls in a row; last error: {last}")
        self.role = role


class ModelError(PromptascentError):
    """A model call failed. Messages name the endpoint, never a key."""

    retryable: bool = False


class ModelTimeout(ModelError):
    retryable = True


class ModelRateLimited(ModelError):
    retryable = True

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ModelServerError(ModelError):
    retryable = True


class ModelConnectionError(ModelError):
    retryable = True


class ModelResponseError(ModelError):
    """The endpoint answered, but not with a usable completion (malformed JSON, no choices)."""

    retryable = True


class ModelRequestError(ModelError):
    """The endpoint rejected the request (4xx other than 429): retrying will not help."""


class ContextOverflow(ModelRequestError):
    """The prompt does not fit the model's context. The example is skipped (counted and
    reported), and it does not count as the model failing."""


class ModelAuthError(ModelRequestError):
    """401/403: the key is missing, wrong or lacks access."""


class NotSupported(PromptascentError):
    """The backend cannot do this (for example, log-likelihood over HTTP)."""
