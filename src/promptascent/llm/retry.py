"""How a remote backend retries one call: the one retry loop of every HTTP-like backend.

Contracts (what llm/http.py and llm/litellm_backend.py promise):
- An attempt that raises a retryable `ModelError` is retried with capped exponential
  backoff and full jitter (a 429's Retry-After instead, capped), `max_retries` times
  after the first attempt; then the last failure's typed error is raised. A
  non-retryable error is raised at once.
- Retrying stops early, with the last failure's typed error, when the next retry
  would start after the call's deadline (llm/deadline.py) or more than
  `max_retry_seconds` after the call began. The first attempt is always made.
- Before each retry the attempt meter in force reserves that retry's worst case
  (`before_retry`); when it might not fit the budget it raises BudgetExhausted and
  the retry is not made.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from promptascent.errors import ConfigError, ModelError, ModelRateLimited
from promptascent.llm.deadline import current_deadline
from promptascent.llm.metering import AttemptMeter, current_attempt_meter

log = logging.getLogger(__name__)

T = TypeVar("T")


class Retries:
    """The retry policy of one backend; thread-safe (one jitter source under a lock)."""

    def __init__(
        self,
        *,
        max_retries: int = 5,
        backoff_base: float = 0.5,
        backoff_max: float = 30,
        max_retry_seconds: float | None = 120,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if max_retries < 0:
            raise ConfigError(f"max_retries must be >= 0, got {max_retries}")
        if max_retry_seconds is not None and max_retry_seconds < 0:
            raise ConfigError(f"max_retry_seconds must be >= 0, got {max_retry_seconds}")
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.max_retry_seconds = max_retry_seconds
        self._sleep = sleep
        self._rng = random.Random(os.urandom(16))
        self._lock = threading.Lock()

    def run(self, attempt: Callable[[AttemptMeter], T], what: str) -> T:
        """`attempt(meter)` until it returns, as the module docstring says. `what`
        names the call in debug logs (a URL, a model)."""
        meter = current_attempt_meter()
        started = time.monotonic()
        last: ModelError | None = None
        for n in range(self.max_retries + 1):
            if n:
                assert last is not None
                delay = self._delay(n - 1, last)
                ended = self._retry_time_ended(started, delay)
                if ended:
                    raise give_up(last, f"{ended} ended the retries after {n} attempts")
                meter.before_retry()  # a retry that might not fit the budget is not made
                log.debug("retrying %s in %.2fs after: %s", what, delay, last)
                self._sleep(delay)
            try:
                return attempt(meter)
            except ModelError as exc:
                if not exc.retryable:
                    raise
                last = exc
        assert last is not None
        raise give_up(last, f"gave up after {self.max_retries + 1} attempts")

    def _delay(self, retry: int, error: ModelError) -> float:
        """Server's Retry-After when given (capped), else full-jitter backoff."""
        if isinstance(error, ModelRateLimited) and error.retry_after is not None:
            return min(max(error.retry_after, 0.0), self.backoff_max)
        cap = min(self.backoff_max, self.backoff_base * (2**retry))
        with self._lock:
            return self._rng.uniform(0.0, cap)

    def _retry_time_ended(self, started: float, delay: float) -> str | None:
        """Why a retry starting `delay` s from now must not be made, or None."""
        now = time.monotonic()
        deadline = current_deadline()
        if deadline is not None and now + delay >= deadline:
            left = max(deadline - now, 0.0)
            return f"the time budget ({left:.2f}s left, next retry in {delay:.2f}s)"
        limit = self.max_retry_seconds
        if limit is not None and now + delay - started > limit:
            return f"max_retry_seconds={limit:g}"
        return None


def give_up(last: ModelError, why: str) -> ModelError:
    """The last failure's type (and Retry-After) with `why` appended to its message."""
    msg = f"{last} ({why})"
    error = (
        ModelRateLimited(msg, retry_after=last.retry_after)
        if isinstance(last, ModelRateLimited)
        else type(last)(msg)
    )
    error.__cause__ = last
    return error
