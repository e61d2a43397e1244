"""OpenAICompatibleLLM against a real fault-injecting server over real sockets:
retries, Retry-After, typed errors, key secrecy, nothing cached on failure, and the
time budget (call deadline, max_retry_seconds) bounding the retries."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fault_server import FAULTS, FaultServer, fault_server, gzip_bomb

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
)
from promptascent.llm.budget import Budget, BudgetGuard
from promptascent.llm.cache import ResponseCache
from promptascent.llm.client import ModelClient
from promptascent.llm.deadline import call_deadline, current_deadline, time_left
from promptascent.llm.http import OpenAICompatibleLLM
from promptascent.llm.types import CompletionRequest, messages
from promptascent.llm.usage import UsageMeter

KEY_ENV = "PROMPTASCENT_FAULT_TEST_KEY"
SECRET = "sk-FAULTTEST-7e57-b00b-SECRET-1234"
MODEL = "fault-model"
TIMEOUT = 0.5  # client timeout; "hang" waits longer


class Sleeps:
    """A `sleep` for the backend that records each delay (and really sleeps unless `real=False`)."""

    def __init__(self, *, real: bool = True) -> None:
        self.delays: list[float] = []
        self.real = real

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        if self.real:
            time.sleep(seconds)


@pytest.fixture()
def srv() -> Iterator[FaultServer]:
    with fault_server(hang_seconds=1.5) as server:
        yield server


@pytest.fixture(autouse=True)
def api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, SECRET)


def make(server: FaultServer, sleeps: Sleeps | None = None, **kw: Any) -> OpenAICompatibleLLM:
    kw.setdefault("timeout", TIMEOUT)
    kw.setdefault("max_retries", 2)
    kw.setdefault("backoff_base", 0.01)
    kw.setdefault("backoff_max", 0.05)
    return OpenAICompatibleLLM(
        server.base_url, MODEL, api_key_env=KEY_ENV, sleep=sleeps or Sleeps(), **kw
    )


def req(text: str = "Hello?") -> CompletionRequest:
    return CompletionRequest(messages=messages(("system", "Be brief."), ("user", text)))


def no_secret(err: BaseException) -> None:
    chain = [err, err.__cause__, err.__context__]
    for e in chain:
        if e is not None:
            assert SECRET not in str(e) and SECRET not in repr(e)


# -- the server itself ----------------------------------------------------------------


def test_server_models_ok_and_records(srv: FaultServer) -> None:
    models = httpx.get(f"{srv.base_url}/models", timeout=2)
    assert models.status_code == 200 and models.json()["data"][0]["id"] == MODEL
    with make(srv) as llm:
        c = llm.complete(req("ping"))
    assert c.text == "echo: ping" and c.usage.completion_tokens == 2
    assert srv.count == 2
    get, post = srv.requests
    assert (get.method, get.path, get.fault) == ("GET", "/v1/models", None)
    assert (post.method, post.path, post.fault) == ("POST", "/v1/chat/completions", "ok")
    assert post.body["model"] == MODEL and post.body["messages"][-1]["content"] == "ping"
    assert post.headers["authorization"] == f"Bearer {SECRET}"


def test_server_script_reply_and_validation() -> None:
    with fault_server(["500"], reply="fixed") as server:
        server.push("503", "ok")
        assert server.pending == ["500", "503", "ok"]
        with make(server) as llm:
            assert llm.complete(req()).text == "fixed"
        assert server.faults_served() == ["500", "503", "ok"] and server.pending == []
        with pytest.raises(ValueError, match="unknown fault"):
            server.push("teapot")
        with pytest.raises(ValueError, match="takes no argument"):
            server.push("drop:3")


def test_server_stops_promptly_while_hanging() -> None:
    started = time.monotonic()
    with (
        fault_server(["hang:5"]) as server,
        make(server, max_retries=0, timeout=0.2) as llm,
        pytest.raises(ModelTimeout),
    ):
        llm.complete(req())
    assert time.monotonic() - started < 2.0  # the 5 s hang was cut short at shutdown


# -- each retryable fault once, then ok ----------------------------------------------


@pytest.mark.parametrize(
    "fault",
    [
        "429:0",
        "429_date:0",
        "500",
        "503",
        "hang",
        "drop",
        "malformed",
        "empty_choices",
        "truncated",
    ],
)
def test_fault_once_then_ok(srv: FaultServer, fault: str) -> None:
    srv.push(fault)
    sleeps = Sleeps()
    with make(srv, sleeps) as llm:
        c = llm.complete(req("again"))
        assert c.text == "echo: again" and not c.cached
        assert llm.attempts == 2 and len(sleeps.delays) == 1
    assert srv.faults_served() == [fault, "ok"]


def test_429_retry_after_one_second_waited(srv: FaultServer) -> None:
    srv.push("429:1")
    sleeps = Sleeps()
    started = time.monotonic()
    with make(srv, sleeps, backoff_max=30) as llm:
        assert llm.complete(req()).text == "echo: Hello?"
    assert sleeps.delays == [1.0]
    assert 0.95 <= time.monotonic() - started < 1.0 + 2 * TIMEOUT


def test_429_retry_after_http_date(srv: FaultServer) -> None:
    srv.push("429_date:3")
    sleeps = Sleeps(real=False)
    with make(srv, sleeps, backoff_max=30) as llm:
        llm.complete(req())
    assert len(sleeps.delays) == 1 and 1.5 <= sleeps.delays[0] <= 3.0  # 1 s date resolution


# -- persistent faults: typed errors ---------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        ("503", ModelServerError),
        ("500", ModelServerError),
        ("429:0", ModelRateLimited),
        ("drop", ModelConnectionError),
        ("malformed", ModelResponseError),
        ("empty_choices", ModelResponseError),
    ],
)
def test_persistent_fault_gives_up_typed(fault: str, error: type[ModelError]) -> None:
    with fault_server(default=fault) as server, make(server, max_retries=2) as llm:
        with pytest.raises(error) as info:
            llm.complete(req())
        assert llm.attempts == 3 and server.count == 3
    msg = str(info.value)
    assert server.url in msg and "gave up after 3 attempts" in msg
    assert SECRET not in msg and "[REDACTED]" not in msg  # the server never saw it echoed
    no_secret(info.value)


def test_persistent_hang_is_timeout() -> None:
    with fault_server(default="hang", hang_seconds=2) as server:
        started = time.monotonic()
        with make(server, max_retries=1, timeout=TIMEOUT) as llm:
            with pytest.raises(ModelTimeout) as info:
                llm.complete(req())
            assert llm.attempts == 2
        elapsed = time.monotonic() - started
    assert 2 * TIMEOUT <= elapsed < 2 * TIMEOUT + 1.0
    assert server.url in str(info.value) and "2 attempts" in str(info.value)


def test_truncated_never_returned_nor_cached(tmp_path: Path) -> None:
    with fault_server(default="truncated") as server:
        cache = ResponseCache(tmp_path / "cache.sqlite")
        meter = UsageMeter()
        backend = make(server, max_retries=1)
        client = ModelClient("task", backend, meter=meter, guard=BudgetGuard(Budget(), meter))
        client.cache = cache
        request = req("cut")
        key = request.cache_key(client.model_id)
        with pytest.raises(ModelError) as info:
            client.complete(request)
        assert info.value.retryable and backend.attempts == 2
        assert isinstance(info.value, ModelConnectionError)
        assert cache.get(key) is None and cache.stats().puts == 0
        assert meter.snapshot()["task"].errors == 1 and meter.snapshot()["task"].calls == 0
        # Next call: truncated once more, then a whole reply, which is what gets cached.
        server.push("truncated", "ok")
        assert client.complete(request).text == "echo: cut"
        stored = cache.get(key)
        assert stored is not None and stored.text == "echo: cut"
        backend.close()
        cache.close()


@pytest.mark.parametrize(("fault", "error"), [("401", ModelAuthError), ("400", ModelRequestError)])
def test_client_errors_not_retried(srv: FaultServer, fault: str, error: type[ModelError]) -> None:
    srv.push(fault)
    sleeps = Sleeps()
    with make(srv, sleeps) as llm:
        with pytest.raises(error) as info:
            llm.complete(req())
        assert llm.attempts == 1
    assert srv.count == 1 and sleeps.delays == []
    assert srv.url in str(info.value) and f"HTTP {fault}" in str(info.value)
    if fault == "400":
        assert not isinstance(info.value, ModelAuthError)


# -- key secrecy across every fault --------------------------------------------------


def test_key_sent_but_never_in_errors() -> None:
    faults = sorted(FAULTS - {"ok", "usage_10x", "gzip"})  # every fault that fails
    gzip_bomb()  # made before the clock runs
    with fault_server(echo_auth=True, hang_seconds=1) as server:
        for fault in faults:
            server.push(fault)
            with make(server, max_retries=0, timeout=0.3) as llm:
                with pytest.raises(ModelError) as info:
                    llm.complete(req())
                assert SECRET not in repr(llm) and SECRET not in repr(llm.info)
            no_secret(info.value)
            assert server.url in str(info.value), fault
            if fault in ("400", "401", "429", "429_date", "500", "503", "malformed"):
                assert "[REDACTED]" in str(info.value), fault  # the server echoed it
        assert [r.fault for r in server.requests] == faults
        assert all(r.headers["authorization"] == f"Bearer {SECRET}" for r in server.requests)


# -- the time budget while retrying ----------------------------------------------------


def test_deadline_stops_retries_early() -> None:
    deadline = 1.2
    with fault_server(default="503") as server:
        sleeps = Sleeps()
        llm = make(server, sleeps, max_retries=50, backoff_base=0.5, backoff_max=5)
        started = time.monotonic()
        with call_deadline(deadline), pytest.raises(ModelServerError) as info:
            llm.complete(req())
        elapsed = time.monotonic() - started
        llm.close()
    assert llm.attempts < 51 and server.count == llm.attempts
    assert elapsed < deadline + TIMEOUT
    assert sum(sleeps.delays) < deadline
    msg = str(info.value)
    assert "time budget" in msg and f"after {llm.attempts} attempts" in msg
    assert server.url in msg and isinstance(info.value.__cause__, ModelServerError)


def test_the_runs_time_budget_is_the_deadline_of_a_calls_retries() -> None:
    """Through the client, as a run calls: `budget: minutes` left (0.02 min, 1.2 s)
    bounds the backend's retries of a server that always answers 503."""
    minutes = 0.02
    with fault_server(default="503") as server:
        meter = UsageMeter()
        backend = make(server, Sleeps(), max_retries=50, backoff_base=0.5, backoff_max=5)
        client = ModelClient(
            "task", backend, meter=meter, guard=BudgetGuard(Budget(minutes=minutes), meter)
        )
        started = time.monotonic()
        with pytest.raises(ModelServerError) as info:
            client.complete(req())
        elapsed = time.monotonic() - started
        backend.close()
    assert backend.attempts < 51 and elapsed < minutes * 60 + TIMEOUT
    assert "time budget" in str(info.value)


def test_deadline_shorter_than_retry_after_stops_at_once(srv: FaultServer) -> None:
    srv.push("429:5")
    sleeps = Sleeps()
    started = time.monotonic()
    with call_deadline(1.0), make(srv, sleeps, backoff_max=30) as llm:
        with pytest.raises(ModelRateLimited) as info:
            llm.complete(req())
        assert llm.attempts == 1
    # no retry wait: none asked of the sleeper, and well short of the 5 s Retry-After
    # (a loose bound: a loaded machine can take half a second for the one attempt)
    assert sleeps.delays == [] and time.monotonic() - started < 4.0
    assert info.value.retry_after == 5.0 and "time budget" in str(info.value)


def test_ample_deadline_lets_retries_through(srv: FaultServer) -> None:
    srv.push("503", "drop")
    with call_deadline(30), make(srv) as llm:
        assert llm.complete(req()).text == "echo: Hello?"
        assert llm.attempts == 3


def test_max_retry_seconds_caps_total_retry_time() -> None:
    with fault_server(default="503") as server:
        llm = make(
            server, max_retries=1000, backoff_base=0.1, backoff_max=0.1, max_retry_seconds=0.4
        )
        started = time.monotonic()
        with pytest.raises(ModelServerError) as info:
            llm.complete(req())
        elapsed = time.monotonic() - started
        llm.close()
    assert 2 <= llm.attempts < 1001 and elapsed < 0.4 + TIMEOUT
    assert "max_retry_seconds=0.4 ended the retries" in str(info.value)


def test_max_retry_seconds_vs_retry_after(srv: FaultServer) -> None:
    srv.push("429:1")
    with make(srv, backoff_max=30, max_retry_seconds=0.5) as llm:
        with pytest.raises(ModelRateLimited, match=r"max_retry_seconds=0\.5"):
            llm.complete(req())
        assert llm.attempts == 1
    srv.push("429:1000")
    sleeps = Sleeps(real=False)
    with make(srv, sleeps, backoff_max=30, max_retry_seconds=None) as llm:
        assert llm.complete(req()).text == "echo: Hello?"  # no cap on retry time
    assert sleeps.delays == [30]  # Retry-After capped at backoff_max


def test_max_retry_seconds_validated() -> None:
    with pytest.raises(ConfigError, match="max_retry_seconds"):
        OpenAICompatibleLLM("http://127.0.0.1:1/v1", MODEL, max_retry_seconds=-1)


# -- the deadline context itself -------------------------------------------------------


def test_call_deadline_nests_resets_and_is_per_thread() -> None:
    assert current_deadline() is None and time_left() is None
    with call_deadline(10) as outer:
        assert outer is not None and current_deadline() == outer
        with call_deadline(100) as inner:
            assert inner == outer  # never extends an outer deadline
        with call_deadline(None) as same:
            assert same == outer
        with call_deadline(1) as tighter:
            assert tighter is not None and tighter < outer
            left = time_left()
            assert left is not None and 0.5 < left <= 1
        assert current_deadline() == outer
        seen: list[float | None] = []
        thread = threading.Thread(target=lambda: seen.append(current_deadline()))
        thread.start()
        thread.join()
        assert seen == [None]
    assert current_deadline() is None
    with call_deadline(-5) as past:
        left = time_left()
        assert past is not None and left is not None and left <= 0
