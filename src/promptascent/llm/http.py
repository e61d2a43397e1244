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
import os
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, TypeVar

import httpx

from promptascent.errors import (
    ConfigError,
    ModelAuthError,
    ModelConnectionError,
    ModelRateLimited,
    ModelRequestError,
    ModelResponseError,
    ModelServerError,
    ModelTimeout,
    NotSupported,
)
from promptascent.llm.base import ModelInfo
from promptascent.llm.chat_template import ChatTemplate
from promptascent.llm.http_body import (
    ACCEPT_ENCODING,
    BodyTooLarge,
    BodyUndecodable,
    read_body,
    read_prefix,
)
from promptascent.llm.http_loglik import (
    LOGLIK_MODES,
    echo_body,
    first_token_body,
    parse_echo,
    parse_first_token,
)
from promptascent.llm.metering import AttemptMeter
from promptascent.llm.retry import Retries
from promptascent.llm.tokens import TOKENIZERS, TokenCounter, choose_counter
from promptascent.llm.types import (
    Completion,
    CompletionRequest,
    LoglikRequest,
    LoglikResult,
    TokenUsage,
)

T = TypeVar("T")
# Reads an HTTP 200 body (bytes) into a result; charges the meter for an unusable one.
Parse = Callable[[bytes, str, AttemptMeter], T]

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
        loglik: str = "none",
        chat_template: ChatTemplate | None = None,
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
        if tokenizer not in TOKENIZERS:
            raise ConfigError(f"tokenizer {tokenizer!r}: use one of {', '.join(TOKENIZERS)}")
        if loglik not in LOGLIK_MODES:
            raise ConfigError(f"loglik {loglik!r}: use one of {', '.join(LOGLIK_MODES)}")
        if max_response_bytes < 1024:
            raise ConfigError(f"max_response_bytes must be >= 1024, got {max_response_bytes}")
        self.base_url = base
        self.model = model
        self.url = f"{base}/chat/completions"
        self._retries = Retries(
            max_retries=max_retries,
            backoff_base=backoff_base,
            backoff_max=backoff_max,
            max_retry_seconds=max_retry_seconds,
            sleep=sleep,
        )
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
            supports_loglik=loglik != "none",
            template_tokens=TEMPLATE_TOKENS,
            loglik_repeats_prompt=loglik == "echo",
            loglik_first_token=loglik == "first-token",
        )
        self._loglik = loglik
        self._chat_template = chat_template or ChatTemplate.load("chatml")
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
        return self._with_retries(
            self.url,
            request.chat_fields(self.model),
            lambda raw, where, meter: self._parse(request, raw, where, meter),
        )

    def _with_retries(self, url: str, body: dict[str, Any], parse: Parse[T]) -> T:
        """POSTs `body` to `url` and reads the reply with `parse`, retrying as the
        module docstring says (llm/retry.py); each retry asks the attempt meter first."""
        return self._retries.run(lambda meter: self._attempt(url, body, meter, parse), url)

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
        """Log-likelihoods of the continuations (llm/http_loglik.py): "echo" sends one
        completions request per continuation, "first-token" one chat request in all.
        Raises NotSupported when the model's spec names no way (`loglik: none`)."""
        if self._loglik == "echo":
            return self._loglik_echo(request)
        if self._loglik == "first-token":
            return self._loglik_first_token(request)
        raise NotSupported(
            f"{BACKEND} backend ({self.base_url}) scores no continuations: set its "
            "`loglik: echo` (llama.cpp server, vLLM) or `loglik: first-token` (OpenAI)"
        )

    def _loglik_echo(self, request: LoglikRequest) -> LoglikResult:
        url = f"{self.base_url}/completions"
        prompt = self._chat_template.render(request.messages)
        logprobs: list[float] = []
        counts: list[int] = []
        billed = TokenUsage()
        for text in request.continuations:

            def parse(
                raw: bytes, where: str, meter: AttemptMeter, text: str = text
            ) -> tuple[float, int, TokenUsage | None]:
                data = self._json(raw, where, meter)
                try:
                    value, n = parse_echo(data, text, where)
                except ModelResponseError:
                    meter.charge_failed(_usage(data.get("usage")), "unusable reply")
                    raise
                return value, n, _usage(data.get("usage"))

            value, n, reported = self._with_retries(
                url, echo_body(self.model, prompt + text), parse
            )
            logprobs.append(value)
            counts.append(n)
            used = reported or TokenUsage(self.count_tokens(prompt + text), 1)
            billed = TokenUsage(
                billed.prompt_tokens + used.prompt_tokens,
                billed.completion_tokens + used.completion_tokens,
            )
        return LoglikResult(tuple(logprobs), tuple(counts), billed)

    def _loglik_first_token(self, request: LoglikRequest) -> LoglikResult:
        choices = request.continuations

        def parse(
            raw: bytes, where: str, meter: AttemptMeter
        ) -> tuple[list[float], bool, TokenUsage | None]:
            data = self._json(raw, where, meter)
            try:
                values, missing = parse_first_token(data, choices, where)
            except ModelResponseError:
                meter.charge_failed(_usage(data.get("usage")), "unusable reply")
                raise
            return values, missing, _usage(data.get("usage"))

        body = first_token_body(self.model, [m.to_dict() for m in request.messages])
        values, _, reported = self._with_retries(self.url, body, parse)
        usage = reported or TokenUsage(
            sum(self.count_tokens(m.content) + MESSAGE_OVERHEAD_TOKENS for m in request.messages),
            1,
        )
        return LoglikResult(tuple(values), tuple(1 for _ in choices), usage, approximate=True)

    def _json(self, raw: bytes, where: str, meter: AttemptMeter) -> dict[str, Any]:
        """The reply as a JSON object; an unusable reply is charged and raised."""
        try:
            data = json.loads(raw)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            meter.charge_failed(None, "unusable reply")
            raise ModelResponseError(
                self._redact(f"{where}: HTTP 200 but not a JSON object: {self._snippet(raw)}")
            )
        return data

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

    def _attempt(self, url: str, body: dict[str, Any], meter: AttemptMeter, parse: Parse[T]) -> T:
        where = f"POST {url}"
        with self._slots:
            with self._lock:
                self.attempts += 1
            try:
                with self._client.stream("POST", url, json=body) as response:
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
        return parse(data, where, meter)

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

    def _snippet(self, body: bytes) -> str:
        text = body.decode("utf-8", "replace")
        text = self._redact(" ".join(text.split()))
        if len(text) > SNIPPET_CHARS:
            text = text[:SNIPPET_CHARS] + "..."
        return repr(text) if text else "(empty body)"

    def _redact(self, text: str) -> str:
        return text.replace(self._key, "[REDACTED]") if self._key else text


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
