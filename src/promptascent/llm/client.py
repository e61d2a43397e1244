"""A model in a role: the one path every model call of a run takes.

`ModelClient.complete` checks the budget, looks in the response cache, calls the
backend on a miss, stores successful replies, and records usage for its role.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from promptascent.errors import ModelError
from promptascent.llm.base import LLM
from promptascent.llm.budget import BudgetGuard
from promptascent.llm.cache import ResponseCache
from promptascent.llm.types import Completion, CompletionRequest, LoglikRequest, Role, TokenUsage
from promptascent.llm.usage import Prices, UsageMeter

# Chat templates add a few tokens per message (role markers); reserve them too.
_TOKENS_PER_MESSAGE = 8


@dataclass(frozen=True)
class CachePolicy:
    """`read`: answer from the cache when it can (off: --refresh-cache, --no-cache).
    `write`: store new replies (off: --no-cache)."""

    read: bool = True
    write: bool = True


class ModelClient:
    def __init__(
        self,
        role: Role,
        backend: LLM,
        *,
        meter: UsageMeter,
        guard: BudgetGuard,
        cache: ResponseCache | None = None,
        cache_policy: CachePolicy = CachePolicy(),
        prices: Prices = Prices(),
    ) -> None:
        self.role = role
        self.backend = backend
        self.meter = meter
        self.guard = guard
        self.cache = cache
        self.cache_policy = cache_policy
        self.prices = prices

    @property
    def model_id(self) -> str:
        return self.backend.info.model_id

    @property
    def context_length(self) -> int:
        return self.backend.info.context_length

    def prompt_tokens(self, request: CompletionRequest) -> int:
        """Tokens the request's messages take (exact for the embedded model, an upper
        bound over HTTP), with the chat template's per-message overhead."""
        return sum(
            self.backend.count_tokens(m.content) + _TOKENS_PER_MESSAGE for m in request.messages
        )

    def complete(self, request: CompletionRequest) -> Completion:
        """One completion. Raises BudgetExhausted (nothing spent) or ModelError."""
        key = request.cache_key(self.model_id)
        cached = self.cache.get(key) if self.cache and self.cache_policy.read else None
        if cached is not None:
            need = cached.usage
        else:
            need = TokenUsage(self.prompt_tokens(request), request.max_tokens)
        reservation = self.guard.reserve(
            self.role, tokens=need.total, dollars=self.prices.cost(need)
        )
        try:
            if cached is not None:
                self._record_hit(cached)
                return cached
            started = time.monotonic()
            try:
                completion = self.backend.complete(request)
            except ModelError:
                self.meter.record_error(self.role)
                raise
            seconds = time.monotonic() - started
            self.meter.record(
                self.role,
                completion.usage,
                cached=False,
                dollars=self.prices.cost(completion.usage),
                seconds=seconds,
            )
            if self.cache and self.cache_policy.write:
                self.cache.put(key, _request_json(request, self.model_id), completion)
            return completion
        finally:
            self.guard.release(reservation)

    def replay(self, completion: Completion) -> Completion:
        """Accounts for a reply found in another cache (the evaluation cache) exactly as
        a response-cache hit: it counts toward the budget, costs nothing."""
        reservation = self.guard.reserve(
            self.role, tokens=completion.usage.total, dollars=self.prices.cost(completion.usage)
        )
        try:
            self._record_hit(completion)
        finally:
            self.guard.release(reservation)
        return completion

    def _record_hit(self, completion: Completion) -> None:
        self.meter.record(
            self.role, completion.usage, cached=True, dollars=self.prices.cost(completion.usage)
        )

    def loglik(self, request: LoglikRequest) -> list[float]:
        """Log-likelihoods (not cached; counted as one call per continuation)."""
        tokens = sum(self.backend.count_tokens(m.content) for m in request.messages)
        tokens += sum(self.backend.count_tokens(c) for c in request.continuations)
        reservation = self.guard.reserve(self.role, tokens=tokens, dollars=0.0)
        try:
            values = self.backend.loglik(request)
            self.meter.record(self.role, TokenUsage(tokens, 0), cached=False, dollars=0.0)
            return values
        finally:
            self.guard.release(reservation)


def _request_json(request: CompletionRequest, model_id: str) -> str:
    import json

    return json.dumps(request.canonical(model_id), ensure_ascii=False, sort_keys=True)
