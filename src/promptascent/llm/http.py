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
- Every attempt that may have been billed and gave no usable reply is charged to
  the attempt meter in force (llm/metering.py): a read timeout, a connection lost
  after the request was sent, an HTTP 200 whose body is unusable or too large (at
  the usage it reports, else at the call's worst case). A reply with an error status
  (429, 4xx, 5xx) and a request that never reached the server (connect errors and
  timeouts) are taken as not billed. Each retry first reserves its own worst case
  (`before_retry`); when that might not fit the budget the retry is not made and
  `BudgetExhausted` is raised.
- A response body is read as it streams and decoded (gzip, deflate) with a limit,
  `max_response_bytes` (default 8 MiB) after decoding: a larger reply is a
  `ModelResponseError` at once (not retried, never returned, so never journaled or
  cached).
- Tokens are counted with the tokenizer the spec chooses (llm/tokens.py).
"""

from __future__ import annotations

import email.utils
import json
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
from promptascent.llm.http_body import (
    ACCEPT_ENCODING,
    BodyTooLarge,
    BodyUndecodable,
    read_body,
    read_prefix,
)
from promptascent.llm.metering import AttemptMeter, current_attempt_meter
from promptascent.llm.tokens import TOKENIZERS, TokenCounter, choose_counter
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


# What a chat template may add to a request beyond the client's 8 tokens per message
# (a default system prompt, the assistant's header), reserved with every call: SmolLM2's
# template adds 30 tokens to a lone user message (measured on llama-cpp-python's server).
TEMPLATE_TOKENS = 32
DEFAULT_MAX_RESPONSE_BYTES = 8 * 1024 * 1024
ERROR_BODY_BYTES = 64 * 1024  # read of an error reply, for its message
TOKENIZE_TIMEOUT = 10.0


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
        tokenizer: str = "auto",
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
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
        if tokenizer not in TOKENIZERS:
            raise ConfigError(f"tokenizer {tokenizer!r}: use one of {', '.join(TOKENIZERS)}")
        if max_response_bytes < 1024:
            raise ConfigError(f"max_response_bytes must be >= 1024, got {max_response_bytes}")
        self.base_url = base
        self.model = model
        self.url = f"{base}/chat/completions"
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.max_retry_seconds = max_retry_seconds
        self.max_response_bytes = max_response_bytes
        self.attempts = 0
        self._tokenizer_mode = tokenizer
        self._counter: TokenCounter | None = None
        self._counter_lock = threading.Lock()
        self._timeout = timeout
        env = api_key_env or provider_key_env(base)
        key = api_key if api_key is not None else (os.environ.get(env) if env else None)
        self._key = key or None
        self._key_setting = key_setting
        self._info = ModelInfo(
            model_id=f"{BACKEND}:{base}/{model}",
            backend=BACKEND,
            context_length=context_length,
            supports_loglik=False,
            template_tokens=TEMPLATE_TOKENS,
        )
        self._sleep = sleep
        self._rng = random.Random(os.urandom(16))
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(max_concurrency)
        # Only encodings decoded here, under the response limit (llm/http_body.py).
        headers = {"Accept-Encoding": ACCEPT_ENCODING}
        if self._key:
            headers["Authorization"] = f"Bearer {self._key}"
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
        """One chat completion (`cached=False`). Raises a `ModelError` subclass, or
        `BudgetExhausted` when the attempt meter refuses a retry."""
        body = self._body(request)
        meter = current_attempt_meter()
        started = time.monotonic()
        last: ModelError | None = None
        for attempt in range(self.max_retries + 1):
            if attempt:
                assert last is not None
                delay = self._delay(attempt - 1, last)
                ended = self._retry_time_ended(started, delay)
                if ended:
                    raise _give_up(last, f"{ended} ended the retries after {attempt} attempts")
                meter.before_retry()  # a retry that might not fit the budget is not made
                log.debug("retrying %s in %.2fs after: %s", self.url, delay, last)
                self._sleep(delay)
            try:
                return self._attempt(request, body, meter)
            except ModelError as exc:
                if not exc.retryable:
                    raise
                last = exc
        assert last is not None
        raise _give_up(last, f"gave up after {self.max_retries + 1} attempts")

    def count_tokens(self, text: str) -> int:
        """The text's tokens by the chosen tokenizer (llm/tokens.py): exact with the
        server's endpoint or tiktoken, an upper bound in bytes otherwise. Special tokens
        the chat template adds are not counted here (see `ModelInfo.template_tokens`)."""
        return self._token_counter().count(text)

    @property
    def tokenizer(self) -> str:
        """Which tokenizer counts this model's tokens (probed on first use)."""
        return self._token_counter().name

    def _token_counter(self) -> TokenCounter:
        with self._counter_lock:
            if self._counter is None:
                self._counter = choose_counter(
                    self._tokenizer_mode,
                    base_url=self.base_url,
                    model=self.model,
                    client=self._client,
                    read=lambda response: read_body(response, self.max_response_bytes),
                    timeout=min(self._timeout, TOKENIZE_TIMEOUT),
                )
            return self._counter

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

    def _attempt(
        self, request: CompletionRequest, body: dict[str, Any], meter: AttemptMeter
    ) -> Completion:
        where = f"POST {self.url}"
        with self._slots:
            with self._lock:
                self.attempts += 1
            try:
                with self._client.stream("POST", self.url, json=body) as response:
                    status, headers = response.status_code, response.headers
                    if status == 200:
                        data = read_body(response, self.max_response_bytes)
                    else:
                        data = read_prefix(response, ERROR_BODY_BYTES)
            except httpx.TimeoutException as exc:
                if isinstance(exc, httpx.ReadTimeout):  # sent, and perhaps answered
                    meter.charge_failed(None, "timeout")
                raise ModelTimeout(
                    self._redact(f"{where}: timed out ({type(exc).__name__})")
                ) from None
            except (httpx.UnsupportedProtocol, httpx.LocalProtocolError) as exc:
                raise ModelRequestError(
                    self._redact(f"{where}: {type(exc).__name__}: {exc}")
                ) from None
            except httpx.TransportError as exc:
                if isinstance(exc, httpx.ReadError | httpx.RemoteProtocolError):
                    meter.charge_failed(None, "connection lost")  # after the request went
                raise ModelConnectionError(
                    self._redact(f"{where}: connection failed ({type(exc).__name__}: {exc})")
                ) from None
            except BodyTooLarge as exc:
                meter.charge_failed(None, "reply too large")
                error = ModelResponseError(
                    f"{where}: HTTP 200 but the reply is larger than "
                    f"{exc.limit} bytes (max_response_bytes)"
                )
                error.retryable = False  # the same request would get the same reply
                raise error from None
            except BodyUndecodable as exc:
                meter.charge_failed(None, "unusable reply")
                raise ModelResponseError(self._redact(f"{where}: HTTP 200 but {exc}")) from None
        if status != 200:
            self._raise_status(status, headers, data, where)
        return self._parse(request, data, where, meter)

    def _parse(
        self, request: CompletionRequest, raw: bytes, where: str, meter: AttemptMeter
    ) -> Completion:
        try:
            data = json.loads(raw)
        except ValueError:  # JSONDecodeError and UnicodeDecodeError
            meter.charge_failed(None, "unusable reply")
            raise ModelResponseError(
                self._redact(f"{where}: HTTP 200 but malformed JSON: {self._snippet(raw)}")
            ) from None
        reported = _usage(data.get("usage")) if isinstance(data, dict) else None
        choice = _first_choice(data)
        if choice is None:
            meter.charge_failed(reported, "unusable reply")
            raise ModelResponseError(
                self._redact(f"{where}: HTTP 200 but no choices: {self._snippet(raw)}")
            )
        message = choice.get("message")
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, str):
            meter.charge_failed(reported, "unusable reply")
            raise ModelResponseError(
                self._redact(f"{where}: HTTP 200 but no message content: {self._snippet(raw)}")
            )
        if not _encodable(content):  # JSON may escape a lone surrogate: not text
            meter.charge_failed(reported, "unusable reply")
            raise ModelResponseError(f"{where}: HTTP 200 but the reply is not valid Unicode text")
        finish = choice.get("finish_reason")
        usage = reported
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

    def _raise_status(self, status: int, headers: httpx.Headers, body: bytes, where: str) -> None:
        msg = self._redact(f"{where}: HTTP {status}: {self._snippet(body)}")
        if status == 429:
            raise ModelRateLimited(msg, retry_after=_retry_after(headers))
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

    def _snippet(self, body: bytes) -> str:
        text = body.decode("utf-8", "replace")
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


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


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
    if type(prompt) is not int or type(completion) is not int or prompt < 0 or completion < 0:
        return None  # not a count: unknown usage (the call's worst case where it is charged)
    return TokenUsage(prompt, completion)


def _retry_after(headers: httpx.Headers) -> float | None:
    """Retry-After as seconds (delta-seconds or HTTP-date), or None if absent/bad."""
    value = headers.get("retry-after")
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
