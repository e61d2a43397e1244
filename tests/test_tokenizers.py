"""Real token counts for HTTP models (llm/tokens.py): the server's tokenize endpoint
(llama-cpp-python, llama.cpp, vLLM), tiktoken only from files already on the machine,
bytes otherwise; the choice shown by --dry-run; and, against a real llama.cpp server,
counts that match its usage, a token budget and max_prompt_tokens in real tokens."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fault_server import fault_server
from scripted import write_animal_task

from promptascent.config.task import ModelSpec, task_from_dict
from promptascent.errors import BudgetExhausted, ConfigError
from promptascent.llm.budget import Budget, BudgetGuard
from promptascent.llm.client import ModelClient
from promptascent.llm.factory import BackendFactory
from promptascent.llm.http import TEMPLATE_TOKENS, OpenAICompatibleLLM
from promptascent.llm.tokens import TIKTOKEN_FILES
from promptascent.llm.types import CompletionRequest, messages
from promptascent.llm.usage import UsageMeter
from promptascent.prompts.constraints import Constraints
from promptascent.prompts.prompt import Prompt

TESTS = Path(__file__).resolve().parent
SENTENCE = "The quick brown fox jumps over the lazy dog, then naps under the old oak tree."


class TokenizeApi:
    """A MockTransport handler that tokenizes one way (one token per word) and records
    the paths asked; everything else is 404."""

    def __init__(self, style: str) -> None:
        self.style = style
        self.paths: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.paths.append(request.url.path)
        body = json.loads(request.content or b"null")
        words = lambda text: list(range(len(text.split())))  # noqa: E731
        path = request.url.path
        if self.style == "llama-cpp-python" and path == "/extras/tokenize":
            return httpx.Response(200, json={"tokens": words(body["input"])})
        if self.style == "llama.cpp" and path == "/tokenize":
            return httpx.Response(200, json={"tokens": words(body.get("content", ""))})
        if self.style == "vllm" and path == "/tokenize":
            if "prompt" not in body:
                return httpx.Response(400, json={"error": "prompt: field required"})
            tokens = words(body["prompt"])
            return httpx.Response(200, json={"count": len(tokens), "tokens": tokens})
        return httpx.Response(404, json={"detail": "Not Found"})


def http_model(
    api: TokenizeApi, base: str = "http://models.test/v1", **kw: Any
) -> OpenAICompatibleLLM:
    return OpenAICompatibleLLM(
        base, "m", api_key_env=None, transport=httpx.MockTransport(api), **kw
    )


@pytest.mark.parametrize(
    ("style", "path"),
    [("llama-cpp-python", "/extras/tokenize"), ("llama.cpp", "/tokenize"), ("vllm", "/tokenize")],
)
def test_the_servers_tokenize_endpoint_is_found_and_counts_real_tokens(
    style: str, path: str
) -> None:
    api = TokenizeApi(style)
    llm = http_model(api)
    assert llm.count_tokens(SENTENCE) == 16  # words, not the 79 bytes
    assert llm.tokenizer == f"server (POST http://models.test{path})"


def test_the_endpoint_is_probed_once_and_each_text_counted_once() -> None:
    api = TokenizeApi("llama.cpp")
    llm = http_model(api)
    for _ in range(3):
        llm.count_tokens(SENTENCE)
        llm.count_tokens("another text")
    probes = ["/extras/tokenize", "/tokenize"]  # the first API answers 404
    assert api.paths == [*probes, "/tokenize", "/tokenize"]
    assert llm.count_tokens("") == 0 and len(api.paths) == 4


def test_a_tokenize_request_that_fails_later_counts_that_text_in_bytes_and_asks_again() -> None:
    api = TokenizeApi("llama-cpp-python")
    llm = http_model(api)
    assert llm.count_tokens("two words") == 2
    api.style = "down"
    assert llm.count_tokens("three more words") == len("three more words")
    api.style = "llama-cpp-python"
    assert llm.count_tokens("three more words") == 3


def test_without_a_tokenize_endpoint_auto_counts_bytes_and_server_is_an_error() -> None:
    auto = http_model(TokenizeApi("none"))
    assert auto.count_tokens(SENTENCE) == len(SENTENCE.encode())
    assert auto.tokenizer.startswith("bytes (UTF-8 length, an upper bound): no tokenize endpoint")
    server = http_model(TokenizeApi("none"), tokenizer="server")
    with pytest.raises(ConfigError, match=r"http://models.test has no tokenize endpoint"):
        server.count_tokens(SENTENCE)


def test_bytes_asks_the_server_nothing() -> None:
    api = TokenizeApi("llama-cpp-python")
    llm = http_model(api, tokenizer="bytes")
    assert llm.count_tokens("héllo") == 6 and api.paths == []


def test_openais_api_is_not_probed_for_a_tokenize_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tiktoken", None)  # not installed
    api = TokenizeApi("llama-cpp-python")
    llm = http_model(api, base="https://api.openai.com/v1")
    assert llm.count_tokens(SENTENCE) == len(SENTENCE)
    assert api.paths == [] and "tiktoken is not installed" in llm.tokenizer
    with pytest.raises(ConfigError, match="tokenizer: tiktoken: tiktoken is not installed"):
        http_model(api, tokenizer="tiktoken").count_tokens("x")


# -- tiktoken: only files already on the machine ----------------------------------------


class FakeTiktoken:
    """Stands in for the tiktoken package: `get_encoding` reads the cached file
    through `tiktoken.load.read_file`, or downloads it (as tiktoken does) when it is
    absent or `damaged`."""

    def __init__(self, cache: Path) -> None:
        self.cache = cache
        self.damaged = False
        self.downloads: list[str] = []
        self.module = types.ModuleType("tiktoken")
        self.load = types.ModuleType("tiktoken.load")
        self.load.read_file = self._read_file  # type: ignore[attr-defined]
        self.module.load = self.load  # type: ignore[attr-defined]
        self.module.encoding_name_for_model = self._name  # type: ignore[attr-defined]
        self.module.get_encoding = self._get_encoding  # type: ignore[attr-defined]

    def _name(self, model: str) -> str:
        if not model.startswith("gpt-4o"):
            raise KeyError(model)
        return "o200k_base"

    def _read_file(self, blobpath: str) -> bytes:
        if "://" in blobpath:
            self.downloads.append(blobpath)
            return b""
        return Path(blobpath).read_bytes()

    def _get_encoding(self, name: str) -> Any:
        url = TIKTOKEN_FILES.format(name=name)
        cached = self.cache / hashlib.sha1(url.encode()).hexdigest()
        if self.damaged or not cached.is_file():
            self.load.read_file(url)  # type: ignore[attr-defined]
        self.load.read_file(str(cached))  # type: ignore[attr-defined]
        return types.SimpleNamespace(encode=lambda text, disallowed_special=(): text.split())

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setitem(sys.modules, "tiktoken", self.module)
        monkeypatch.setitem(sys.modules, "tiktoken.load", self.load)
        monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(self.cache))

    def put_file(self) -> None:
        url = TIKTOKEN_FILES.format(name="o200k_base")
        self.cache.mkdir(parents=True, exist_ok=True)
        (self.cache / hashlib.sha1(url.encode()).hexdigest()).write_bytes(b"ranks")


@pytest.fixture()
def tiktoken(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeTiktoken:
    fake = FakeTiktoken(tmp_path / "tiktoken-cache")
    fake.install(monkeypatch)
    return fake


def openai(model: str = "gpt-4o-mini") -> OpenAICompatibleLLM:
    """A model on OpenAI's API (never reached: a mock transport that knows no route)."""
    return OpenAICompatibleLLM(
        "https://api.openai.com/v1",
        model,
        api_key_env=None,
        transport=httpx.MockTransport(TokenizeApi("none")),
    )


def test_tiktoken_counts_when_its_file_is_already_on_the_machine(tiktoken: FakeTiktoken) -> None:
    tiktoken.put_file()
    llm = openai("gpt-4o-mini")
    assert llm.count_tokens(SENTENCE) == 16 and llm.tokenizer == "tiktoken (o200k_base)"
    assert tiktoken.downloads == []


def test_tiktoken_never_downloads_a_missing_or_damaged_file(tiktoken: FakeTiktoken) -> None:
    missing = openai("gpt-4o-mini")
    assert missing.count_tokens(SENTENCE) == len(SENTENCE)
    assert "o200k_base file is not on this machine" in missing.tokenizer
    tiktoken.put_file()
    tiktoken.damaged = True
    damaged = openai("gpt-4o-mini")
    assert damaged.count_tokens(SENTENCE) == len(SENTENCE)
    assert "could not be loaded" in damaged.tokenizer
    assert tiktoken.downloads == []


def test_tiktoken_is_for_openai_model_names_only(tiktoken: FakeTiktoken) -> None:
    tiktoken.put_file()
    llm = openai("some-llama")
    assert llm.count_tokens(SENTENCE) == len(SENTENCE)
    assert "tiktoken does not know the model 'some-llama'" in llm.tokenizer


# -- the choice in the task file and in --dry-run ----------------------------------------


def test_the_task_file_chooses_the_tokenizer_of_an_http_model() -> None:
    spec = ModelSpec(backend="openai", model="m", base_url="http://x.test/v1", tokenizer="bytes")
    backend = BackendFactory().get(spec, role="task")
    assert backend.tokenizer.startswith("bytes")
    assert spec.identity() != spec.model_copy(update={"tokenizer": "auto"}).identity()
    with pytest.raises(ConfigError, match=r"models\.task: tokenizer: server is for openai models"):
        task_from_dict(
            {
                "name": "t",
                "data": {"folder": "x"},
                "models": {"task": {"backend": "embedded", "tokenizer": "server"}},
            }
        )


def test_dry_run_shows_which_tokenizer_counted_each_model(tmp_path: Path) -> None:
    with fault_server() as server:
        models = (
            "models:\n"
            f"  task: {{backend: openai, model: m, base_url: '{server.base_url}',"
            " api_key_env: null}\n"
            f"  optimizer: {{backend: openai, model: m, base_url: '{server.base_url}',"
            " api_key_env: null, tokenizer: bytes}\n"
        )
        task = write_animal_task(tmp_path / "task", extra=models)
        proc = subprocess.run(
            [sys.executable, "-m", "promptascent", "optimize", str(task), "--dry-run"],
            cwd=tmp_path,
            env={**os.environ, "COLUMNS": "300"},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr
        assert server.completions == 0
    root = server.base_url.removesuffix("/v1")
    assert (
        f"tokens counted by: task: server (POST {root}/extras/tokenize); "
        "optimizer: bytes (UTF-8 length, an upper bound)"
    ) in proc.stdout


# -- a real llama.cpp server ---------------------------------------------------------------


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


def ask(text: str, max_tokens: int = 1) -> CompletionRequest:
    return CompletionRequest(messages(("user", text)), max_tokens=max_tokens)


TEXTS = (
    SENTENCE,
    "Answer with True or False. Take 3 steps forward, turn around, take 3 steps.",
    "Ünïcödé — 東京 and emoji 🎉 in one line: 42%!",
)


@pytest.mark.server
def test_count_tokens_equals_the_servers_usage_less_the_chat_templates_fixed_overhead(
    local: OpenAICompatibleLLM,
) -> None:
    assert local.tokenizer.startswith("server (POST ") and "/extras/tokenize" in local.tokenizer
    overhead = local.complete(ask("Hi")).usage.prompt_tokens - local.count_tokens("Hi")
    meter = UsageMeter()
    client = ModelClient("task", local, meter=meter, guard=BudgetGuard(Budget(), meter))
    for text in TEXTS:
        reported = local.complete(ask(text)).usage.prompt_tokens
        assert reported - local.count_tokens(text) == overhead, text
        assert client.prompt_tokens(ask(text)) >= reported  # the reservation covers it
    assert local.count_tokens(SENTENCE) < len(SENTENCE) / 2  # tokens, not bytes
    assert 0 < overhead <= TEMPLATE_TOKENS + 8  # measured: 30 for SmolLM2's template


@pytest.mark.server
def test_a_token_budget_holds_in_real_tokens(local: OpenAICompatibleLLM) -> None:
    limit = 1200
    meter = UsageMeter()
    client = ModelClient("task", local, meter=meter, guard=BudgetGuard(Budget(tokens=limit), meter))
    long = " ".join([SENTENCE] * 5)  # about 400 bytes, about 90 tokens
    reported = 0
    with pytest.raises(BudgetExhausted):
        for i in range(100):
            reply = client.complete(ask(f"{long} Say a word about it, number {i}.", 4))
            reported += reply.usage.total
    assert reported == meter.snapshot()["task"].tokens <= limit
    # Reserved in real tokens, the budget ends with less than one call's real usage
    # (and the template allowance) unused; reserved in bytes (about 430 a call) it
    # would have stopped with a quarter of it unused.
    assert limit - reported < reply.usage.total + TEMPLATE_TOKENS + 8


@pytest.mark.server
def test_max_prompt_tokens_holds_in_real_tokens(local: OpenAICompatibleLLM) -> None:
    prompt = Prompt(SENTENCE + " " + SENTENCE + "\n\n{input}")
    real = local.count_tokens(SENTENCE + " " + SENTENCE + "\n\n")
    assert real < len(SENTENCE) * 2 / 3  # well under its length in bytes
    fits = Constraints(max_prompt_tokens=real, count_tokens=local.count_tokens)
    assert fits.apply(prompt).prompt is not None
    over = Constraints(max_prompt_tokens=real - 1, count_tokens=local.count_tokens)
    assert over.apply(prompt).prompt is None
