"""Usage accounting per model role: calls, tokens, dollars, cache hits, wall time."""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, field

from promptascent.llm.types import ROLES, Role, TokenUsage


@dataclass(frozen=True)
class Prices:
    """Dollars per million tokens."""

    input: float = 0.0
    output: float = 0.0

    def cost(self, usage: TokenUsage) -> float:
        return (usage.prompt_tokens * self.input + usage.completion_tokens * self.output) / 1e6


@dataclass
class RoleUsage:
    """What one role used.

    `calls` counts logical calls, answered by the model, the run's journal or a cache:
    what call limits bound, so a rerun from cache does the same work.
    `prompt_tokens`, `completion_tokens` and `dollars` count those calls' usage plus
    every paid attempt that gave no usable reply: what token and dollar limits bound.
    `model_calls` counts the calls the model answered and `spent_dollars` every paid
    attempt (replies and `failed_attempts`): what was paid, by this process and, after
    a resume, by the earlier processes of the run. `failed_attempts` are attempts that
    may have been billed but gave no usable reply (timeouts, unusable replies), charged
    as the server reported or at the call's worst case. `usage_anomalies` counts
    replies whose reported usage went beyond the request's limits (metered as
    reported).
    """

    calls: int = 0
    cache_hits: int = 0
    model_calls: int = 0
    errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    dollars: float = 0.0
    spent_dollars: float = 0.0
    model_seconds: float = 0.0
    failed_attempts: int = 0
    usage_anomalies: int = 0

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def to_dict(self) -> dict[str, float]:
        return {**asdict(self), "tokens": self.tokens}


@dataclass(frozen=True)
class PaidBefore:
    """What the earlier processes of a resumed run paid in one role (from its journal):
    `replies` and `failures` count paid attempts; `spent_dollars` is their price.
    `unreplayed` and `unreplayed_dollars` are the failed attempts of calls that got no
    reply, which no replay will charge to the budget again."""

    replies: int = 0
    failures: int = 0
    spent_dollars: float = 0.0
    anomalies: int = 0
    unreplayed: TokenUsage = field(default_factory=TokenUsage)
    unreplayed_dollars: float = 0.0


@dataclass
class UsageMeter:
    """Thread-safe running totals per role."""

    roles: dict[str, RoleUsage] = field(default_factory=lambda: {r: RoleUsage() for r in ROLES})
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(
        self,
        role: Role,
        usage: TokenUsage,
        *,
        cached: bool,
        dollars: float,
        seconds: float = 0.0,
        anomaly: bool = False,
    ) -> None:
        """One logical call: answered by a cache (`cached`) or paid to the model."""
        with self._lock:
            r = self.roles[role]
            r.calls += 1
            r.prompt_tokens += usage.prompt_tokens
            r.completion_tokens += usage.completion_tokens
            r.dollars += dollars
            if cached:
                r.cache_hits += 1
            else:
                r.model_calls += 1
                r.spent_dollars += dollars
                r.model_seconds += seconds
                r.usage_anomalies += anomaly

    def record_replay(self, role: Role, usage: TokenUsage, *, dollars: float) -> None:
        """One logical call answered by a reply an earlier process of this run paid for
        (already in `model_calls` and `spent_dollars` through `carry_over`): it counts
        toward the budget like the call it repeats, and is no cache hit. `usage` and
        `dollars` include the call's failed attempts."""
        with self._lock:
            r = self.roles[role]
            r.calls += 1
            r.prompt_tokens += usage.prompt_tokens
            r.completion_tokens += usage.completion_tokens
            r.dollars += dollars

    def record_failed_attempt(
        self, role: Role, usage: TokenUsage, *, dollars: float, anomaly: bool = False
    ) -> None:
        """A paid attempt that gave no usable reply: spent, and counted against token
        and dollar limits; not a call."""
        with self._lock:
            r = self.roles[role]
            r.failed_attempts += 1
            r.prompt_tokens += usage.prompt_tokens
            r.completion_tokens += usage.completion_tokens
            r.dollars += dollars
            r.spent_dollars += dollars
            r.usage_anomalies += anomaly

    def carry_over(self, paid: dict[str, PaidBefore]) -> None:
        """Starts a resumed run from what its earlier processes paid: their replies are
        then replayed through `record_replay`, their other failed attempts counted now."""
        with self._lock:
            for role, p in paid.items():
                r = self.roles[role]
                r.model_calls += p.replies
                r.failed_attempts += p.failures
                r.spent_dollars += p.spent_dollars
                r.usage_anomalies += p.anomalies
                r.prompt_tokens += p.unreplayed.prompt_tokens
                r.completion_tokens += p.unreplayed.completion_tokens
                r.dollars += p.unreplayed_dollars

    def record_error(self, role: Role) -> None:
        with self._lock:
            self.roles[role].errors += 1

    def snapshot(self) -> dict[str, RoleUsage]:
        with self._lock:
            return {k: RoleUsage(**asdict(v)) for k, v in self.roles.items()}

    def total(self) -> RoleUsage:
        total = RoleUsage()
        for r in self.snapshot().values():
            for k, v in asdict(r).items():
                setattr(total, k, getattr(total, k) + v)
        return total

    def restore(self, data: dict[str, dict[str, float]]) -> None:
        """Loads totals saved by `to_dict` (resume)."""
        with self._lock:
            for role, values in data.items():
                values = {k: v for k, v in values.items() if k != "tokens"}
                self.roles[role] = RoleUsage(**values)  # type: ignore[arg-type]

    def to_dict(self) -> dict[str, dict[str, float]]:
        return {k: v.to_dict() for k, v in self.snapshot().items()}
