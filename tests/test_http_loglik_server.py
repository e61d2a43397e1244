"""Likelihood scoring through a real llama.cpp server on 127.0.0.1 (its completions
endpoint with echo), against the same model in process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from llm_server import llama_server

from promptascent.llm.chat_template import ChatTemplate
from promptascent.llm.embedded import EmbeddedLLM
from promptascent.llm.http import OpenAICompatibleLLM
from promptascent.llm.model_files import default_model_path
from promptascent.llm.types import LoglikRequest, messages

pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    pytest.importorskip("llama_cpp.server")
    with llama_server(default_model_path()) as url:
        yield url


REQUESTS = [
    LoglikRequest(messages(("user", "Is the sky blue? Answer Yes or No.")), ("Yes", "No")),
    LoglikRequest(
        messages(("system", "Answer briefly."), ("user", "Is fire cold?")),
        ("No", "Absolutely yes", "plausible"),
    ),
]


def test_the_server_scores_continuations_as_the_model_does_in_process(
    server_url: str, embedded: EmbeddedLLM
) -> None:
    """The chat is rendered with the template in the model file, so the server sees the
    same tokens: the sums agree to rounding (the server evaluates in other batches)."""
    http = OpenAICompatibleLLM(
        server_url,
        "local",
        loglik="echo",
        chat_template=ChatTemplate.load(str(default_model_path())),
    )
    try:
        for req in REQUESTS:
            remote, local = http.loglik(req), embedded.loglik(req)
            assert remote.tokens == local.tokens
            assert remote.logprobs == pytest.approx(local.logprobs, abs=0.02)
            assert remote.usage.prompt_tokens > 0 and remote.usage.completion_tokens == len(
                req.continuations
            )
    finally:
        http.close()


# Short inputs with two choices: the server's echo with log-probabilities costs time per
# prompt token (llama-cpp-python sorts the whole vocabulary, in Python, at each one).
TEMPERATURES = [
    ("ice", "cold"), ("fire", "hot"), ("snow", "cold"), ("the sun", "hot"), ("lava", "hot"),
    ("frost", "cold"), ("an oven", "hot"), ("a glacier", "cold"), ("steam", "hot"),
    ("sleet", "cold"), ("a flame", "hot"), ("hail", "cold"), ("embers", "hot"),
    ("a freezer", "cold"),
]  # fmt: skip


def write_temperature_data(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for split, rows in (("train", TEMPERATURES[:4]), ("dev", TEMPERATURES[4:8]),
                        ("test", TEMPERATURES[8:])):  # fmt: skip
        lines = [
            json.dumps(
                {"id": f"{split}-{i}", "input": text, "target": label, "choices": ["hot", "cold"]}
            )
            for i, (text, label) in enumerate(rows)
        ]
        (folder / f"{split}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.mark.timeout(900)
def test_optimize_scored_by_likelihood_through_the_server(tmp_path: Path, server_url: str) -> None:
    model = str(default_model_path())
    write_temperature_data(tmp_path)
    task = tmp_path / "http.yaml"
    task.write_text(
        "name: http-temperature\n"
        "data: {train: train.jsonl, dev: dev.jsonl, test: test.jsonl}\n"
        "seed_prompt: Is it hot or cold?\n"
        "metric: choice_accuracy\n"
        "models:\n"
        "  task: {backend: openai, model: local, base_url: '" + server_url + "',"
        f" loglik: echo, chat_template: '{model}'}}\n"
        "  optimizer: embedded\n"
        "evaluation: {scoring: likelihood}\n"
        "optimizer: {name: ape, num_candidates: 2, eval_examples: 2, rounds: 0, top_k: 1,"
        " final_k: 2}\n"
        "task_params: {max_tokens: 8}\n"
        "budget: {task_calls: 24, optimizer_calls: 4}\n"
        "seed: 0\n",
        encoding="utf-8",
    )
    env = {**os.environ, "COLUMNS": "200"}
    proc = subprocess.run(
        [sys.executable, "-m", "promptascent", "optimize", str(task), "-q"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "scoring: likelihood" in proc.stdout
    result = json.loads(next(tmp_path.rglob("result.json")).read_text())
    for ev in (result["test"]["seed"], result["test"]["best"]):
        assert ev["n"] == 6 and ev["unparsed"] == 0 and ev["errors"] == 0 and ev["mean_loss"] > 0
    assert result["search_usage"]["task"]["calls"] <= 24
    assert result["usage"]["task"]["model_calls"] > 0
