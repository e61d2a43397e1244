"""A backend for any OpenAI-compatible chat endpoint (OpenAI, vLLM, Ollama, llama.cpp server).

Contracts:
- The API key is read once, at construction, from `api_key_env` (or given as
  `api_key`). Without `api_key_env`, a key is read only for the provider it belongs
  to: OPENAI_API_KEY when `base_url` is https://api.openai.com, none for any other
  host (`provider_key_env`). Without a key no Authorization header is sent (local
  servers), and a 401/403 says that no key was sent and how to name one. The key
  never appears in an exception message, a repr, a log record or `ModelInfo`.
- `complete` retries 429, 500/502/503/504, timeouts, dropped connections and
  unusable bodies (malformed JSON, no choices, null content) with capped
  exponential backoff and full jitter, `max_retries` times after the first
  attempt; then it raises the typed `ModelError` of the last failure. 401/403
  raise `ModelAuthError` and other 4xx `ModelRequestError` at once.
- Retrying stops early, with the last failure's typed error, when the next retry
  would start after the call's deadline (`promptascent.llm.deadline.call_deadline`,
  set by the caller from the run's time budget) or more than `max_retry_seconds`
  after the call began. The first attempt is always made; an attempt in flight is
  not cut short (so a call can end up to one `timeout` past its deadline).
- At most `max_concurrency` requests are in flight at once (the backoff sleep
  does not hold a slot).
"""

from __future__ import annotations

import email.utils
import logging
import os
import random
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

import httpx

from promptascent.errors import (
    ConfigError,
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
from promptascent.llm.deadline import current_deadline
from promptascent.llm.types import (
    Completion,
    CompletionRequest,
    LoglikRequest,
    LoglikResult,
    TokenUsage,
)

log = logging.getLogger(__name__)

BACKEND = "openai-compatible"
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
SNIPPET_CHARS = 200
# Chat templates wrap every message in a few special tokens; used only when the
# server reports no usage.
MESSAGE_OVERHEAD_TOKENS = 4
# The hosts whose own key a model may use without naming it: a key goes only to the
# provider it belongs to, never to another host by default.
PROVIDER_KEYS = {"api.openai.com": "OPENAI_API_KEY"}


def provider_key_env(base_url: str) -> str | None:
    """The environment variable holding the key of the provider at `base_url` (over
    https), or None for any other host. The host is read as httpx reads it, so
    "https://api.openai.com@other.host" is other.host."""
    try:
        url = httpx.URL(base_url)
    except (httpx.InvalidURL, TypeError):
        return None
    return PROVIDER_KEYS.get(url.host) if url.scheme == "https" else None


class OpenAICompatibleLLM:
    """Chat completions over HTTP at `{base_url}/chat/completions`
    (`base_url` like "http://127.0.0.1:8080/v1"). Thread-safe: one shared
    `httpx.Client`. `attempts` counts every HTTP attempt made (for tests)."""

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key_env: str | None = None,
        api_key: str | None = None,
        key_setting: str = "api_key_env",
        timeout: float = 60,
        max_concurrency: int = 4,
        max_retries: int = 5,
        backoff_base: float = 0.5,
        backoff_max: float = 30,
        max_retry_seconds: float | None = 120,
        context_length: int = 8192,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        base = base_url.rstrip("/")
        if not base.startswith(("http://", "https://")):
            raise ConfigError(f"base_url {base_url!r}: must start with http:// or https://")
        if not model:
            raise ConfigError(f"base_url {base}: model name is empty")
        if max_concurrency < 1:
            raise ConfigError(f"max_concurrency must be >= 1, got {max_concurrency}")
        if max_retries < 0:
            raise ConfigError(f"max_retries must be >= 0, got {max_retries}")
        if max_retry_seconds is not None and max_retry_seconds < 0:
            raise ConfigError(f"max_retry_seconds must be >= 0, got {max_retry_seconds}")
        self.base_url = base
        self.model = model
        self.url = f"{base}/chat/completions"
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.max_retry_seconds = max_retry_seconds
        self.attempts = 0
        env = api_key_env or provider_key_env(base)
        key = api_key if api_key is not None else (os.environ.get(env) if env else None)
        self._key = key or None
        self._key_setting = key_setting
        self._info = ModelInfo(
            model_id=f"{BACKEND}:{base}/{model}",
            backend=BACKEND,
            context_length=context_length,
            supports_loglik=False,
        )
        self._sleep = sleep
        self._rng = random.Random(os.urandom(16))
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(max_concurrency)
        headers = {"Authorization": f"Bearer {self._key}"} if self._key else {}
        self._client = httpx.Client(
            headers=headers,
            timeout=httpx.Timeout(timeout),
            transport=transport,
            follow_redirects=False,
        )

    def __repr__(self) -> str:
        keyed = "set" if self._key else "none"
        return f"OpenAICompatibleLLM(url={self.url!r}, model={self.model!r}, api_key={keyed})"

    @property
    def info(self) -> ModelInfo:
        return self._info

    # -- LLM protocol ----------------------------------------------------------

    def complete(self, request: CompletionRequest) -> Completion:
        """One chat completion (`cached=False`). Raises a `ModelError` subclass."""
        body = self._body(request)
        started = time.monotonic()
        last: ModelError | None = None
        for attempt in range(self.max_retries + 1):
            if attempt:
                assert last is not None
                delay = self._delay(attempt - 1, last)
                ended = self._retry_time_ended(started, delay)
                if ended:
                    raise _give_up(last, f"{ended} ended the retries after {attempt} attempts")
                log.debug("retrying %s in %.2fs after: %s", self.url, delay, last)
                self._sleep(delay)
            try:
                return self._attempt(request, body)
            except ModelError as exc:
                if not exc.retryable:
                    raise
                last = exc
        assert last is not None
        raise _give_up(last, f"gave up after {self.max_retries + 1} attempts")

    def count_tokens(self, text: str) -> int:
        """Upper bound: the UTF-8 byte length. Byte-level BPE tokenizers never make
        more tokens than bytes. Used only to reserve budget before a call; special
        tokens the chat template adds are not counted here."""
        return len(text.encode("utf-8"))

    def loglik(self, request: LoglikRequest) -> LoglikResult:
        raise NotSupported(
            f"{BACKEND} backend ({self.base_url}) cannot score log-likelihoods; "
            "use the embedded backend"
        )

    def close(self) -> None:
        """Closes the HTTP client. Idempotent."""
        self._client.close()

    def __enter__(self) -> OpenAICompatibleLLM:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- internals -------------------------------------------------------------

    def _body(self, request: CompletionRequest) -> dict[str, Any]:
        # `max_tokens`, not `max_completion_tokens`: llama.cpp server ignores the latter.
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [m.to_dict() for m in request.messages],
            "temperature": request.temperature,
            "max_tokens": request.max_tokens,
            "top_p": request.top_p,
        }
        if request.stop:
            body["stop"] = list(request.stop)
        if request.seed is not None:
            body["seed"] = request.seed + request.sample_index
        return body

    def _attempt(self, request: CompletionRequest, body: dict[str, Any]) -> Completion:
        where = f"POST {self.url}"
        with self._slots:
            with self._lock:
                self.attempts += 1
            try:
                response = self._client.post(self.url, json=body)
            except httpx.TimeoutException as exc:
                raise ModelTimeout(
                    self._redact(f"{where}: timed out ({type(exc).__name__})")
                ) from None
            except (httpx.UnsupportedProtocol, httpx.LocalProtocolError) as exc:
                raise ModelRequestError(
                    self._redact(f"{where}: {type(exc).__name__}: {exc}")
                ) from None
            except httpx.TransportError as exc:
                raise ModelConnectionError(
                    self._redact(f"{where}: connection failed ({type(exc).__name__}: {exc})")
                ) from None
        return self._parse(request, response, where)

    def _parse(
        self, request: CompletionRequest, response: httpx.Response, where: str
    ) -> Completion:
        status = response.status_code
        if status != 200:
            self._raise_status(response, where)
        try:
            data = response.json()
        except ValueError:  # JSONDecodeError and UnicodeDecodeError
            raise ModelResponseError(
                self._redact(f"{where}: HTTP 200 but malformed JSON: {self._snippet(response)}")
            ) from None
        choice = _first_choice(data)
        if choice is None:
            raise ModelResponseError(
                self._redact(f"{where}: HTTP 200 but no choices: {self._snippet(response)}")
            )
        message = choice.get("message")
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, str):
            raise ModelResponseError(
                self._redact(f"{where}: HTTP 200 but no message content: {self._snippet(response)}")
            )
        finish = choice.get("finish_reason")
        usage = _usage(data.get("usage"))
        if usage is None:
            prompt = sum(
                self.count_tokens(m.content) + MESSAGE_OVERHEAD_TOKENS for m in request.messages
            )
            usage = TokenUsage(prompt, self.count_tokens(content))
        return Completion(
            text=content,
            finish_reason=finish if isinstance(finish, str) and finish else "stop",
            usage=usage,
            cached=False,
        )

    def _raise_status(self, response: httpx.Response, where: str) -> None:
        status = response.status_code
        msg = self._redact(f"{where}: HTTP {status}: {self._snippet(response)}")
        if status == 429:
            raise ModelRateLimited(msg, retry_after=_retry_after(response))
        if status in (401, 403):
            if not self._key:
                msg += (
                    f" (no API key was sent to {self.base_url}: name the environment "
                    f"variable holding its key, {self._key_setting}: NAME, or a file "
                    "holding it, api_key_file: PATH)"
                )
            raise ModelAuthError(msg)
        if status in RETRY_STATUSES:
            raise ModelServerError(msg)
        if status >= 500:
            error = ModelServerError(msg)
            error.retryable = False  # 501, 505, ...: retrying will not help
            raise error
        raise ModelRequestError(msg)

    def _delay(self, retry: int, error: ModelError) -> float:
        """Server's Retry-After when given (capped), else full-jitter backoff."""
        if isinstance(error, ModelRateLimited) and error.retry_after is not None:
            return min(max(error.retry_after, 0.0), self.backoff_max)
        cap = min(self.backoff_max, self.backoff_base * (2**retry))
        with self._lock:
            return self._rng.uniform(0.0, cap)

    def _retry_time_ended(self, started: float, delay: float) -> str | None:
        """Why a retry starting `delay` s from now must not be made, or None."""
        now = time.monotonic()
        deadline = current_deadline()
        if deadline is not None and now + delay >= deadline:
            left = max(deadline - now, 0.0)
            return f"the time budget ({left:.2f}s left, next retry in {delay:.2f}s)"
        limit = self.max_retry_seconds
        if limit is not None and now + delay - started > limit:
            return f"max_retry_seconds={limit:g}"
        return None

    def _snippet(self, response: httpx.Response) -> str:
        try:
            text = response.text
        except Exception:  # undecodable body: show nothing rather than fail
            text = ""
        text = self._redact(" ".join(text.split()))
        if len(text) > SNIPPET_CHARS:
            text = text[:SNIPPET_CHARS] + "..."
        return repr(text) if text else "(empty body)"

    def _redact(self, text: str) -> str:
        return text.replace(self._key, "[REDACTED]") if self._key else text


def _give_up(last: ModelError, why: str) -> ModelError:
    """The last failure's type (and Retry-After) with `why` appended to its message."""
    msg = f"{last} ({why})"
    error = (
        ModelRateLimited(msg, retry_after=last.retry_after)
        if isinstance(last, ModelRateLimited)
        else type(last)(msg)
    )
    error.__cause__ = last
    return error


def _first_choice(data: object) -> dict[str, Any] | None:
    if not isinstance(data, dict):
        return None
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return None
    return choices[0]


def _usage(raw: object) -> TokenUsage | None:
    if not isinstance(raw, dict):
        return None
    prompt, completion = raw.get("prompt_tokens"), raw.get("completion_tokens")
    if not isinstance(prompt, int) or not isinstance(completion, int):
        return None
    return TokenUsage(prompt, completion)


def _retry_after(response: httpx.Response) -> float | None:
    """Retry-After as seconds (delta-seconds or HTTP-date), or None if absent/bad."""
    value = response.headers.get("retry-after")
    if not value:
        return None
    value = value.strip()
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - datetime.now(UTC)).total_seconds(), 0.0)
