"""OpenAICompatibleLLM: request shape, auth, retries, errors, concurrency (MockTransport),
and a real llama.cpp server (marked `server`)."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest

from promptascent.errors import (
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
from promptascent.llm.base import LLM
from promptascent.llm.http import OpenAICompatibleLLM
from promptascent.llm.types import CompletionRequest, LoglikRequest, messages

BASE = "http://mock.test/v1"
URL = f"{BASE}/chat/completions"
SECRET = "sk-FAKE-c0ffee-SECRET-42"
Handler = Callable[[httpx.Request], httpx.Response]


def ok(text: str = "hi", finish: str = "stop", usage: bool = True) -> httpx.Response:
    body: dict[str, Any] = {
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}
        ]
    }
    if usage:
        body["usage"] = {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}
    return httpx.Response(200, json=body)


def req(**kw: Any) -> CompletionRequest:
    return CompletionRequest(messages=messages(("system", "Be brief."), ("user", "Hello?")), **kw)


class Recorder:
    """A MockTransport handler that replays `responses` in order (the last one repeats)
    and records every request."""

    def __init__(self, *responses: httpx.Response | Exception | Handler) -> None:
        self.responses = list(responses)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        item = self.responses[min(len(self.requests), len(self.responses)) - 1]
        if isinstance(item, Exception):
            raise item
        if isinstance(item, httpx.Response):
            return item
        return item(request)

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(r.content) for r in self.requests]


def make(handler: Handler, *, delays: list[float] | None = None, **kw: Any) -> OpenAICompatibleLLM:
    kw.setdefault("api_key_env", None)
    sink = delays if delays is not None else []
    return OpenAICompatibleLLM(
        BASE + "/", "my-model", transport=httpx.MockTransport(handler), sleep=sink.append, **kw
    )


# -- request shape and auth ------------------------------------------------------


def test_request_body_fields() -> None:
    rec = Recorder(ok())
    llm = make(rec)
    llm.complete(req(temperature=0.7, max_tokens=33, top_p=0.9, seed=10, sample_index=3))
    llm.complete(req(stop=("\n", "END")))
    first, second = rec.bodies()
    assert rec.requests[0].url == URL and rec.requests[0].method == "POST"
    assert first == {
        "model": "my-model",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hello?"},
        ],
        "temperature": 0.7,
        "max_tokens": 33,
        "top_p": 0.9,
        "seed": 13,
    }
    assert "max_completion_tokens" not in first and "stop" not in first
    assert second["stop"] == ["\n", "END"] and "seed" not in second
    assert second["max_tokens"] == 256


def test_seed_unchanged_for_sample_zero() -> None:
    rec = Recorder(ok())
    make(rec).complete(req(seed=7))
    assert rec.bodies()[0]["seed"] == 7


def test_parses_completion_and_usage() -> None:
    llm = make(Recorder(ok("Paris", "length")))
    c = llm.complete(req())
    assert (c.text, c.finish_reason, c.usage.prompt_tokens, c.usage.completion_tokens) == (
        "Paris",
        "length",
        12,
        3,
    )
    assert c.cached is False


def test_missing_usage_falls_back_to_estimates() -> None:
    llm = make(Recorder(ok("abc", usage=False)), tokenizer="bytes")
    c = llm.complete(req())
    assert c.usage.completion_tokens == 3  # byte length of "abc"
    assert c.usage.prompt_tokens >= len("Be brief.") + len("Hello?")


def test_authorization_header_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_TEST_KEY", SECRET)
    rec = Recorder(ok())
    make(rec, api_key_env="MY_TEST_KEY").complete(req())
    assert rec.requests[0].headers["authorization"] == f"Bearer {SECRET}"


def test_no_authorization_header_without_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    rec = Recorder(ok())
    make(rec, api_key_env="OPENAI_API_KEY").complete(req())
    make(rec, api_key_env=None).complete(req())
    assert all("authorization" not in r.headers for r in rec.requests)


def test_key_never_in_errors_repr_info_or_logs(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("MY_TEST_KEY", SECRET)

    def echo(status: int) -> Handler:
        # A hostile server that echoes the Authorization header into its error body.
        def handler(request: httpx.Request) -> httpx.Response:
            return httpx.Response(status, text=f"bad key {request.headers['authorization']}")

        return handler

    errors: list[BaseException] = []
    caplog.set_level(logging.DEBUG)
    for status in (400, 401, 403, 404, 422, 429, 500, 503):
        llm = make(echo(status), api_key_env="MY_TEST_KEY", max_retries=1)
        with pytest.raises(ModelError) as info:
            llm.complete(req())
        errors.append(info.value)
        assert SECRET not in repr(llm) and SECRET not in repr(llm.info)
    malformed = make(
        Recorder(httpx.Response(200, text=f"{{oops {SECRET}")), api_key_env="MY_TEST_KEY"
    )
    with pytest.raises(ModelResponseError) as info:
        malformed.complete(req())
    errors.append(info.value)
    for err in errors:
        chain = [err, err.__cause__, err.__context__]
        assert all(SECRET not in str(e) and SECRET not in repr(e) for e in chain if e)
        assert "[REDACTED]" in str(err)
        assert URL in str(err)
    assert all(SECRET not in r.getMessage() for r in caplog.records)


# -- retries -------------------------------------------------------------------


def test_429_retry_after_seconds_honoured() -> None:
    delays: list[float] = []
    rec = Recorder(httpx.Response(429, headers={"Retry-After": "2"}, text="slow down"), ok())
    rec.responses.append(ok())
    llm = make(rec, delays=delays)
    assert llm.complete(req()).text == "hi"
    assert delays == [2.0] and llm.attempts == 2


def test_429_retry_after_http_date_and_cap() -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=20), usegmt=True)
    delays: list[float] = []
    rec = Recorder(
        httpx.Response(429, headers={"Retry-After": when}),
        httpx.Response(429, headers={"Retry-After": "3600"}),
        ok(),
    )
    make(rec, delays=delays, backoff_max=30).complete(req())
    assert 15 <= delays[0] <= 20
    assert delays[1] == 30  # capped at backoff_max


def test_503_then_success() -> None:
    delays: list[float] = []
    rec = Recorder(httpx.Response(503, text="loading"), ok("done"))
    llm = make(rec, delays=delays, backoff_base=0.5)
    assert llm.complete(req()).text == "done"
    assert llm.attempts == 2 and len(delays) == 1 and 0 <= delays[0] <= 0.5


@pytest.mark.parametrize(
    ("response", "error"),
    [
        (httpx.Response(503, text="overloaded"), ModelServerError),
        (httpx.Response(500), ModelServerError),
        (httpx.Response(502), ModelServerError),
        (httpx.Response(504), ModelServerError),
        (httpx.Response(429, text="quota"), ModelRateLimited),
        (httpx.Response(200, text="not json"), ModelResponseError),
    ],
)
def test_gives_up_after_max_retries(response: httpx.Response, error: type[ModelError]) -> None:
    delays: list[float] = []
    llm = make(Recorder(response), delays=delays, max_retries=3, backoff_base=1, backoff_max=3)
    with pytest.raises(error) as info:
        llm.complete(req())
    assert llm.attempts == 4 and len(delays) == 3
    assert all(0 <= d <= cap for d, cap in zip(delays, (1, 2, 3), strict=True))
    msg = str(info.value)
    assert URL in msg and "4 attempts" in msg
    if response.status_code != 200:
        assert f"HTTP {response.status_code}" in msg


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (401, ModelAuthError),
        (403, ModelAuthError),
        (400, ModelRequestError),
        (404, ModelRequestError),
        (422, ModelRequestError),
        (501, ModelServerError),
    ],
)
def test_no_retry_on_client_errors(status: int, error: type[ModelError]) -> None:
    delays: list[float] = []
    llm = make(Recorder(httpx.Response(status, json={"error": "nope"})), delays=delays)
    with pytest.raises(error) as info:
        llm.complete(req())
    assert llm.attempts == 1 and delays == []
    assert URL in str(info.value) and f"HTTP {status}" in str(info.value)
    assert "nope" in str(info.value)


def test_error_body_snippet_is_truncated() -> None:
    llm = make(Recorder(httpx.Response(400, text="x" * 5000)))
    with pytest.raises(ModelRequestError) as info:
        llm.complete(req())
    assert len(str(info.value)) < 400


@pytest.mark.parametrize(
    "bad",
    [
        httpx.Response(200, text="{not json"),
        httpx.Response(200, json={"choices": []}),
        httpx.Response(200, json={"object": "chat.completion"}),
        httpx.Response(200, json={"choices": [{"message": {"content": None}}]}),
        httpx.Response(200, json=["not", "an", "object"]),
    ],
    ids=["malformed", "empty-choices", "no-choices", "null-content", "not-object"],
)
def test_unusable_body_retried(bad: httpx.Response) -> None:
    llm = make(Recorder(bad, ok("fine")))
    assert llm.complete(req()).text == "fine"
    assert llm.attempts == 2


def test_timeout_retried_then_typed_error() -> None:
    request = httpx.Request("POST", URL)
    llm = make(Recorder(httpx.ReadTimeout("slow", request=request), ok("late")))
    assert llm.complete(req()).text == "late"
    assert llm.attempts == 2
    llm = make(Recorder(httpx.ReadTimeout("slow", request=request)), max_retries=2)
    with pytest.raises(ModelTimeout, match=r"mock\.test"):
        llm.complete(req())
    assert llm.attempts == 3


def test_connection_errors_retried_then_typed_error() -> None:
    request = httpx.Request("POST", URL)
    llm = make(
        Recorder(
            httpx.ConnectError("refused", request=request),
            httpx.RemoteProtocolError("dropped", request=request),
            ok("back"),
        )
    )
    assert llm.complete(req()).text == "back"
    llm = make(Recorder(httpx.ReadError("reset", request=request)), max_retries=1)
    with pytest.raises(ModelConnectionError, match=r"mock\.test"):
        llm.complete(req())
    assert llm.attempts == 2


def test_concurrency_bound_respected() -> None:
    lock = threading.Lock()
    state = {"now": 0, "peak": 0}

    def slow(request: httpx.Request) -> httpx.Response:
        with lock:
            state["now"] += 1
            state["peak"] = max(state["peak"], state["now"])
        time.sleep(0.05)
        with lock:
            state["now"] -= 1
        return ok()

    llm = make(Recorder(slow), max_concurrency=3)
    threads = [threading.Thread(target=llm.complete, args=(req(),)) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert state["peak"] == 3 and llm.attempts == 12


# -- protocol surface ------------------------------------------------------------


def test_info_count_tokens_loglik_close(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    llm = OpenAICompatibleLLM(
        BASE + "/",
        "m1",
        context_length=4096,
        tokenizer="bytes",
        transport=httpx.MockTransport(Recorder(ok())),
    )
    assert isinstance(llm, LLM)
    assert llm.info.model_id == "openai-compatible:http://mock.test/v1/m1"
    assert llm.info.context_length == 4096 and not llm.info.supports_loglik
    assert llm.count_tokens("héllo") == 6 and llm.count_tokens("") == 0
    with pytest.raises(NotSupported, match="openai-compatible"):
        llm.loglik(LoglikRequest(messages=req().messages, continuations=("a",)))
    assert SECRET not in repr(llm) and SECRET not in repr(llm.info)
    llm.close()
    llm.close()


# -- a real llama.cpp server -------------------------------------------------------


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    pytest.importorskip("llama_cpp.server", reason="llama-cpp-python[server] is not installed")
    from llm_server import llama_server

    from promptascent.llm.model_files import default_model_path

    with llama_server(default_model_path()) as url:
        yield url


@pytest.fixture()
def local(server_url: str) -> Iterator[OpenAICompatibleLLM]:
    llm = OpenAICompatibleLLM(
        server_url, "local", api_key_env=None, max_concurrency=1, context_length=2048, timeout=120
    )
    yield llm
    llm.close()


def _ask(max_tokens: int = 24) -> CompletionRequest:
    return CompletionRequest(
        messages=messages(("user", "What is the capital of France? Answer in one word.")),
        temperature=0.0,
        max_tokens=max_tokens,
    )


@pytest.mark.server
def test_server_completion_with_usage(local: OpenAICompatibleLLM) -> None:
    c = local.complete(_ask())
    assert c.text.strip()
    assert c.usage.prompt_tokens > 0 and c.usage.completion_tokens > 0
    assert c.finish_reason in ("stop", "length")


@pytest.mark.server
def test_server_deterministic_at_temperature_zero(local: OpenAICompatibleLLM) -> None:
    assert local.complete(_ask()).text == local.complete(_ask()).text


@pytest.mark.server
def test_server_finish_reason_length(local: OpenAICompatibleLLM) -> None:
    c = local.complete(
        CompletionRequest(
            messages=messages(("user", "Write a long story about a dragon.")), max_tokens=3
        )
    )
    assert c.finish_reason == "length"
    assert c.usage.completion_tokens == 3


@pytest.mark.server
def test_server_wrong_port_is_connection_error(server_url: str) -> None:
    from llm_server import free_port

    bad = f"http://127.0.0.1:{free_port()}/v1"
    llm = OpenAICompatibleLLM(
        bad, "local", api_key_env=None, max_retries=2, backoff_base=0.01, timeout=5
    )
    with pytest.raises(ModelConnectionError) as info:
        llm.complete(_ask())
    assert f"{bad}/chat/completions" in str(info.value) and "3 attempts" in str(info.value)
    assert llm.attempts == 3
    llm.close()
