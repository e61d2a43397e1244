"""A model in a role: the one path every model call of a run takes.

`ModelClient.complete` checks the budget, looks in the response cache, calls the
backend on a miss, stores successful replies, and records usage for its role.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from promptascent.errors import ContextOverflow, ModelError, ModelUnavailable
from promptascent.llm.base import LLM
from promptascent.llm.budget import BudgetGuard
from promptascent.llm.cache import ResponseCache
from promptascent.llm.deadline import call_deadline
from promptascent.llm.types import (
    Completion,
    CompletionRequest,
    LoglikRequest,
    LoglikResult,
    Role,
    TokenUsage,
)
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
        journal: ResponseCache | None = None,
        max_consecutive_errors: int = 8,
    ) -> None:
        self.role = role
        self.backend = backend
        self.meter = meter
        self.guard = guard
        self.cache = cache
        self.cache_policy = cache_policy
        self.prices = prices
        self.journal = journal
        self.max_consecutive_errors = max_consecutive_errors
        self._consecutive_errors = 0
        self._errors_lock = threading.Lock()
        self._inflight: dict[str, threading.Event] = {}
        self._inflight_lock = threading.Lock()

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
        """One completion. Raises BudgetExhausted (nothing spent), ModelError, or
        ModelUnavailable after `max_consecutive_errors` failures in a row.

        Lookup order: the run's journal (every reply this run already paid for, so a
        resumed run repeats no call), then the shared cache (unless refreshing).
        Identical requests in flight at once are made once: the others wait for it and
        are then answered from the journal or cache, so what is paid does not depend
        on thread timing."""
        key = request.cache_key(self.model_id)
        with self._single_flight(key):
            return self._complete(request, key)

    @contextmanager
    def _single_flight(self, key: str) -> Iterator[None]:
        """Holds `key` while one call for it is made; identical calls wait for it."""
        while True:
            with self._inflight_lock:
                leader = self._inflight.get(key)
                if leader is None:
                    mine = self._inflight[key] = threading.Event()
                    break
            leader.wait()
        try:
            yield
        finally:
            with self._inflight_lock:
                del self._inflight[key]
            mine.set()

    def _complete(self, request: CompletionRequest, key: str) -> Completion:
        cached = self.journal.get(key) if self.journal else None
        if cached is None and self.cache and self.cache_policy.read:
            cached = self.cache.get(key)
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
            left = self.guard.remaining("minutes")
            try:
                # Retries inside the backend stop when the run's time budget ends.
                with call_deadline(None if left is None else left * 60):
                    completion = self.backend.complete(request)
            except ModelError as e:
                self.meter.record_error(self.role)
                if not isinstance(e, ContextOverflow):  # the data's fault, not the model's
                    self._count_error(e)
                raise
            self._count_error(None)
            seconds = time.monotonic() - started
            self.meter.record(
                self.role,
                completion.usage,
                cached=False,
                dollars=self.prices.cost(completion.usage),
                seconds=seconds,
            )
            blob = _request_json(request, self.model_id)
            if self.journal:
                self.journal.put(key, blob, completion)
            if self.cache and self.cache_policy.write:
                self.cache.put(key, blob, completion)
            return completion
        finally:
            self.guard.release(reservation)

    def _count_error(self, error: ModelError | None) -> None:
        with self._errors_lock:
            if error is None:
                self._consecutive_errors = 0
                return
            self._consecutive_errors += 1
            failures = self._consecutive_errors
        if failures >= self.max_consecutive_errors:
            raise ModelUnavailable(self.role, failures, str(error)) from error

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

    @property
    def supports_loglik(self) -> bool:
        return self.backend.info.supports_loglik

    def loglik(self, request: LoglikRequest) -> LoglikResult:
        """Log-likelihoods of the request's continuations: one call, budgeted, cached
        and journaled exactly like a completion. It reserves the prompt's tokens plus
        every continuation's (nothing is generated) and records what the backend
        reports. Raises BudgetExhausted, ModelError (NotSupported where the backend
        cannot score), or ModelUnavailable after repeated failures."""
        key = request.cache_key(self.model_id)
        with self._single_flight(key):
            return self._loglik(request, key)

    def _loglik(self, request: LoglikRequest, key: str) -> LoglikResult:
        cached = self.journal.get_loglik(key) if self.journal else None
        if cached is None and self.cache and self.cache_policy.read:
            cached = self.cache.get_loglik(key)
        if cached is not None:
            need = cached.usage
        else:
            prompt = sum(
                self.backend.count_tokens(m.content) + _TOKENS_PER_MESSAGE for m in request.messages
            )
            need = TokenUsage(
                prompt + sum(self.backend.count_tokens(c) for c in request.continuations), 0
            )
        reservation = self.guard.reserve(
            self.role, tokens=need.total, dollars=self.prices.cost(need)
        )
        try:
            if cached is not None:
                self._record_usage(cached.usage, cached=True)
                return cached
            started = time.monotonic()
            left = self.guard.remaining("minutes")
            try:
                with call_deadline(None if left is None else left * 60):
                    result = self.backend.loglik(request)
            except ModelError as e:
                self.meter.record_error(self.role)
                if not isinstance(e, ContextOverflow):
                    self._count_error(e)
                raise
            self._count_error(None)
            self._record_usage(result.usage, cached=False, seconds=time.monotonic() - started)
            blob = json.dumps(request.canonical(self.model_id), ensure_ascii=False, sort_keys=True)
            if self.journal:
                self.journal.put_loglik(key, blob, result)
            if self.cache and self.cache_policy.write:
                self.cache.put_loglik(key, blob, result)
            return result
        finally:
            self.guard.release(reservation)

    def _record_usage(self, usage: TokenUsage, *, cached: bool, seconds: float = 0.0) -> None:
        self.meter.record(
            self.role, usage, cached=cached, dollars=self.prices.cost(usage), seconds=seconds
        )


def _request_json(request: CompletionRequest, model_id: str) -> str:
    import json

    return json.dumps(request.canonical(model_id), ensure_ascii=False, sort_keys=True)
