"""The LiteLLM backend without a model server: LiteLLM's errors mapped to ours and
retried through our metering (a fake provider registered in LiteLLM's
`custom_provider_map`), the key rule over a real socket (tests/fault_server.py), the
import that never fetches LiteLLM's cost map, and prices from its local table in
--dry-run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fault_server import fault_server
from scripted import write_animal_task

from promptascent.config.task import ModelSpec
from promptascent.errors import (
    ConfigError,
    ContextOverflow,
    ModelAuthError,
    ModelConnectionError,
    ModelError,
    ModelRateLimited,
    ModelRequestError,
    ModelServerError,
    ModelTimeout,
)
from promptascent.llm.budget import Budget, BudgetGuard
from promptascent.llm.client import ModelClient
from promptascent.llm.factory import BackendFactory
from promptascent.llm.journal import Journal
from promptascent.llm.litellm_backend import INSTALL_HINT, LiteLLMBackend, load_litellm
from promptascent.llm.prices import LITELLM_TABLE, NONE_GIVEN, TASK_FILE, model_prices
from promptascent.llm.types import CompletionRequest, TokenUsage, messages
from promptascent.llm.usage import Prices, UsageMeter

litellm = load_litellm()
SECRET = "sk-litellm-test-DO-NOT-LEAK-93c1f0"
PROVIDER = "promptascent-fake"
REPO = Path(__file__).resolve().parents[1]


def req(text: str = "Hello?", max_tokens: int = 16) -> CompletionRequest:
    return CompletionRequest(messages=messages(("user", text)), max_tokens=max_tokens)


class FakeProvider(litellm.CustomLLM):  # type: ignore[misc, name-defined]
    """A LiteLLM provider that answers from a script: an exception to raise, or the
    text of a reply (usage: 7 prompt tokens, 3 completion tokens)."""

    def __init__(self) -> None:
        super().__init__()
        self.script: deque[Exception | str] = deque()
        self.calls: list[dict[str, Any]] = []

    def completion(self, *args: Any, **kwargs: Any) -> Any:
        self.calls.append(kwargs)
        step = self.script.popleft() if self.script else "fine"
        if isinstance(step, Exception):
            raise step
        response = litellm.ModelResponse(
            choices=[{"message": {"role": "assistant", "content": step}, "finish_reason": "stop"}]
        )
        response.usage = litellm.Usage(prompt_tokens=7, completion_tokens=3, total_tokens=10)
        return response


@pytest.fixture()
def fake() -> Iterator[FakeProvider]:
    provider = FakeProvider()
    saved = list(litellm.custom_provider_map)
    litellm.custom_provider_map = [*saved, {"provider": PROVIDER, "custom_handler": provider}]
    litellm.utils.custom_llm_setup()
    yield provider
    litellm.custom_provider_map = saved
    litellm.utils.custom_llm_setup()


def backend(**kw: Any) -> LiteLLMBackend:
    kw.setdefault("max_retries", 2)
    return LiteLLMBackend(
        f"{PROVIDER}/m", setting="models.task", backoff_base=0.0, sleep=lambda s: None, **kw
    )


MODEL = f"{PROVIDER}/m"
ERRORS: dict[str, Callable[[], Exception]] = {
    "rate limit": lambda: litellm.RateLimitError("slow down", PROVIDER, MODEL),
    "timeout": lambda: litellm.Timeout("timed out", MODEL, PROVIDER),
    "connection": lambda: litellm.APIConnectionError("connection reset", PROVIDER, MODEL),
    "service unavailable": lambda: litellm.ServiceUnavailableError("busy", PROVIDER, MODEL),
    "authentication": lambda: litellm.AuthenticationError(f"bad key {SECRET}", PROVIDER, MODEL),
    "permission": lambda: litellm.PermissionDeniedError(
        "no", PROVIDER, MODEL, response=_response(403)
    ),
    "bad request": lambda: litellm.BadRequestError("bad", MODEL, PROVIDER),
    "not found": lambda: litellm.NotFoundError("no such model", MODEL, PROVIDER),
    "context window": lambda: litellm.ContextWindowExceededError("too long", MODEL, PROVIDER),
}


def _response(status: int) -> Any:
    import httpx

    return httpx.Response(status, request=httpx.Request("POST", "http://fake"))


@pytest.mark.parametrize(
    ("name", "ours", "retried", "charged"),
    [
        ("rate limit", ModelRateLimited, True, False),
        ("timeout", ModelTimeout, True, True),  # perhaps sent and billed
        ("connection", ModelConnectionError, True, True),
        ("service unavailable", ModelServerError, True, False),
        ("authentication", ModelAuthError, False, False),
        ("permission", ModelAuthError, False, False),
        ("bad request", ModelRequestError, False, False),
        ("not found", ModelRequestError, False, False),
        ("context window", ContextOverflow, False, False),
    ],
)
def test_litellms_errors_become_ours_retried_or_raised_at_once_naming_the_role_and_model(
    fake: FakeProvider,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    ours: type[ModelError],
    retried: bool,
    charged: bool,
) -> None:
    monkeypatch.setenv("PROMPTASCENT_FAKE_API_KEY", SECRET)
    fake.script.extend([ERRORS[name](), ERRORS[name](), ERRORS[name]()])
    llm = backend(max_retries=2)
    meter = UsageMeter()
    journal = Journal(tmp_path / "calls.sqlite")
    client = ModelClient(
        "task", llm, meter=meter, guard=BudgetGuard(Budget(), meter), journal=journal
    )
    with pytest.raises(ours) as caught:
        client.complete(req())
    journal.close()
    assert type(caught.value) is ours
    assert len(fake.calls) == (3 if retried else 1)
    assert f"models.task (litellm:{MODEL})" in str(caught.value)
    assert SECRET not in str(caught.value)  # a provider's key in the environment too
    assert meter.snapshot()["task"].failed_attempts == (3 if charged else 0)


def test_a_failed_attempt_is_metered_and_journaled_and_the_retry_answers(
    fake: FakeProvider, tmp_path: Path
) -> None:
    fake.script.extend([ERRORS["timeout"](), "the answer"])
    meter = UsageMeter()
    journal = Journal(tmp_path / "calls.sqlite")
    client = ModelClient(
        "task",
        backend(),
        meter=meter,
        guard=BudgetGuard(Budget(), meter),
        prices=Prices(input=1e6, output=1e6),  # a dollar a token
        journal=journal,
    )
    request = req()
    worst = TokenUsage(client.prompt_tokens(request), request.max_tokens)
    completion = client.complete(request)
    rows = journal._conn().execute(
        "SELECT outcome, prompt_tokens, completion_tokens, estimated FROM attempts ORDER BY id"
    )
    attempts = [tuple(r) for r in rows]
    journal.close()
    assert completion.text == "the answer" and completion.usage == TokenUsage(7, 3)
    assert attempts == [
        ("timeout", worst.prompt_tokens, worst.completion_tokens, 1),
        ("reply", 7, 3, 0),
    ]
    usage = meter.snapshot()["task"]
    assert (usage.calls, usage.model_calls, usage.failed_attempts) == (1, 1, 1)
    assert usage.spent_dollars == worst.total + 10


def test_litellm_makes_one_request_per_attempt_its_own_retries_are_off() -> None:
    """A 503 over a real socket: LiteLLM and the OpenAI SDK under it would retry it on
    their own; with ours off (max_retries=0) one request is made."""
    with fault_server(["503", "503", "503"]) as server:
        llm = LiteLLMBackend("openai/m", base_url=server.base_url, max_retries=0)
        with pytest.raises(ModelServerError):
            llm.complete(req())
        assert server.completions == 1


def test_a_retry_that_might_not_fit_the_budget_is_not_made(fake: FakeProvider) -> None:
    from promptascent.errors import BudgetExhausted

    fake.script.extend([ERRORS["timeout"](), "late"])
    meter = UsageMeter()
    llm = backend()
    request = req()
    probe = ModelClient("task", llm, meter=UsageMeter(), guard=BudgetGuard(Budget(), meter))
    worst = probe.prompt_tokens(request) + request.max_tokens
    guard = BudgetGuard(Budget(tokens=worst + 1), meter)  # one worst case, not two
    with pytest.raises(BudgetExhausted):
        ModelClient("task", llm, meter=meter, guard=guard).complete(request)
    assert len(fake.calls) == 1
    assert meter.snapshot()["task"].tokens <= worst + 1


@pytest.mark.parametrize(
    ("value", "model", "base_url"),
    [
        ("litellm:anthropic/claude-sonnet-4-5", "anthropic/claude-sonnet-4-5", None),
        (
            "litellm:openai/local@http://127.0.0.1:8080/v1",
            "openai/local",
            "http://127.0.0.1:8080/v1",
        ),
        # LiteLLM's names may hold an "@": only an http(s) URL after the last one is a URL
        ("litellm:vertex_ai/claude-x@20240620", "vertex_ai/claude-x@20240620", None),
        ("litellm:ollama/llama3.2", "ollama/llama3.2", None),
    ],
)
def test_a_litellm_model_is_named_like_an_openai_one(
    value: str, model: str, base_url: str | None
) -> None:
    spec = ModelSpec.parse(value)
    assert (spec.backend, spec.model, spec.base_url) == ("litellm", model, base_url)


def test_a_task_file_and_the_role_flags_take_backend_litellm(tmp_path: Path) -> None:
    from promptascent.config.task import load_task
    from promptascent.runner import plan

    task = write_animal_task(
        tmp_path / "t",
        extra="models: {task: {backend: litellm, model: gpt-4o-mini}}\n"
        "optimizer: {name: ape, num_candidates: 2}\n",
    )
    p = plan(load_task(task), models={"optimizer": "litellm:anthropic/claude-sonnet-4-5"})
    assert (p.task.models.task.backend, p.task.models.task.model) == ("litellm", "gpt-4o-mini")
    assert p.task.models.optimizer.model == "anthropic/claude-sonnet-4-5"


def test_http_only_settings_are_refused_for_a_litellm_model() -> None:
    with pytest.raises(ValueError, match="tokenizer: server is for openai models"):
        ModelSpec(backend="litellm", model="gpt-4o-mini", tokenizer="server")


# -- the key rule ---------------------------------------------------------------------


def test_no_key_from_the_environment_goes_to_a_base_url_nobody_named_one_for(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """OPENAI_API_KEY is set, the model is LiteLLM's OpenAI route to another host: what
    reaches that host is the dummy key, never the real one."""
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    with fault_server() as server:
        factory = BackendFactory()
        try:
            spec = ModelSpec.parse(f"litellm:openai/m@{server.base_url}")
            factory.get(spec, role="task").complete(req())
        finally:
            factory.close()
        assert server.completions == 1
        headers = [r.headers for r in server.requests]
    assert all(SECRET not in json.dumps(dict(h)) for h in headers)
    chat = next(h for r, h in zip(server.requests, headers, strict=True) if "chat" in r.path)
    assert chat.get("authorization") == "Bearer no-key"


def test_a_key_the_task_file_names_goes_to_its_base_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-the-wrong-one-0000")
    monkeypatch.setenv("MY_SERVER_KEY", SECRET)
    with fault_server() as server:
        spec = ModelSpec.parse(
            {"backend": "litellm", "model": "openai/m", "base_url": server.base_url,
             "api_key_env": "MY_SERVER_KEY"}
        )  # fmt: skip
        factory = BackendFactory()
        try:
            factory.get(spec, role="task").complete(req())
        finally:
            factory.close()
        chat = next(r for r in server.requests if "chat" in r.path)
    assert chat.headers["authorization"] == f"Bearer {SECRET}"


@pytest.mark.parametrize("status", ["401", "403"])
def test_a_401_or_403_from_a_base_url_sent_no_key_says_so_and_how_to_name_one(
    status: str,
) -> None:
    with fault_server([status]) as server:
        llm = LiteLLMBackend("openai/m", setting="models.judge", base_url=server.base_url)
        with pytest.raises(ModelAuthError) as caught:
            llm.complete(req())
    assert "no API key was sent" in str(caught.value)
    assert "models.judge.api_key_env" in str(caught.value)
    assert "litellm:openai/m" in str(caught.value)


def test_without_a_base_url_litellm_reads_the_providers_own_key(
    fake: FakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No api_base and no named key: nothing is passed, LiteLLM's own lookup decides."""
    backend().complete(req())
    assert fake.calls[0].get("api_base") in (None, "")
    assert fake.calls[0].get("api_key") in (None, "")


# -- installing and importing -------------------------------------------------------


def test_importing_litellm_through_the_backend_never_fetches_its_cost_map() -> None:
    """In a fresh process with LITELLM_LOCAL_MODEL_COST_MAP unset, every HTTP request
    LiteLLM's import would make is recorded: none is."""
    code = (
        "import httpx, json, os, sys\n"
        "seen = []\n"
        "real_get = httpx.get\n"
        "def get(url, *a, **k):\n"
        "    seen.append(str(url)); raise httpx.ConnectError('offline')\n"
        "httpx.get = get\n"
        "send = httpx.Client.send\n"
        "def client_send(self, request, *a, **k):\n"
        "    seen.append(str(request.url)); raise httpx.ConnectError('offline')\n"
        "httpx.Client.send = client_send\n"
        "from promptascent.llm.litellm_backend import load_litellm\n"
        "litellm = load_litellm()\n"
        "info = litellm.get_model_info('gpt-4o-mini')\n"
        "print(json.dumps({'seen': seen, 'env': os.environ.get('LITELLM_LOCAL_MODEL_COST_MAP'),"
        " 'price': info['input_cost_per_token']}))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "LITELLM_LOCAL_MODEL_COST_MAP"}
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["env"] == "True"
    assert report["seen"] == []
    assert report["price"] > 0


def test_without_litellm_the_backend_is_a_one_line_error_naming_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "litellm", None)  # import litellm -> ImportError
    with pytest.raises(ConfigError) as caught:
        BackendFactory().get(ModelSpec.parse("litellm:gpt-4o-mini"), role="task")
    assert str(caught.value) == INSTALL_HINT
    assert "pip install 'promptascent[litellm]'" in str(caught.value)


# -- prices -------------------------------------------------------------------------


def test_prices_come_from_the_task_file_else_litellms_table_else_none() -> None:
    given = model_prices(
        ModelSpec.parse({"backend": "litellm", "model": "gpt-4o-mini",
                         "prices": {"input": 1, "output": 2}})
    )  # fmt: skip
    assert (given.prices, given.source) == (Prices(1, 2), TASK_FILE)
    table = model_prices(ModelSpec.parse("litellm:gpt-4o-mini"))
    assert (table.prices, table.source) == (Prices(0.15, 0.6), LITELLM_TABLE)
    unknown = model_prices(ModelSpec.parse("litellm:openai/no-such-model-here"))
    assert (unknown.prices, unknown.source) == (Prices(), NONE_GIVEN)
    assert model_prices(ModelSpec.parse("openai:gpt-4o-mini")).source == NONE_GIVEN


def test_a_resumed_run_looks_the_prices_up_again_rather_than_reading_them_as_zero() -> None:
    spec = ModelSpec.parse("litellm:gpt-4o-mini")
    stored = ModelSpec.parse(json.loads(spec.model_dump_json()))  # as the run store keeps it
    assert model_prices(stored).source == LITELLM_TABLE


def offline_cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """The CLI in a fresh process whose every socket connection is refused and recorded
    (printed last as "TRIED [...]")."""
    code = (
        "import socket, sys\n"
        "tried = []\n"
        "def connect(self, address):\n"
        "    tried.append(address); raise OSError('no network in this test')\n"
        "socket.socket.connect = connect\n"
        "socket.create_connection = lambda address, *a, **k: connect(None, address)\n"
        "from promptascent.cli.main import main\n"
        "sys.argv = ['promptascent', *sys.argv[1:]]\n"
        "try:\n"
        "    main()\n"
        "finally:\n"
        "    print('TRIED', tried)\n"
    )
    env = {**os.environ, "COLUMNS": "250"}
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        env=env, capture_output=True, text=True, timeout=300, cwd=cwd,
    )  # fmt: skip


def test_dry_run_shows_litellms_prices_and_their_source_without_the_network(
    tmp_path: Path,
) -> None:
    task = write_animal_task(tmp_path / "t", extra="optimizer: {name: ape, num_candidates: 2}\n")
    proc = offline_cli(
        ["optimize", str(task), "--dry-run", "--task-model", "litellm:gpt-4o-mini",
         "--optimizer-model", "litellm:someone/unknown-model"],
        tmp_path,
    )  # fmt: skip
    assert "TRIED []" in proc.stdout, proc.stdout + proc.stderr
    assert proc.returncode == 0, proc.stderr
    assert "task: litellm table ($0.15 in, $0.6 out per million tokens)" in proc.stdout, proc.stdout
    assert (
        "optimizer: none given, and LiteLLM's table does not know the model (no dollar estimate)"
        in proc.stdout
    )
    task_row = next(
        line for line in proc.stdout.splitlines() if line.strip("│ ").startswith("task")
    )
    assert float(task_row.split("│")[-2]) > 0  # max $ of the task phase


def test_the_readmes_quick_start_dry_run_prices_a_hosted_model_offline() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    quick = readme.split("## Quick start", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    line = next(x for x in quick.splitlines() if "--dry-run" in x)
    args = line.split("#")[0].split()[1:]  # after "promptascent"
    assert args[:2] == ["optimize", "examples/tasks/navigate.yaml"]
    proc = offline_cli(args, REPO)
    assert "TRIED []" in proc.stdout, proc.stdout + proc.stderr
    assert proc.returncode == 0, proc.stderr
    assert "task: litellm table ($3 in, $15 out per million tokens)" in proc.stdout
    assert "optimizer: litellm table ($3 in, $15 out per million tokens)" in proc.stdout
