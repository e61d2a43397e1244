"""A deterministic scripted model for exact unit tests (not a stand-in for a real model)."""

from __future__ import annotations

import threading
from collections.abc import Callable

from promptascent.errors import NotSupported
from promptascent.llm.base import ModelInfo
from promptascent.llm.types import (
    Completion,
    CompletionRequest,
    LoglikRequest,
    LoglikResult,
    TokenUsage,
)

Responder = Callable[[CompletionRequest], str]


class ScriptedLLM:
    """Answers each request with `responder(request)`.

    Its "tokens" are whitespace-separated words: a fixed, documented rule so tests can
    state exact token counts. `requests` records every request it answered.
    A responder may raise a ModelError to script a failure.
    """

    def __init__(
        self,
        responder: Responder,
        *,
        model_id: str = "scripted",
        context_length: int = 4096,
        loglik_fn: Callable[[LoglikRequest], list[float]] | None = None,
    ) -> None:
        self._responder = responder
        self._loglik_fn = loglik_fn
        self._info = ModelInfo(
            model_id=model_id,
            backend="scripted",
            context_length=context_length,
            supports_loglik=loglik_fn is not None,
        )
        self._lock = threading.Lock()
        self.requests: list[CompletionRequest] = []
        self.loglik_requests: list[LoglikRequest] = []

    @property
    def info(self) -> ModelInfo:
        return self._info

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    @property
    def tokenizer(self) -> str:
        return "words (scripted)"

    def complete(self, request: CompletionRequest) -> Completion:
        text = self._responder(request)
        words = text.split()
        finish = "stop"
        if len(words) > request.max_tokens:
            text, finish = " ".join(words[: request.max_tokens]), "length"
        with self._lock:
            self.requests.append(request)
        prompt_tokens = sum(self.count_tokens(m.content) for m in request.messages)
        return Completion(text, finish, TokenUsage(prompt_tokens, self.count_tokens(text)))

    def loglik(self, request: LoglikRequest) -> LoglikResult:
        """`loglik_fn(request)`: one log-probability sum per continuation; token counts
        by the word rule. Recorded in `loglik_requests`."""
        if self._loglik_fn is None:
            raise NotSupported("the scripted model was given no loglik function")
        values = self._loglik_fn(request)
        with self._lock:
            self.loglik_requests.append(request)
        tokens = tuple(max(1, self.count_tokens(c)) for c in request.continuations)
        prompt = sum(self.count_tokens(m.content) for m in request.messages)
        return LoglikResult(
            logprobs=tuple(float(v) for v in values),
            tokens=tokens,
            usage=TokenUsage(prompt + sum(tokens), 0),
        )

    def close(self) -> None:
        pass
