"""Model specs: which backend and model serve a role, at what price, with what limits
(the task file's `models:` section). `ModelsSpec.with_overrides` is the one place a
`backend:model` string given for a role (`--ROLE-model`) is parsed."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from promptascent.errors import ConfigError
from promptascent.llm.types import Role


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PricesSpec(_Strict):
    input: float = Field(0.0, ge=0, description="Dollars per million prompt tokens.")
    output: float = Field(0.0, ge=0, description="Dollars per million completion tokens.")


TEST_BACKENDS_ENV = "PROMPTASCENT_TEST_BACKENDS"


def check_test_backend(backend: str) -> None:
    """The scripted backend is a test double that imports the module a task names: it
    is refused (ValueError) unless the environment says this is a test run."""
    if backend == "scripted" and os.environ.get(TEST_BACKENDS_ENV) != "1":
        raise ValueError(
            "the scripted backend is a test double, for promptascent's own tests "
            f"(they set {TEST_BACKENDS_ENV}=1); use embedded, openai or litellm"
        )


class ModelSpec(_Strict):
    """A model. `backend`: embedded | openai | litellm (any provider LiteLLM routes,
    `pip install 'promptascent[litellm]'`) | scripted (tests only: refused unless
    PROMPTASCENT_TEST_BACKENDS=1)."""

    backend: Literal["embedded", "openai", "litellm", "scripted"] = "embedded"
    # HTTP: the model name (litellm: LiteLLM's, "anthropic/claude-..."); embedded: a
    # .gguf path (default SmolLM2)
    model: str | None = None
    base_url: str | None = None
    # The environment variable holding the key. Unset: openai: OPENAI_API_KEY when
    # base_url is unset or https://api.openai.com, no key for any other host
    # (llm/http.py); litellm: no key to a base_url, LiteLLM's own lookup of the
    # provider's variable without one (llm/litellm_backend.py).
    api_key_env: str | None = None
    api_key_file: Path | None = None  # a file holding only the key (instead of the env var)
    # Unset (no `prices` key): litellm models take LiteLLM's table where it knows the
    # model (llm/prices.py); others cost nothing.
    prices: PricesSpec | None = None
    max_concurrency: int = Field(4, ge=1)
    timeout: float = Field(60.0, gt=0)
    context_length: int | None = Field(None, ge=256)
    # HTTP models only (llm/tokens.py): how tokens are counted for reservations,
    # max_prompt_tokens and the objective's prompt-token figures.
    tokenizer: Literal["auto", "server", "tiktoken", "bytes"] = "auto"
    # HTTP models only: a larger reply (after decompression) is an error for its example.
    max_response_bytes: int = Field(8 * 1024 * 1024, ge=1024)
    # HTTP models only (llm/http_loglik.py): how the model scores continuations for
    # likelihood scoring: none; echo (completions endpoint with echo: llama.cpp server,
    # vLLM); first-token (chat top log-probabilities: OpenAI; an approximation).
    loglik: Literal["none", "echo", "first-token"] = "none"
    # With loglik: echo, the chat as text: chatml, a .gguf file (its template) or a
    # Jinja template file, relative to the task file (llm/chat_template.py).
    chat_template: str = "chatml"

    @model_validator(mode="after")
    def _http_only(self) -> ModelSpec:
        if self.backend != "openai":  # litellm counts and templates with LiteLLM's own
            for key, value, default in (
                ("tokenizer", self.tokenizer, "auto"),
                ("loglik", self.loglik, "none"),
                ("chat_template", self.chat_template, "chatml"),
            ):
                if value != default:
                    raise ValueError(
                        f"{key}: {value} is for openai models; the {self.backend} "
                        "backend has its own"
                    )
        return self

    @field_validator("base_url")
    @classmethod
    def _no_credentials(cls, v: str | None) -> str | None:
        """A secret in the URL would be written wherever the spec is (the run store,
        reports): keys come from the environment (api_key_env) or a key file."""
        if v and "@" in urlsplit(v).netloc:
            raise ValueError(
                "holds a user name or password: it would be stored with the run; name the "
                "environment variable holding the key with api_key_env (or api_key_file)"
            )
        return v

    @field_validator("backend")
    @classmethod
    def _tests_only(cls, v: str) -> str:
        check_test_backend(v)
        return v

    @classmethod
    def parse(cls, value: str | dict[str, Any] | ModelSpec) -> ModelSpec:
        """ "embedded", "embedded:/path/model.gguf", "openai:gpt-4o-mini@http://host/v1",
        "litellm:anthropic/claude-...", "litellm:openai/local@http://host/v1" or a
        mapping."""
        if isinstance(value, ModelSpec):
            return value
        if isinstance(value, dict):
            return cls(**value)
        backend, _, rest = value.partition(":")
        if backend == "embedded":
            return cls(backend="embedded", model=rest or None)
        if backend == "openai":
            model, _, url = rest.partition("@")
            return cls(backend="openai", model=model or None, base_url=url or None)
        if backend == "litellm":
            # Only an http(s) URL after the last "@": LiteLLM's names may hold one
            # ("vertex_ai/claude-...@20240620").
            model, at, url = rest.rpartition("@")
            if not at or not url.startswith(("http://", "https://")):
                model, url = rest, ""
            return cls(backend="litellm", model=model or None, base_url=url or None)
        if backend == "scripted" and rest:  # tests only: "scripted:module:function"
            check_test_backend(backend)
            return cls(backend="scripted", model=rest)
        raise ValueError(
            f"unknown model {value!r} (expected embedded[:PATH], openai:MODEL[@URL] "
            "or litellm:MODEL[@URL])"
        )

    def identity(self) -> tuple[Any, ...]:
        """Specs with equal identity share one backend instance."""
        return (
            self.backend,
            self.model,
            self.base_url,
            self.api_key_env,
            self.api_key_file,
            self.context_length,
            self.tokenizer,
            self.max_response_bytes,
            self.loglik,
            self.chat_template,
        )


class ModelsSpec(_Strict):
    task: ModelSpec = Field(default_factory=ModelSpec)
    optimizer: ModelSpec = Field(default_factory=ModelSpec)
    judge: ModelSpec = Field(default_factory=ModelSpec)

    @field_validator("task", "optimizer", "judge", mode="before")
    @classmethod
    def _shorthand(cls, v: Any) -> Any:
        return ModelSpec.parse(v) if isinstance(v, str) else v

    def with_overrides(self, overrides: Mapping[Role, str] | None) -> ModelsSpec:
        """These models with some roles replaced by `backend:model` strings (the CLI's
        `--ROLE-model`). ConfigError naming the key `models.ROLE` when one is not a model."""
        models = self
        for role, value in (overrides or {}).items():
            try:
                spec = ModelSpec.parse(value)
            except ValidationError as e:  # a ValueError: first, and never with its input
                first = e.errors()[0]
                where = ".".join(str(p) for p in ("models", role, *first["loc"]))
                message = str(first["msg"]).removeprefix("Value error, ")
                raise ConfigError(f"{where}: {message}", key=where) from None
            except ValueError as e:
                raise ConfigError(f"models.{role}: {e}", key=f"models.{role}") from None
            models = models.model_copy(update={role: spec})
        return models
