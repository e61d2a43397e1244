"""Integration tests on the real embedded model (SmolLM2-135M-Instruct via llama.cpp)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from promptascent.errors import ModelRequestError
from promptascent.llm.embedded import EmbeddedLLM
from promptascent.llm.types import CompletionRequest, LoglikRequest, messages

pytestmark = pytest.mark.embedded

QUESTION = messages(("user", "Is the sky blue on a clear day? Answer yes or no."))


def test_completion_is_deterministic_at_temperature_zero(embedded: EmbeddedLLM) -> None:
    req = CompletionRequest(QUESTION, max_tokens=12, seed=0)
    a, b = embedded.complete(req), embedded.complete(req)
    assert a.text and a.text == b.text
    assert a.usage.prompt_tokens > 10 and 0 < a.usage.completion_tokens <= 12


def test_usage_counts_come_from_the_model_tokenizer(embedded: EmbeddedLLM) -> None:
    out = embedded.complete(CompletionRequest(QUESTION, max_tokens=4))
    rendered = embedded.render(QUESTION)
    assert out.usage.prompt_tokens == embedded.count_tokens(rendered)
    assert out.finish_reason in ("stop", "length")


def test_max_tokens_truncation_is_reported(embedded: EmbeddedLLM) -> None:
    out = embedded.complete(
        CompletionRequest(messages(("user", "Write a long story about a dragon.")), max_tokens=5)
    )
    assert out.finish_reason == "length" and out.usage.completion_tokens == 5


def test_sampling_differs_by_sample_index(embedded: EmbeddedLLM) -> None:
    prompt = messages(("user", "Invent a name for a cat."))
    outs = {
        embedded.complete(
            CompletionRequest(prompt, temperature=1.0, max_tokens=12, seed=7, sample_index=i)
        ).text
        for i in range(4)
    }
    assert len(outs) > 1


def test_concurrent_calls_match_serial_calls(embedded: EmbeddedLLM) -> None:
    reqs = [
        CompletionRequest(messages(("user", f"What is {i} plus {i}?")), max_tokens=10, seed=0)
        for i in range(6)
    ]
    serial = [embedded.complete(r).text for r in reqs]
    with ThreadPoolExecutor(4) as pool:
        parallel = list(pool.map(lambda r: embedded.complete(r).text, reqs))
    assert parallel == serial


def test_loglik_prefers_the_sensible_continuation(embedded: EmbeddedLLM) -> None:
    scores = embedded.loglik(LoglikRequest(QUESTION, ("Yes", "Banana helicopter")))
    assert scores[0] > scores[1] and all(s < 0 for s in scores)
    # the prompt prefix is reused: asking again gives identical numbers
    assert embedded.loglik(LoglikRequest(QUESTION, ("Yes", "Banana helicopter"))) == scores


def test_prompt_longer_than_the_context_is_a_request_error(embedded: EmbeddedLLM) -> None:
    long = messages(("user", "word " * 5000))
    with pytest.raises(ModelRequestError, match=r"context|exceed"):
        embedded.complete(CompletionRequest(long, max_tokens=4))


def test_missing_model_file_is_a_config_error(tmp_path: Path) -> None:
    from promptascent.errors import ConfigError

    with pytest.raises(ConfigError, match="not found"):
        EmbeddedLLM(tmp_path / "nope.gguf")
