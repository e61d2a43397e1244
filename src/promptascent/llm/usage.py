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

    `calls`, `prompt_tokens`, `completion_tokens` and `dollars` count every request the
    run made, answered by the model or by the cache: they are what budgets bound, so a
    rerun from cache does the same work. `model_calls` and `spent_dollars` count only
    the requests the model really answered: what was paid.
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

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def to_dict(self) -> dict[str, float]:
        return {**asdict(self), "tokens": self.tokens}


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
    ) -> None:
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
