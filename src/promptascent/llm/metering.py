"""What one logical model call pays: its reservation and every attempt that may be billed.

A backend that makes several attempts for one call (the HTTP backend retries)
reports them to the attempt meter in force. The meter travels beside the call in a
context variable, as the deadline does (llm/deadline.py), because the
`LLM.complete(request)` signature is fixed:

    meter = current_attempt_meter()
    for attempt in range(tries):
        if attempt:
            meter.before_retry()          # may raise BudgetExhausted: no retry is made
        ...
        meter.charge_failed(None, "timeout")  # billable, no usable reply, usage unknown

A backend charges only the attempts that gave no usable reply; the attempt that gave
the reply is returned, and the caller charges it (`PaidCall.charge_reply`). Refusals
that a provider does not bill (an HTTP error status) are not charged. Without a
meter in force (a backend used on its own) reports go nowhere.

`PaidCall` is the meter `ModelClient` puts in force: the call's reservation against
the budget, the run's journal and the usage meter, for any kind of call (a
completion, a log-likelihood request).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol

from promptascent.llm.budget import BudgetGuard, Reservation
from promptascent.llm.types import Completion, LoglikResult, Message, Role, TokenUsage
from promptascent.llm.usage import Prices, UsageMeter

# A reported prompt beyond the request's UTF-8 bytes plus this much is an anomaly: no
# tokenizer makes more tokens than bytes (byte-level BPE; byte fallback), and a chat
# template adds a few markers per message and perhaps a default system prompt.
TEMPLATE_ALLOWANCE_PER_MESSAGE = 64
TEMPLATE_ALLOWANCE_PER_REQUEST = 256


class AttemptMeter(Protocol):
    """Where a backend reports the attempts of the call in progress."""

    def before_retry(self) -> None:
        """Reserves the worst case of one more attempt; raises BudgetExhausted (the
        retry must then not be made) when it might not fit the token or dollar limits."""
        ...

    def charge_failed(self, usage: TokenUsage | None, outcome: str) -> None:
        """Charges an attempt that may have been billed and gave no usable reply:
        `usage` as the server reported it, or None when unknown (charged at the call's
        worst case). `outcome` says what happened ("timeout", "unusable reply")."""
        ...


class _NoMeter:
    def before_retry(self) -> None:
        pass

    def charge_failed(self, usage: TokenUsage | None, outcome: str) -> None:
        pass


_NO_METER = _NoMeter()
_METER: ContextVar[AttemptMeter | None] = ContextVar("promptascent_attempt_meter", default=None)


@contextlib.contextmanager
def attempt_meter(meter: AttemptMeter) -> Iterator[AttemptMeter]:
    """Puts `meter` in force for the block (this thread's context only)."""
    token = _METER.set(meter)
    try:
        yield meter
    finally:
        _METER.reset(token)


def current_attempt_meter() -> AttemptMeter:
    """The meter in force; one that ignores every report when there is none."""
    return _METER.get() or _NO_METER


@dataclass(frozen=True)
class UsageLimits:
    """What a request allows: usage reported beyond it is an anomaly (still metered as
    reported: the money may really be gone, and the next reservation sees it)."""

    prompt_tokens: int
    completion_tokens: int

    @classmethod
    def of(
        cls, messages: Sequence[Message], max_tokens: int, *, extra: Sequence[str] = ()
    ) -> UsageLimits:
        """Limits of a request of `messages` (plus `extra` prompt texts, such as the
        continuations a likelihood call scores) generating up to `max_tokens`."""
        texts = [m.content for m in messages] + list(extra)
        text_bytes = sum(len(t.encode("utf-8", "surrogatepass")) for t in texts)
        ceiling = (
            text_bytes
            + TEMPLATE_ALLOWANCE_PER_MESSAGE * len(messages)
            + TEMPLATE_ALLOWANCE_PER_REQUEST
        )
        return cls(ceiling, max_tokens)

    def anomaly(self, usage: TokenUsage) -> str | None:
        """Why `usage` is beyond these limits, or None."""
        problems = []
        if usage.completion_tokens > self.completion_tokens:
            problems.append(
                f"{usage.completion_tokens} completion tokens for max_tokens "
                f"{self.completion_tokens}"
            )
        if usage.prompt_tokens > self.prompt_tokens:
            problems.append(
                f"{usage.prompt_tokens} prompt tokens for a prompt of at most {self.prompt_tokens}"
            )
        return "; ".join(problems) or None


@dataclass(frozen=True)
class Attempt:
    """One paid attempt, as the journal records it. `outcome` is "reply" or what went
    wrong; `estimated`: the usage is the call's worst case, the server said nothing."""

    key: str
    role: Role
    outcome: str
    usage: TokenUsage
    dollars: float
    estimated: bool = False
    anomaly: str | None = None


REPLY = "reply"


class AttemptLog(Protocol):
    """Where each paid attempt is written before it is metered: the run's journal
    (llm/journal.py, which imports this module: a protocol keeps the import one way)."""

    def record_attempt(
        self, attempt: Attempt, *, reply: tuple[str, Completion | LoglikResult] | None = None
    ) -> None: ...


class PaidCall:
    """One logical call's money: reserved on entry (one call, `worst` tokens and their
    price; raises BudgetExhausted, nothing reserved), each attempt journaled and metered
    as charged, everything still reserved released on exit.

    Contract: every attempt is covered by a reservation of the call's worst case: the
    first by the one made on entry, each retry by `before_retry`. Charging an attempt
    (`charge_failed`, `charge_reply`) journals it first (the journal is what a resumed
    run starts from), then meters it, then releases its cover, so usage plus
    reservations never dip below what was spent. Not thread-safe: one call, one thread.
    """

    def __init__(
        self,
        role: Role,
        *,
        key: str,
        worst: TokenUsage,
        limits: UsageLimits,
        guard: BudgetGuard,
        meter: UsageMeter,
        prices: Prices,
        journal: AttemptLog | None = None,
    ) -> None:
        self.role = role
        self.key = key
        self.worst = worst
        self.limits = limits
        self._guard = guard
        self._meter = meter
        self._prices = prices
        self._journal = journal
        self._worst_dollars = prices.cost(worst)
        guard.reserve(role, tokens=worst.total, dollars=self._worst_dollars)
        self._held_calls = 1
        self._covered = 1  # attempts' worst cases reserved and not yet charged

    def __enter__(self) -> PaidCall:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._release(self._held_calls, self._covered)
        self._held_calls = self._covered = 0

    # -- AttemptMeter ----------------------------------------------------------------

    def before_retry(self) -> None:
        if self._covered:
            return  # the last attempt was not charged (a refusal): its cover still holds
        self._guard.reserve(
            self.role, tokens=self.worst.total, dollars=self._worst_dollars, calls=0
        )
        self._covered = 1

    def charge_failed(self, usage: TokenUsage | None, outcome: str) -> None:
        charged = self.worst if usage is None else usage
        anomaly = None if usage is None else self.limits.anomaly(usage)
        attempt = Attempt(
            self.key,
            self.role,
            outcome,
            charged,
            self._prices.cost(charged),
            estimated=usage is None,
            anomaly=anomaly,
        )
        if self._journal is not None:
            self._journal.record_attempt(attempt)
        self._meter.record_failed_attempt(
            self.role, charged, dollars=attempt.dollars, anomaly=anomaly is not None
        )
        self._uncover()

    # -- the reply ---------------------------------------------------------------------

    def charge_reply(
        self,
        usage: TokenUsage,
        *,
        seconds: float = 0.0,
        reply: tuple[str, Completion | LoglikResult] | None = None,
    ) -> str | None:
        """Charges the attempt that answered: journaled with `reply` (request JSON and
        completion, in the same transaction, so a resumed run replays it), then metered
        as a model call. Returns the usage anomaly, if any."""
        anomaly = self.limits.anomaly(usage)
        attempt = Attempt(
            self.key, self.role, REPLY, usage, self._prices.cost(usage), anomaly=anomaly
        )
        if self._journal is not None:
            self._journal.record_attempt(attempt, reply=reply)
        self._meter.record(
            self.role,
            usage,
            cached=False,
            dollars=attempt.dollars,
            seconds=seconds,
            anomaly=anomaly is not None,
        )
        self._uncover()
        return anomaly

    # -- internals ---------------------------------------------------------------------

    def _uncover(self) -> None:
        """The charged attempt's usage is metered now: drop the worst case it held."""
        if self._covered:
            self._release(0, 1)
            self._covered = 0

    def _release(self, calls: int, attempts: int) -> None:
        if calls or attempts:
            self._guard.release(
                Reservation(
                    self.role,
                    calls,
                    self.worst.total * attempts,
                    self._worst_dollars * attempts,
                )
            )
