"""A per-call deadline that backends check while retrying.

The `LLM.complete(request)` signature is fixed, so the deadline travels beside the
call in a context variable (each thread has its own context, so concurrent calls on
worker threads do not see each other's deadlines):

    with call_deadline(seconds_left):
        backend.complete(request)

Nested deadlines never extend an outer one: the earliest wins. `None` means no
deadline (the block is still entered, any outer deadline still applies).
Times are `time.monotonic()` seconds.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from contextvars import ContextVar

_DEADLINE: ContextVar[float | None] = ContextVar("promptascent_call_deadline", default=None)


@contextlib.contextmanager
def call_deadline(seconds_from_now: float | None) -> Iterator[float | None]:
    """Sets the deadline to `seconds_from_now` from now (clamped at 0) for the block;
    yields the effective absolute deadline (monotonic), or None if there is none."""
    outer = _DEADLINE.get()
    if seconds_from_now is None:
        effective = outer
    else:
        mine = time.monotonic() + max(seconds_from_now, 0.0)
        effective = mine if outer is None else min(outer, mine)
    token = _DEADLINE.set(effective)
    try:
        yield effective
    finally:
        _DEADLINE.reset(token)


def current_deadline() -> float | None:
    """The absolute deadline (`time.monotonic()` seconds) in force, or None."""
    return _DEADLINE.get()


def time_left() -> float | None:
    """Seconds until the deadline in force (negative once passed), or None."""
    deadline = _DEADLINE.get()
    return None if deadline is None else deadline - time.monotonic()
