"""A model in a role: the one path every model call of a run takes.

`ModelClient.complete` looks in the run's journal and the response cache, else
reserves the call's worst case against the budget and calls the backend with a
`PaidCall` as its attempt meter (llm/metering.py: every paid attempt journaled and
metered, each retry reserved), and stores successful replies.
"""

from __future__ import annotations

import copy
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

from promptascent.errors import ContextOverflow, ModelError, ModelUnavailable
from promptascent.events import EventSink, ModelCalled
from promptascent.llm.base import LLM
from promptascent.llm.budget import BudgetGuard
from promptascent.llm.cache import ResponseCache
from promptascent.llm.deadline import call_deadline
from promptascent.llm.journal import Journal
from promptascent.llm.metering import PaidCall, UsageLimits, attempt_meter
from promptascent.llm.types import (
    Completion,
    CompletionRequest,
    LoglikRequest,
    LoglikResult,
    Role,
    TokenUsage,
)
from promptascent.llm.usage import Prices, UsageMeter

Stored = TypeVar("Stored", Completion, LoglikResult)

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
        journal: Journal | None = None,
        max_consecutive_errors: int = 8,
        emit: EventSink | None = None,
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
        self.emit = emit  # one ModelCalled event per call, if given
        self._consecutive_errors = 0
        self._errors_lock = threading.Lock()
        self._inflight: dict[str, threading.Event] = {}
        self._inflight_lock = threading.Lock()

    def with_guard(self, guard: BudgetGuard) -> ModelClient:
        """This client checking `guard` instead: the same backend, caches, journal, usage
        meter and in-flight calls (an identical request made through either is made
        once), for a part of a run with limits of its own (a fold of k-fold selection).
        Its count of consecutive errors starts from this client's."""
        view = copy.copy(self)
        view.guard = guard
        return view

    @property
    def model_id(self) -> str:
        return self.backend.info.model_id

    @property
    def context_length(self) -> int:
        return self.backend.info.context_length

    def prompt_tokens(self, request: CompletionRequest) -> int:
        """The prompt tokens reserved for a request: its messages' tokens (exact where the
        backend has the tokenizer, see its `tokenizer`), the chat template's per-message
        overhead, and what the backend says its template may add per request."""
        return self.backend.info.template_tokens + sum(
            self.backend.count_tokens(m.content) + _TOKENS_PER_MESSAGE for m in request.messages
        )

    def complete(self, request: CompletionRequest) -> Completion:
        """One completion. Raises BudgetExhausted (before the call: nothing spent; or
        when a retry might not fit: the failed attempts before it are metered),
        ModelError, or ModelUnavailable after `max_consecutive_errors` failures in a row.

        Lookup order: the run's journal (every reply this run already paid for, so a
        resumed run repeats no call), then the shared cache (unless refreshing).
        Identical requests in flight at once are made once: the others wait for it and
        are then answered from the journal or cache, so what is paid does not depend
        on thread timing."""
        key = request.cache_key(self.model_id)
        with self._observed("complete") as seen, self._single_flight(key):
            completion, seen.cached = self._complete(request, key)
            seen.usage = completion.usage
            return completion

    @contextmanager
    def _observed(self, operation: str) -> Iterator[_Seen]:
        """Emits the call's ModelCalled event when it ends (no event for a call the
        budget refused, or an interrupt: no call was made or none ended)."""
        seen = _Seen()
        if self.emit is None:
            yield seen
            return
        started = time.monotonic()
        try:
            yield seen
        except (ModelError, ModelUnavailable) as e:
            # the call's own error, not the verdict on the model it led to
            own = e.__cause__ if isinstance(e.__cause__, ModelError) else e
            seen.error = f"{type(own).__name__}: {own}"
            raise
        finally:
            if seen.usage is not None or seen.error is not None:
                self.emit(
                    ModelCalled(
                        role=self.role,
                        model=self.model_id,
                        operation=operation,
                        prompt_tokens=seen.usage.prompt_tokens if seen.usage else 0,
                        completion_tokens=seen.usage.completion_tokens if seen.usage else 0,
                        cached=seen.cached,
                        seconds=time.monotonic() - started,
                        error=seen.error,
                    )
                )

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

    def _complete(self, request: CompletionRequest, key: str) -> tuple[Completion, bool]:
        """The completion, and whether the journal or a cache answered it."""
        journaled = self.journal.get(key) if self.journal else None
        cached = journaled
        if cached is None and self.cache and self.cache_policy.read:
            cached = self.cache.get(key)
        if cached is not None:
            return self._answer_from_store(cached, key if journaled is not None else None), True
        worst = TokenUsage(self.prompt_tokens(request), request.max_tokens)
        with PaidCall(
            self.role,
            key=key,
            worst=worst,
            limits=UsageLimits.of(request.messages, request.max_tokens),
            guard=self.guard,
            meter=self.meter,
            prices=self.prices,
            journal=self.journal,
        ) as call:
            started = time.monotonic()
            left = self.guard.remaining("minutes")
            try:
                # Retries inside the backend stop when the run's time budget ends, and
                # each reserves its own worst case (or is not made).
                with call_deadline(None if left is None else left * 60), attempt_meter(call):
                    completion = self.backend.complete(request)
            except ModelError as e:
                self.meter.record_error(self.role)
                if not isinstance(e, ContextOverflow):  # the data's fault, not the model's
                    self._count_error(e)
                raise
            self._count_error(None)
            blob = _request_json(request, self.model_id)
            # Journaled before it is used: a resumed run starts from what was paid.
            call.charge_reply(
                completion.usage, seconds=time.monotonic() - started, reply=(blob, completion)
            )
            if self.cache and self.cache_policy.write:
                self.cache.put(key, blob, completion)
            return completion, False

    def _answer_from_store(self, stored: Stored, journal_key: str | None) -> Stored:
        """Accounts for a reply from the run's journal (`journal_key` given) or a cache.
        It counts toward the budget as the call it replaces. The first replay of a reply
        an earlier process of this run paid for is that paid call (with its failed
        attempts; `Journal.carry_over`), any other is a cache hit that cost nothing."""
        journal = self.journal if journal_key is not None else None
        earlier = journal.unclaimed(journal_key) if journal and journal_key else None
        need, dollars = stored.usage, self.prices.cost(stored.usage)
        if earlier is not None:
            failed, failed_dollars = earlier
            need = TokenUsage(
                need.prompt_tokens + failed.prompt_tokens,
                need.completion_tokens + failed.completion_tokens,
            )
            dollars += failed_dollars
        reservation = self.guard.reserve(self.role, tokens=need.total, dollars=dollars)
        try:
            if journal and journal_key and earlier is not None and journal.claim(journal_key):
                self.meter.record_replay(self.role, need, dollars=dollars)
            else:
                self._record_hit(stored)
            return stored
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

    def replay(
        self, completion: Completion, request: Callable[[], CompletionRequest] | None = None
    ) -> Completion:
        """Accounts for a reply found in another cache (the evaluation cache) exactly as
        a response-cache hit: it counts toward the budget, costs nothing. `request`
        makes the request it answers, asked for only in a resumed run, where the reply
        may be one an earlier process paid for (then it is that call, not a hit)."""
        key = None
        if request is not None and self.journal is not None and self.journal.has_unclaimed():
            key = request().cache_key(self.model_id)
        with self._observed("complete") as seen:
            seen.cached, seen.usage = True, completion.usage
            return self._answer_from_store(completion, key)

    def _record_hit(self, stored: Completion | LoglikResult) -> None:
        self.meter.record(
            self.role, stored.usage, cached=True, dollars=self.prices.cost(stored.usage)
        )

    @property
    def supports_loglik(self) -> bool:
        return self.backend.info.supports_loglik

    def loglik(self, request: LoglikRequest) -> LoglikResult:
        """Log-likelihoods of the request's continuations: one call, budgeted, metered,
        journaled and cached exactly like a completion. It reserves the prompt's tokens
        plus every continuation's (nothing is generated) and records what the backend
        reports. Raises BudgetExhausted, ModelError, NotSupported (the backend cannot
        score: the plan checks `supports_loglik` first), or ModelUnavailable."""
        key = request.cache_key(self.model_id)
        with self._observed("loglik") as seen, self._single_flight(key):
            result, seen.cached = self._loglik(request, key)
            seen.usage = result.usage
            return result

    def _loglik(self, request: LoglikRequest, key: str) -> tuple[LoglikResult, bool]:
        """The scores, and whether the journal or a cache answered them."""
        journaled = self.journal.get_loglik(key) if self.journal else None
        cached = journaled
        if cached is None and self.cache and self.cache_policy.read:
            cached = self.cache.get_loglik(key)
        if cached is not None:
            return self._answer_from_store(cached, key if journaled is not None else None), True
        info = self.backend.info
        prompt = info.template_tokens + sum(
            self.backend.count_tokens(m.content) + _TOKENS_PER_MESSAGE for m in request.messages
        )
        copies = len(request.continuations) if info.loglik_repeats_prompt else 1
        worst = TokenUsage(
            prompt * copies + sum(self.backend.count_tokens(c) for c in request.continuations),
            # echo generates one token per request, first-token one in all
            copies if info.loglik_repeats_prompt else 1 if info.loglik_first_token else 0,
        )
        with PaidCall(
            self.role,
            key=key,
            worst=worst,
            limits=UsageLimits.of(
                request.messages * copies, worst.completion_tokens, extra=request.continuations
            ),
            guard=self.guard,
            meter=self.meter,
            prices=self.prices,
            journal=self.journal,
        ) as call:
            started = time.monotonic()
            left = self.guard.remaining("minutes")
            try:
                with call_deadline(None if left is None else left * 60), attempt_meter(call):
                    result = self.backend.loglik(request)
            except ModelError as e:
                self.meter.record_error(self.role)
                if not isinstance(e, ContextOverflow):
                    self._count_error(e)
                raise
            self._count_error(None)
            blob = json.dumps(request.canonical(self.model_id), ensure_ascii=False, sort_keys=True)
            call.charge_reply(
                result.usage, seconds=time.monotonic() - started, reply=(blob, result)
            )
            if self.cache and self.cache_policy.write:
                self.cache.put_loglik(key, blob, result)
            return result, False


@dataclass
class _Seen:
    """What `ModelClient._observed` reports of one call."""

    usage: TokenUsage | None = None
    cached: bool = False
    error: str | None = None


def _request_json(request: CompletionRequest, model_id: str) -> str:
    import json

    return json.dumps(request.canonical(model_id), ensure_ascii=False, sort_keys=True)
