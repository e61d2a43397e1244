"""Budgets, checked before every model call.

Each call first reserves its worst case (one call, its prompt tokens, `max_tokens`
completion tokens, their price) against every limit; if any limit would be exceeded
the call is refused with `BudgetExhausted` and never made. After the call the
reservation is replaced by what was used. So concurrent calls cannot overshoot:
the budget is never exceeded, at the price of stopping a little early when the
worst case of the next call does not fit.

A retry of a call reserves its own worst case of tokens and dollars, with no call:
call limits count logical calls, token and dollar limits every paid attempt
(llm/metering.py). Usage beyond a reservation happens only when a server reports
more than the request allowed; it is metered as reported, so the next reservation
sees it.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields

from promptascent.errors import BudgetExhausted, ConfigError
from promptascent.llm.types import ROLES, Role
from promptascent.llm.usage import RoleUsage, UsageMeter

_MEASURES = ("calls", "tokens", "dollars")
# The call limits a search can plan against, in the order a shortfall is reported.
_CALL_LIMITS = ("task_calls", "optimizer_calls", "judge_calls", "calls")


@dataclass(frozen=True)
class Budget:
    """Limits; None means unlimited. Totals are over all roles; `task_*`,
    `optimizer_*`, `judge_*` bound one role. `minutes` bounds wall time."""

    calls: int | None = None
    tokens: int | None = None
    dollars: float | None = None
    minutes: float | None = None
    task_calls: int | None = None
    task_tokens: int | None = None
    task_dollars: float | None = None
    optimizer_calls: int | None = None
    optimizer_tokens: int | None = None
    optimizer_dollars: float | None = None
    judge_calls: int | None = None
    judge_tokens: int | None = None
    judge_dollars: float | None = None

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None and value <= 0:
                raise ConfigError(f"budget.{f.name} must be positive, got {value:g}")

    @classmethod
    def from_mapping(cls, values: Mapping[str, float], *, where: str = "budget") -> Budget:
        """From a task file's `budget:` mapping; counts (calls, tokens) must be whole."""
        known = {f.name for f in fields(cls)}
        out: dict[str, float] = {}
        for key, value in values.items():
            if key not in known:
                raise ConfigError(
                    f"{where}: unknown key {key!r}; known: {', '.join(sorted(known))}"
                )
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"{where}.{key}: {value!r} is not a number")
            if key.rsplit("_", 1)[-1] in ("calls", "tokens"):
                if value != int(value):
                    raise ConfigError(f"{where}.{key}: {value} is not a whole number")
                value = int(value)
            out[key] = value
        return cls(**out)  # type: ignore[arg-type]

    @classmethod
    def parse(cls, text: str) -> Budget:
        """Parses "task_calls=600,minutes=5" (the CLI's --budget). ConfigError with the key
        `budget` (or `budget.LIMIT`) when it is not that."""
        known = {f.name for f in fields(cls)}
        values: dict[str, float] = {}
        for part in filter(None, (p.strip() for p in text.split(","))):
            key, sep, raw = part.partition("=")
            key = key.strip()
            if not sep or key not in known:
                raise ConfigError(
                    f"budget: {part!r} is not KEY=VALUE with KEY one of {', '.join(sorted(known))}",
                    key="budget",
                )
            try:
                values[key] = float(raw)
            except ValueError:
                raise ConfigError(f"budget: {key}={raw!r} is not a number", key="budget") from None
        ints = {"calls", "tokens"}
        try:
            return cls(
                **{k: int(v) if k.rsplit("_", 1)[-1] in ints else v for k, v in values.items()}  # type: ignore[arg-type]
            )
        except ConfigError as e:  # a limit given as an argument: the key says which
            key = re.split(r"[:\s]", str(e), maxsplit=1)[0]  # "budget.task_calls must be ..."
            raise ConfigError(str(e), key=key if key.startswith("budget.") else "budget") from None

    def merged(self, other: Budget) -> Budget:
        """This budget with every limit `other` sets replaced."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values.update(
            {
                f.name: getattr(other, f.name)
                for f in fields(other)
                if getattr(other, f.name) is not None
            }
        )
        return Budget(**values)

    def limits(self) -> dict[str, float]:
        return {
            f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None
        }


@dataclass(frozen=True)
class Shortfall:
    """A call limit that cannot pay for planned work: `left` of it, `need` wanted."""

    limit: str
    left: float
    need: int


@dataclass(frozen=True)
class Reservation:
    role: Role
    calls: int
    tokens: int
    dollars: float


class BudgetGuard:
    """Enforces a Budget over a UsageMeter. Thread-safe."""

    def __init__(
        self,
        budget: Budget,
        meter: UsageMeter,
        *,
        clock: Callable[[], float] = time.monotonic,
        elapsed_before: float = 0.0,
    ) -> None:
        self.budget = budget
        self.meter = meter
        self._clock = clock
        self._start = clock() - elapsed_before
        self._lock = threading.Lock()
        self._reserved: dict[tuple[str, str], float] = {}
        self._limited = any(k != "minutes" for k in budget.limits())

    @property
    def elapsed_seconds(self) -> float:
        return self._clock() - self._start

    def _used(
        self, role: str | None, measure: str, usage: dict[str, RoleUsage] | None = None
    ) -> float:
        usage = usage if usage is not None else self.meter.snapshot()
        roles = [role] if role else list(ROLES)
        total = 0.0
        for r in roles:
            total += getattr(usage[r], measure) + self._reserved.get((r, measure), 0.0)
        return total

    def reserve(self, role: Role, *, tokens: int, dollars: float, calls: int = 1) -> Reservation:
        """Reserves one call's worst case, or raises BudgetExhausted without reserving.
        `calls=0` reserves another attempt of a call already reserved (a retry): its
        tokens and dollars are checked, the call limits and the time limit are not
        (the call's deadline bounds its retries)."""
        want = {"calls": float(calls), "tokens": float(tokens), "dollars": dollars}
        with self._lock:
            if (
                calls
                and self.budget.minutes is not None
                and self.elapsed_seconds >= self.budget.minutes * 60
            ):
                raise BudgetExhausted("minutes", self.elapsed_seconds / 60, self.budget.minutes)
            usage = self.meter.snapshot() if self._limited else None
            for measure in _MEASURES:
                for scope in (None, role):
                    name = f"{scope}_{measure}" if scope else measure
                    cap = getattr(self.budget, name)
                    if cap is None:
                        continue
                    used = self._used(scope, measure, usage)
                    if used + want[measure] > cap:
                        raise BudgetExhausted(name, used, cap)
            for measure in _MEASURES:
                key = (role, measure)
                self._reserved[key] = self._reserved.get(key, 0.0) + want[measure]
        return Reservation(role, calls, tokens, dollars)

    def release(self, reservation: Reservation) -> None:
        """Drops a reservation, or the part of one given (call the meter first, so
        usage never dips below truth)."""
        with self._lock:
            for measure, amount in (
                ("calls", reservation.calls),
                ("tokens", reservation.tokens),
                ("dollars", reservation.dollars),
            ):
                key = (reservation.role, measure)
                self._reserved[key] = self._reserved.get(key, 0.0) - amount

    def remaining(self, name: str) -> float | None:
        """How much of limit `name` (e.g. "task_calls") is left, or None if unlimited."""
        cap = getattr(self.budget, name)
        if cap is None:
            return None
        if name == "minutes":
            return cap - self.elapsed_seconds / 60
        scope, _, measure = name.rpartition("_")
        with self._lock:
            return cap - self._used(scope or None, measure)

    # The questions a search asks before a step (optimizers/base.py). Replies from a
    # cache count as calls too. Token, dollar and time limits are not predicted here:
    # they end a search through BudgetExhausted.

    def shortfall(self, *, task: int = 0, optimizer: int = 0, judge: int = 0) -> Shortfall | None:
        """The first call limit left (task_calls, optimizer_calls, judge_calls, calls)
        that cannot pay for `task` task-model, `optimizer` optimizer-model and `judge`
        judge-model calls; None when every one can."""
        needs = (task, optimizer, judge, task + optimizer + judge)
        for name, need in zip(_CALL_LIMITS, needs, strict=True):
            left = self.remaining(name)
            if left is not None and need > left:
                return Shortfall(name, left, need)
        return None

    def affords(self, *, task: int = 0, optimizer: int = 0, judge: int = 0) -> bool:
        """Whether the call limits left pay for these calls (see `shortfall`)."""
        return self.shortfall(task=task, optimizer=optimizer, judge=judge) is None

    def task_calls_left(self, *, optimizer: int = 0) -> int | None:
        """Task-model calls the call limits still allow: `task_calls` left, and `calls`
        left less `optimizer` optimizer-model calls (never below 0); None when neither
        limit is set."""
        lefts = [self.remaining("task_calls"), self.remaining("calls")]
        if lefts[1] is not None:
            lefts[1] -= optimizer
        known = [int(x) for x in lefts if x is not None]
        return max(0, min(known)) if known else None

    def share(self, parts: int, *, keep: int = 0) -> BudgetGuard | None:
        """A guard over the same usage and clock for one of `parts` equal shares of the
        call limits left, after `keep` task calls are kept back (from `calls` and
        `task_calls`): each call limit set is capped at what is used now plus the share.
        Token, dollar and time limits stay this guard's. None when a share is empty."""
        caps: dict[str, int] = {}
        for name in _CALL_LIMITS:
            left, cap = self.remaining(name), getattr(self.budget, name)
            if left is None or cap is None:
                continue
            reserve = keep if name in ("calls", "task_calls") else 0
            part = int((left - reserve) // parts)
            if part <= 0:
                return None
            caps[name] = int(cap - left) + part
        return BudgetGuard(
            self.budget.merged(Budget(**caps)),
            self.meter,
            clock=self._clock,
            elapsed_before=self.elapsed_seconds,
        )
