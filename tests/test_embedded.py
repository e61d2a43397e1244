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
    result = embedded.loglik(LoglikRequest(QUESTION, ("Yes", "Banana helicopter")))
    scores = result.logprobs
    assert scores[0] > scores[1] and all(s < 0 for s in scores)
    assert result.tokens[0] == 1 and result.tokens[1] > 1
    # the prompt prefix is reused: asking again gives identical numbers
    again = embedded.loglik(LoglikRequest(QUESTION, ("Yes", "Banana helicopter")))
    assert again.logprobs == scores


LONG_SYSTEM = (
    "You are a careful assistant. Read the question, think about the meaning of every "
    "word in it, and answer with one word only. "
) * 3


def _interleaved_requests() -> list[LoglikRequest]:
    """Prompts that share long prefixes of different lengths (a system text of several
    blocks, then questions that differ early or late), and a short one."""
    questions = [f"Question {i}: is {w} a kind of {k}?" for i, (w, k) in enumerate(
        [("a cat", "animal"), ("an apple", "fruit"), ("a car", "vehicle"), ("rain", "food")]
    )]  # fmt: skip
    reqs = [
        LoglikRequest(messages(("system", LONG_SYSTEM), ("user", q)), ("Yes", "No", "Maybe not"))
        for q in questions
    ]
    reqs += [LoglikRequest(messages(("user", q)), ("Yes", "No")) for q in questions[:2]]
    return reqs


def test_loglik_does_not_depend_on_what_the_instance_evaluated_before() -> None:
    """Fresh instances give the reference; one instance then answers the same requests
    interleaved with each other and with completions (which leave other prompts and
    generated tokens in its KV cache). Every number must be identical, bit for bit."""
    reqs = _interleaved_requests()
    reference = []
    for req in reqs:
        fresh = EmbeddedLLM(n_ctx=2048, instances=1)
        reference.append(fresh.loglik(req).logprobs)
        fresh.close()
    llm = EmbeddedLLM(n_ctx=2048, instances=1)
    try:
        order = [0, 1, 0, 4, 2, 2, 5, 3, 0, 1, 4, 3]
        for step, i in enumerate(order):
            if step % 3 == 1:
                llm.complete(CompletionRequest(reqs[(i + 1) % len(reqs)].messages, max_tokens=6))
            assert llm.loglik(reqs[i]).logprobs == reference[i], (step, i)
    finally:
        llm.close()


def test_completions_do_not_depend_on_what_the_instance_evaluated_before() -> None:
    reqs = [CompletionRequest(r.messages, max_tokens=10) for r in _interleaved_requests()]
    reference = []
    for req in reqs:
        fresh = EmbeddedLLM(n_ctx=2048, instances=1)
        reference.append(fresh.complete(req).text)
        fresh.close()
    llm = EmbeddedLLM(n_ctx=2048, instances=1)
    try:
        for i in [0, 1, 0, 4, 2, 5, 3, 1]:
            llm.loglik(LoglikRequest(reqs[(i + 2) % len(reqs)].messages, ("Yes",)))
            assert llm.complete(reqs[i]).text == reference[i], i
    finally:
        llm.close()


def test_prompt_longer_than_the_context_is_a_request_error(embedded: EmbeddedLLM) -> None:
    long = messages(("user", "word " * 5000))
    with pytest.raises(ModelRequestError, match=r"context|exceed"):
        embedded.complete(CompletionRequest(long, max_tokens=4))


def test_missing_model_file_is_a_config_error(tmp_path: Path) -> None:
    from promptascent.errors import ConfigError

    with pytest.raises(ConfigError, match="not found"):
        EmbeddedLLM(tmp_path / "nope.gguf")
