"""Values exchanged with models: requests, completions and token usage."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Role = Literal["task", "optimizer", "judge"]
ROLES: tuple[Role, ...] = ("task", "optimizer", "judge")


@dataclass(frozen=True)
class Message:
    role: Literal["system", "user", "assistant"]
    content: str

    def to_dict(self) -> dict[str, str]:
        return {"role": self.role, "content": self.content}


@dataclass(frozen=True)
class CompletionRequest:
    """One chat completion. Every field is part of the cache key.

    `sample_index` tells apart repeated samples of the same request at temperature > 0:
    sample 0 and sample 1 are different cache entries, so a rerun replays both.
    """

    messages: tuple[Message, ...]
    temperature: float = 0.0
    max_tokens: int = 256
    stop: tuple[str, ...] = ()
    seed: int | None = None
    sample_index: int = 0
    top_p: float = 1.0

    def canonical(self, model_id: str) -> dict[str, Any]:
        body = asdict(self)
        body["messages"] = [m.to_dict() for m in self.messages]
        body["stop"] = list(self.stop)
        return {"model": model_id, **body}

    def cache_key(self, model_id: str) -> str:
        blob = json.dumps(self.canonical(model_id), sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    def chat_fields(self, model: str) -> dict[str, Any]:
        """The request in OpenAI's chat-completions fields (what the HTTP backend posts
        and LiteLLM takes): `max_tokens`, not `max_completion_tokens` (llama.cpp's server
        ignores the latter); the seed of sample k is `seed + k`."""
        fields: dict[str, Any] = {
            "model": model,
            "messages": [m.to_dict() for m in self.messages],
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "top_p": self.top_p,
        }
        if self.stop:
            fields["stop"] = list(self.stop)
        if self.seed is not None:
            fields["seed"] = self.seed + self.sample_index
        return fields


@dataclass(frozen=True)
class TokenUsage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class Completion:
    """A model's reply. `finish_reason` is "stop" or "length" (hit max_tokens)."""

    text: str
    finish_reason: str = "stop"
    usage: TokenUsage = field(default_factory=TokenUsage)
    cached: bool = False

    def to_json(self) -> str:
        return json.dumps(
            {
                "text": self.text,
                "finish_reason": self.finish_reason,
                "prompt_tokens": self.usage.prompt_tokens,
                "completion_tokens": self.usage.completion_tokens,
            },
            ensure_ascii=False,
        )

    @classmethod
    def from_json(cls, blob: str, *, cached: bool = False) -> Completion:
        d = json.loads(blob)
        return cls(
            text=d["text"],
            finish_reason=d["finish_reason"],
            usage=TokenUsage(d["prompt_tokens"], d["completion_tokens"]),
            cached=cached,
        )


@dataclass(frozen=True)
class LoglikRequest:
    """Log-likelihood of each continuation after the chat prompt `messages`
    (the assistant turn starts right after the prompt). Every field is part of the
    cache key."""

    messages: tuple[Message, ...]
    continuations: tuple[str, ...]

    def canonical(self, model_id: str) -> dict[str, Any]:
        return {
            "kind": "loglik",
            "model": model_id,
            "messages": [m.to_dict() for m in self.messages],
            "continuations": list(self.continuations),
        }

    def cache_key(self, model_id: str) -> str:
        blob = json.dumps(self.canonical(model_id), sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class LoglikResult:
    """The answer to a LoglikRequest: for each continuation, the sum of its tokens'
    log-probabilities (`logprobs`) and its token count (`tokens`), in request order.
    `usage.prompt_tokens` counts the prompt plus every continuation (what a provider
    bills for scoring); `usage.completion_tokens` what a server generated to answer
    (a token per request over HTTP, none in process). `approximate` marks a backend that could
    score only the first token of each continuation (chat APIs' top log-probabilities)."""

    logprobs: tuple[float, ...]
    tokens: tuple[int, ...]
    usage: TokenUsage = field(default_factory=TokenUsage)
    cached: bool = False
    approximate: bool = False

    def to_json(self) -> str:
        return json.dumps(
            {
                "kind": "loglik",
                "logprobs": list(self.logprobs),
                "tokens": list(self.tokens),
                "prompt_tokens": self.usage.prompt_tokens,
                "completion_tokens": self.usage.completion_tokens,
                "approximate": self.approximate,
            }
        )

    @classmethod
    def from_json(cls, blob: str, *, cached: bool = False) -> LoglikResult:
        d = json.loads(blob)
        if d.get("kind") != "loglik":
            raise ValueError("not a log-likelihood result")
        return cls(
            logprobs=tuple(float(x) for x in d["logprobs"]),
            tokens=tuple(int(x) for x in d["tokens"]),
            usage=TokenUsage(int(d["prompt_tokens"]), int(d.get("completion_tokens", 0))),
            cached=cached,
            approximate=bool(d.get("approximate", False)),
        )


def messages(*pairs: tuple[str, str]) -> tuple[Message, ...]:
    """Shorthand: messages(("system", "..."), ("user", "..."))."""
    return tuple(Message(role, content) for role, content in pairs)  # type: ignore[arg-type]
