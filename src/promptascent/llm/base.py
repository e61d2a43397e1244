"""The protocol every model backend implements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from promptascent.llm.types import Completion, CompletionRequest, LoglikRequest, LoglikResult


@dataclass(frozen=True)
class ModelInfo:
    """What a backend is. `model_id` goes into every cache key, so it must name the
    weights (and quantisation) exactly; `context_length` bounds what fits in one call.
    `template_tokens`: what the chat template may add to a request beyond the client's
    8 tokens per message (reserved with every call; 0 where usage counts text only)."""

    model_id: str
    backend: str
    context_length: int
    supports_loglik: bool = False
    template_tokens: int = 0


@runtime_checkable
class LLM(Protocol):
    """A chat model. `complete` may be called from several threads at once; backends
    serialise internally where they must. Errors are `promptascent.errors.ModelError`."""

    @property
    def info(self) -> ModelInfo: ...

    def complete(self, request: CompletionRequest) -> Completion: ...

    def count_tokens(self, text: str) -> int:
        """Exact where the backend has the tokenizer; otherwise an upper bound."""
        ...

    @property
    def tokenizer(self) -> str:
        """Which tokenizer `count_tokens` uses, in a few words (shown by --dry-run)."""
        ...

    def loglik(self, request: LoglikRequest) -> LoglikResult:
        """Sum of token log-probabilities of each continuation, deterministic for a
        given request whatever was asked before. Raises NotSupported where the backend
        cannot score (`info.supports_loglik` says so before any call)."""
        ...

    def close(self) -> None: ...
