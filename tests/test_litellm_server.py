"""The LiteLLM backend against a real llama.cpp server on 127.0.0.1, through LiteLLM's
OpenAI-compatible route (`litellm:openai/local@URL`): completions with the server's
usage, the response cache, a budget that holds, and a whole `optimize` run from the
CLI with a provider key in the environment that reaches nothing written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from llm_server import llama_server

from promptascent.config.task import ModelSpec
from promptascent.errors import BudgetExhausted
from promptascent.llm.budget import Budget, BudgetGuard
from promptascent.llm.cache import ResponseCache
from promptascent.llm.client import ModelClient
from promptascent.llm.factory import BackendFactory
from promptascent.llm.model_files import default_model_path
from promptascent.llm.types import CompletionRequest, messages
from promptascent.llm.usage import UsageMeter

pytestmark = pytest.mark.server
REPO = Path(__file__).resolve().parents[1]
SECRET = "sk-litellm-env-DO-NOT-LEAK-51d0"


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    with llama_server(default_model_path()) as url:
        yield url


@pytest.fixture()
def factory() -> Iterator[BackendFactory]:
    made = BackendFactory()
    yield made
    made.close()


def ask(question: str, max_tokens: int = 12) -> CompletionRequest:
    return CompletionRequest(messages=messages(("user", question)), max_tokens=max_tokens)


def test_a_completion_counts_the_servers_usage_and_a_rerun_is_a_cache_hit(
    server_url: str, factory: BackendFactory, tmp_path: Path
) -> None:
    llm = factory.get(ModelSpec.parse(f"litellm:openai/local@{server_url}"), role="task")
    assert llm.tokenizer.startswith("server")  # the server's own tokenizer, exact
    cache = ResponseCache(tmp_path / "responses.sqlite")
    runs = []
    for _ in range(2):
        meter = UsageMeter()
        client = ModelClient("task", llm, meter=meter, guard=BudgetGuard(Budget(), meter),
                             cache=cache)  # fmt: skip
        completion = client.complete(ask("What is the capital of France?"))
        runs.append((completion, meter.snapshot()["task"]))
    cache.close()
    (first, cold), (again, warm) = runs
    assert first.text.strip() and not first.cached
    assert first.usage.prompt_tokens > 0 and first.usage.completion_tokens > 0
    assert (cold.model_calls, cold.tokens) == (1, first.usage.total)
    assert again.cached and again.text == first.text
    assert (warm.model_calls, warm.cache_hits, warm.tokens) == (0, 1, first.usage.total)


def test_a_token_budget_is_never_exceeded(server_url: str, factory: BackendFactory) -> None:
    llm = factory.get(ModelSpec.parse(f"litellm:openai/local@{server_url}"), role="task")
    meter = UsageMeter()
    limit = 300
    client = ModelClient("task", llm, meter=meter, guard=BudgetGuard(Budget(tokens=limit), meter))
    answered = 0
    with pytest.raises(BudgetExhausted):
        for n in range(20):
            client.complete(ask(f"Count to {n}.", max_tokens=16))
            answered += 1
    assert answered >= 1
    assert 0 < meter.snapshot()["task"].tokens <= limit


def test_optimize_runs_end_to_end_through_litellm_from_the_cli(
    server_url: str, tmp_path: Path
) -> None:
    task = tmp_path / "task.yaml"
    task.write_text(
        "name: litellm-navigate\n"
        f"data:\n  folder: {REPO / 'examples/data/navigate'}\n"
        "  limits: {train: 6, dev: 6, test: 8}\n"
        "task_params: {max_tokens: 12}\n"
        "optimizer: {name: ape, num_candidates: 2, eval_examples: 3, rounds: 0, top_k: 1,"
        " final_k: 2}\n"
        "seed: 0\n",
        encoding="utf-8",
    )
    model = f"litellm:openai/local@{server_url}"
    env = {**os.environ, "OPENAI_API_KEY": SECRET, "COLUMNS": "200"}
    proc = subprocess.run(
        [sys.executable, "-m", "promptascent", "optimize", str(task), "-q",
         "--task-model", model, "--optimizer-model", model],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "held-out test split" in proc.stdout
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    result = json.loads(next(p for p in written if p.name == "result.json").read_text())
    assert result["usage"]["task"]["model_calls"] > 0
    assert result["usage"]["optimizer"]["model_calls"] > 0
    for path in written:
        assert SECRET.encode() not in path.read_bytes(), f"key leaked into {path}"
    assert SECRET not in proc.stdout + proc.stderr
