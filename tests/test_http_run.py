"""A whole optimization through the OpenAI-compatible backend against a real llama.cpp
server on 127.0.0.1, with an API key that must not leak into anything written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from llm_server import llama_server

from promptascent.llm.model_files import default_model_path

pytestmark = pytest.mark.server
REPO = Path(__file__).resolve().parents[1]
SECRET = "sk-test-DO-NOT-LEAK-4f1c2b9e"


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    pytest.importorskip("llama_cpp.server")
    with llama_server(default_model_path()) as url:
        yield url


def test_optimize_over_http_and_the_key_never_leaks(tmp_path: Path, server_url: str) -> None:
    task = tmp_path / "http.yaml"
    task.write_text(
        "name: http-navigate\n"
        f"data:\n  folder: {REPO / 'examples/data/navigate'}\n"
        "  limits: {train: 6, dev: 6, test: 8}\n"
        "models:\n"
        "  task: {backend: openai, model: local, base_url: '" + server_url + "',"
        " api_key_env: PA_TEST_KEY, prices: {input: 1.0, output: 2.0}}\n"
        "  optimizer: {backend: openai, model: local, base_url: '" + server_url + "',"
        " api_key_env: PA_TEST_KEY}\n"
        "task_params: {max_tokens: 12}\n"
        "optimizer: {name: ape, num_candidates: 2, eval_examples: 3, rounds: 0, top_k: 1,"
        " final_k: 2}\n"
        "seed: 0\n",
        encoding="utf-8",
    )
    env = {**os.environ, "PA_TEST_KEY": SECRET, "COLUMNS": "200"}
    proc = subprocess.run(
        [sys.executable, "-m", "promptascent", "optimize", str(task), "-q"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "held-out test split" in proc.stdout
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    result = json.loads(next(p for p in written if p.name == "result.json").read_text())
    task_usage = result["usage"]["task"]
    # the server's token counts, priced at $1/$2 per million (cache hits included in
    # `dollars`, which budgets bound; `spent_dollars` is what the model calls cost)
    expected = (task_usage["prompt_tokens"] * 1.0 + task_usage["completion_tokens"] * 2.0) / 1e6
    assert task_usage["model_calls"] > 0 and task_usage["dollars"] == pytest.approx(expected)
    assert 0 < task_usage["spent_dollars"] <= task_usage["dollars"]
    assert any(p.name == "run.sqlite" for p in written)
    assert any(p.name == "responses.sqlite" for p in written)
    for path in written:
        assert SECRET.encode() not in path.read_bytes(), f"key leaked into {path}"
    assert SECRET not in proc.stdout + proc.stderr
