"""A backend for every provider LiteLLM routes (`backend: litellm`, `litellm:MODEL[@URL]`):
Anthropic, Gemini, Bedrock, Azure, Ollama, OpenAI-compatible servers, ...

Contracts:
- LiteLLM is imported through `load_litellm`, which first sets
  LITELLM_LOCAL_MODEL_COST_MAP=True, so LiteLLM reads the model table it ships and
  never fetches one, and turns off its own downloads of tokenizers and its debug
  prints. Without LiteLLM installed the backend is a one-line ConfigError naming
  `pip install 'promptascent[litellm]'`.
- The key rule. With a `base_url` (LiteLLM's `api_base`) a key goes there only when
  the task file names it (`api_key_env`, `api_key_file`); otherwise the dummy
  `NO_KEY` is passed as `api_key`, so LiteLLM never picks OPENAI_API_KEY or another
  provider's key from the environment for that host. Without a `base_url` a named key
  is passed, else LiteLLM finds the provider's own variable (ANTHROPIC_API_KEY, ...),
  for the provider's own host. The key never appears in an exception message, a repr
  or `ModelInfo` (error texts are shortened and redacted).
- Each `litellm.completion` call is one attempt (`num_retries=0`: LiteLLM's and the
  provider SDK's retries are off). Retries are llm/retry.py's, each reserved through
  the attempt meter in force; every attempt that may have been billed and gave no
  usable reply is charged to it, as llm/http.py does, read from the cause LiteLLM
  keeps: a read timeout or a lost connection (not a connect error: the request never
  left), a reply with no usable text or no JSON (at the usage it reports, else the
  call's worst case). LiteLLM's errors map to ours: RateLimitError, Timeout,
  APIConnectionError, 500/502/503/504 -> retryable; AuthenticationError,
  PermissionDeniedError and any other 401/403 (LiteLLM raises an OpenAI-compatible
  server's 403 as a plain APIError) -> ModelAuthError, BadRequestError, NotFoundError and other
  4xx -> ModelRequestError (ContextWindowExceededError -> ContextOverflow), raised at
  once with the model's setting (`models.task`) and name.
- Usage is what LiteLLM returns (the provider's counts). Tokens for reservations are
  counted with `litellm.token_counter` (the model's tokenizer where LiteLLM has it,
  tiktoken's otherwise); with a `base_url` the served model is unknown to LiteLLM, so
  they are counted as llm/tokens.py counts for an OpenAI-compatible server (its
  tokenize endpoint, else an upper bound in bytes).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import httpx

from promptascent.errors import (
    ConfigError,
    ContextOverflow,
    ModelAuthError,
    ModelConnectionError,
    ModelError,
    ModelRateLimited,
    ModelRequestError,
    ModelResponseError,
    ModelServerError,
    ModelTimeout,
    NotSupported,
)
from promptascent.llm.base import ModelInfo
from promptascent.llm.http_body import read_body
from promptascent.llm.metering import AttemptMeter
from promptascent.llm.retry import Retries
from promptascent.llm.tokens import TokenCounter, choose_counter
from promptascent.llm.types import (
    Completion,
    CompletionRequest,
    LoglikRequest,
    LoglikResult,
    TokenUsage,
)

E = TypeVar("E", bound=BaseException)

BACKEND = "litellm"
COST_MAP_ENV = "LITELLM_LOCAL_MODEL_COST_MAP"
INSTALL_HINT = "the litellm backend needs LiteLLM: pip install 'promptascent[litellm]'"
# Sent as the key to a base_url nobody named a key for: not a secret, and it stops
# LiteLLM from reading a provider's key from the environment for that host.
NO_KEY = "no-key"
TEMPLATE_TOKENS = 32  # as llm/http.py: what a chat template may add to a request
MESSAGE_OVERHEAD_TOKENS = 4  # per message, when a reply reports no usage
SNIPPET_CHARS = 200
DEFAULT_CONTEXT = 8192
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
TOKENIZE_TIMEOUT = 10.0
# Environment variables whose values are redacted from error texts (provider keys
# LiteLLM may have read on its own).
_SECRET_SUFFIXES = ("_KEY", "_TOKEN", "_SECRET")


def load_litellm() -> Any:
    """The litellm module, imported so that it never fetches its model table (the
    environment variable is set before the import) and never prints or downloads."""
    os.environ[COST_MAP_ENV] = "True"
    try:
        import litellm
    except ImportError:
        raise ConfigError(INSTALL_HINT) from None
    litellm.suppress_debug_info = True  # its "Give Feedback" lines go to stdout
    if hasattr(litellm, "disable_hf_tokenizer_download"):
        # llama and cohere models would fetch a tokenizer from the Hugging Face hub
        litellm.disable_hf_tokenizer_download = True
    return litellm


class LiteLLMBackend:
    """`litellm.completion` behind the LLM protocol. Thread-safe; `attempts` counts
    every attempt made (for tests). `setting` names the model in errors
    ("models.task")."""

    def __init__(
        self,
        model: str,
        *,
        setting: str = "model",
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float = 60,
        max_concurrency: int = 4,
        context_length: int | None = None,
        max_retries: int = 5,
        backoff_base: float = 0.5,
        backoff_max: float = 30,
        max_retry_seconds: float | None = 120,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not model:
            raise ConfigError(f"{setting}.model: a litellm backend needs a model name")
        if max_concurrency < 1:
            raise ConfigError(f"max_concurrency must be >= 1, got {max_concurrency}")
        base = base_url.rstrip("/") if base_url else None
        if base is not None and not base.startswith(("http://", "https://")):
            raise ConfigError(f"{setting}.base_url {base_url!r}: must start with http(s)://")
        self._litellm = load_litellm()
        self.model = model
        self.base_url = base
        self.attempts = 0
        self._setting = setting
        self._named_key = api_key or None
        self._timeout = timeout
        self._retries = Retries(
            max_retries=max_retries,
            backoff_base=backoff_base,
            backoff_max=backoff_max,
            max_retry_seconds=max_retry_seconds,
            sleep=sleep,
        )
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(max_concurrency)
        self._counter: TokenCounter | None = None
        self._counter_lock = threading.Lock()
        self._tokenize_client: httpx.Client | None = None
        self._info = ModelInfo(
            model_id=f"{BACKEND}:{model}" + (f"@{base}" if base else ""),
            backend=BACKEND,
            context_length=context_length or self._table_context() or DEFAULT_CONTEXT,
            template_tokens=TEMPLATE_TOKENS,
        )

    def __repr__(self) -> str:
        keyed = "named" if self._named_key else ("none" if self.base_url else "provider's")
        return f"LiteLLMBackend(model={self.model!r}, base_url={self.base_url!r}, api_key={keyed})"

    @property
    def info(self) -> ModelInfo:
        return self._info

    # -- LLM protocol ----------------------------------------------------------

    def complete(self, request: CompletionRequest) -> Completion:
        """One chat completion (`cached=False`), retried as the module docstring says.
        Raises a `ModelError` subclass, or `BudgetExhausted` when the attempt meter
        refuses a retry."""
        return self._retries.run(lambda meter: self._attempt(request, meter), self.model)

    def count_tokens(self, text: str) -> int:
        """The text's tokens (see the module docstring); template tokens apart."""
        return self._token_counter().count(text)

    @property
    def tokenizer(self) -> str:
        return self._token_counter().name

    def loglik(self, request: LoglikRequest) -> LoglikResult:
        raise NotSupported(
            f"{self._setting} (litellm:{self.model}) scores no continuations: use "
            "generate scoring, or an openai model with loglik: echo or first-token"
        )

    def close(self) -> None:
        """Closes the tokenize client, if one was made. Idempotent."""
        if self._tokenize_client is not None:
            self._tokenize_client.close()

    # -- internals -------------------------------------------------------------

    def _kwargs(self, request: CompletionRequest) -> dict[str, Any]:
        kwargs = request.chat_fields(self.model)
        kwargs["timeout"] = self._timeout
        kwargs["num_retries"] = 0  # ours count (llm/retry.py), each one metered
        kwargs["drop_params"] = True  # a provider without `seed` or `stop` is still usable
        if self.base_url is not None:
            kwargs["api_base"] = self.base_url
            kwargs["api_key"] = self._named_key or NO_KEY  # never a key from the environment
        elif self._named_key:
            kwargs["api_key"] = self._named_key
        return kwargs

    def _attempt(self, request: CompletionRequest, meter: AttemptMeter) -> Completion:
        with self._slots:
            with self._lock:
                self.attempts += 1
            try:
                response = self._litellm.completion(**self._kwargs(request))
            except Exception as exc:  # LiteLLM's errors become ours; anything else is a bug
                error = self._map_error(exc, meter)
                if error is None:
                    raise
                raise error from None
        return self._parse(request, response, meter)

    def _parse(self, request: CompletionRequest, response: Any, meter: AttemptMeter) -> Completion:
        where = f"{self._setting} (litellm:{self.model})"
        reported = _usage(getattr(response, "usage", None))
        choices = getattr(response, "choices", None) or []
        message = getattr(choices[0], "message", None) if choices else None
        content = getattr(message, "content", None)
        if not isinstance(content, str):
            meter.charge_failed(reported, "unusable reply")
            raise ModelResponseError(f"{where}: the reply has no message text")
        finish = getattr(choices[0], "finish_reason", None)
        usage = reported or TokenUsage(
            sum(self.count_tokens(m.content) + MESSAGE_OVERHEAD_TOKENS for m in request.messages),
            self.count_tokens(content),
        )
        return Completion(
            text=content,
            finish_reason=finish if isinstance(finish, str) and finish else "stop",
            usage=usage,
            cached=False,
        )

    def _map_error(self, exc: Exception, meter: AttemptMeter) -> ModelError | None:
        """Our error for one of LiteLLM's (None: not LiteLLM's); charges the meter for
        an attempt that may have been billed."""
        e = self._litellm.exceptions
        where = f"{self._setting} (litellm:{self.model})"
        text = f"{where}: {type(exc).__name__}: {self._snippet(str(exc))}"
        transport = _in_chain(exc, httpx.TransportError)
        if transport is not None:  # LiteLLM calls some of these a 500: the cause says
            return _transport_error(transport, text, meter)
        if _in_chain(exc, json.JSONDecodeError) is not None:  # an HTTP 200 with no JSON
            meter.charge_failed(None, "unusable reply")
            return ModelResponseError(text)
        if isinstance(exc, e.Timeout):  # unknown cause: perhaps sent, perhaps billed
            meter.charge_failed(None, "timeout")
            return ModelTimeout(text)
        if isinstance(exc, e.RateLimitError):
            return ModelRateLimited(text, retry_after=_retry_after(exc))
        if isinstance(exc, e.APIConnectionError):
            meter.charge_failed(None, "connection lost")
            return ModelConnectionError(text)
        status = getattr(exc, "status_code", None)
        # LiteLLM raises a 403 from an OpenAI-compatible server as a plain APIError.
        if isinstance(exc, e.AuthenticationError | e.PermissionDeniedError) or status in (
            401,
            403,
        ):
            if self.base_url is not None and not self._named_key:
                text += (
                    f" (no API key was sent to {self.base_url}: name the environment "
                    f"variable holding its key, {self._setting}.api_key_env: NAME, or a "
                    f"file holding it, {self._setting}.api_key_file: PATH)"
                )
            return ModelAuthError(text)
        if isinstance(exc, e.ContextWindowExceededError):
            return ContextOverflow(text)
        if isinstance(exc, e.APIResponseValidationError):  # a 200 that was no reply
            meter.charge_failed(None, "unusable reply")
            return ModelResponseError(text)
        if isinstance(exc, e.BadRequestError | e.NotFoundError) or (
            isinstance(status, int) and 400 <= status < 500
        ):
            return ModelRequestError(text)
        if isinstance(status, int) and status >= 500:
            error = ModelServerError(text)
            error.retryable = status in RETRY_STATUSES
            return error
        if isinstance(exc, e.APIError | e.OpenAIError):
            return ModelServerError(text)
        return None

    def _snippet(self, text: str) -> str:
        text = self._redact(" ".join(text.split()))
        return text[:SNIPPET_CHARS] + "..." if len(text) > SNIPPET_CHARS else text

    def _redact(self, text: str) -> str:
        """`text` without the named key or any provider key in the environment."""
        secrets = {self._named_key} if self._named_key else set()
        secrets |= {
            v for k, v in os.environ.items() if k.upper().endswith(_SECRET_SUFFIXES) and len(v) >= 8
        }
        for secret in sorted(secrets, key=len, reverse=True):
            text = text.replace(secret, "[REDACTED]")
        return text

    def _table_context(self) -> int | None:
        """The model's input limit from LiteLLM's table, when it knows the model."""
        try:
            limit = self._litellm.get_model_info(self.model).get("max_input_tokens")
        except Exception:  # an unknown model: LiteLLM raises; the default holds
            return None
        return limit if isinstance(limit, int) and limit > 0 else None

    def _token_counter(self) -> TokenCounter:
        with self._counter_lock:
            if self._counter is None:
                self._counter = self._choose_counter()
            return self._counter

    def _choose_counter(self) -> TokenCounter:
        if self.base_url is None:
            return _LiteLLMCounter(self._litellm, self.model)
        # The server's own tokenizer, asked without any key (llm/tokens.py).
        self._tokenize_client = httpx.Client(follow_redirects=False)
        served = self.model.partition("/")[2] or self.model
        return choose_counter(
            "auto",
            base_url=self.base_url,
            model=served,
            client=self._tokenize_client,
            read=lambda response: read_body(response, 1024 * 1024),
            timeout=min(self._timeout, TOKENIZE_TIMEOUT),
        )


class _LiteLLMCounter:
    def __init__(self, litellm: Any, model: str) -> None:
        self._count = litellm.token_counter
        self._model = model
        try:
            kind = litellm.utils._select_tokenizer(model)["type"].replace("_", " ")
        except Exception:  # a private helper: only for the name
            kind = "its tokenizer for the model"
        self.name = f"litellm token_counter ({kind})"

    def count(self, text: str) -> int:
        return int(self._count(model=self._model, text=text)) if text else 0


def _usage(raw: Any) -> TokenUsage | None:
    """The usage a reply reports, or None when unknown. LiteLLM fills in zeros where
    the provider said nothing: no billed reply has no prompt tokens."""
    prompt = getattr(raw, "prompt_tokens", None)
    completion = getattr(raw, "completion_tokens", None)
    if type(prompt) is not int or type(completion) is not int or prompt < 0 or completion < 0:
        return None
    return TokenUsage(prompt, completion) if prompt or completion else None


def _in_chain(exc: BaseException, kind: type[E]) -> E | None:
    """The first exception of `kind` in `exc`'s chain of causes, or None."""
    seen: BaseException | None = exc
    for _ in range(12):
        if seen is None:
            return None
        if isinstance(seen, kind):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _transport_error(exc: httpx.TransportError, text: str, meter: AttemptMeter) -> ModelError:
    """As llm/http.py: a read timeout or a connection lost after the request was sent
    may have been billed; a connect error or timeout was not."""
    if isinstance(exc, httpx.TimeoutException):
        if isinstance(exc, httpx.ReadTimeout):
            meter.charge_failed(None, "timeout")
        return ModelTimeout(text)
    if isinstance(exc, httpx.ReadError | httpx.RemoteProtocolError):
        meter.charge_failed(None, "connection lost")
    return ModelConnectionError(text)


def _retry_after(exc: Exception) -> float | None:
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    value = headers.get("retry-after") if headers is not None else None
    try:
        return max(float(value), 0.0) if value else None
    except ValueError:
        return None
