"""Scoring continuations over HTTP: the replies of llama.cpp's server (recorded from the
real server on SmolLM2-135M), of vLLM and of OpenAI's chat API (shaped as their
documentation and code answer), through the real backend on a mock transport; and the
checks made before any call."""

from __future__ import annotations

import json
import math
from pathlib import Path

import httpx
import pytest

from promptascent.errors import ModelRequestError, ModelResponseError
from promptascent.llm.budget import Budget, BudgetGuard
from promptascent.llm.client import ModelClient
from promptascent.llm.http import OpenAICompatibleLLM
from promptascent.llm.http_loglik import parse_echo, parse_first_token, shared_first_piece
from promptascent.llm.journal import Journal
from promptascent.llm.types import LoglikRequest, messages
from promptascent.llm.usage import Prices, UsageMeter

DATA = Path(__file__).parent / "data" / "loglik"


def recorded(name: str) -> dict:
    return json.loads((DATA / name).read_text())


def test_llama_cpp_echo_gives_the_continuations_log_probability() -> None:
    # the real server's reply for "...assistant\nYes" (one generated token after it)
    value, n = parse_echo(recorded("llamacpp_echo_yes.json"), "Yes", "where")
    assert n == 1 and value == pytest.approx(-2.940171718597412)
    value, n = parse_echo(recorded("llamacpp_echo_multi.json"), "Absolutely yes", "where")
    # "Absol" + "utely" + " yes": the same sum the embedded model computes in process
    assert n == 3 and value == pytest.approx(-13.23396, abs=1e-4)


def test_vllm_echo_with_unconverted_tokens_is_read_too() -> None:
    value, n = parse_echo(recorded("vllm_echo_multi.json"), "Absolutely yes", "where")
    assert n == 2 and value == pytest.approx(-2.25 - 0.5)


def test_an_echo_that_does_not_end_with_the_continuation_is_an_error_not_retried() -> None:
    with pytest.raises(ModelResponseError, match="do not end with the continuation") as e:
        parse_echo(recorded("llamacpp_echo_yes.json"), "No", "where")
    assert not e.value.retryable
    with pytest.raises(ModelResponseError, match="no echoed prompt log-probabilities"):
        parse_echo({"choices": [{"text": "x"}]}, "Yes", "where")


def test_first_token_scoring_reads_each_choice_from_the_top_alternatives() -> None:
    values, missing = parse_first_token(
        recorded("openai_first_token.json"), ("Negative", "Positive", "Neutral"), "where"
    )
    assert values == [-0.4, -1.3, -2.9] and not missing
    values, missing = parse_first_token(
        recorded("openai_first_token.json"), ("Negative", "Mixed"), "where"
    )
    assert values == [-0.4, -5.0] and missing  # unlisted: the lowest listed, an upper bound


def test_first_token_scoring_refuses_two_choices_that_begin_with_one_token() -> None:
    with pytest.raises(ModelRequestError, match="cannot tell apart"):
        parse_first_token(recorded("openai_first_token.json"), ("Negative", "Negligible"), "w")
    assert shared_first_piece(["not funny", "Not sure"]) == ("not funny", "Not sure")
    assert shared_first_piece(["True", "False"]) is None


class Recorder:
    """A mock transport answering each request from `replies` in turn."""

    def __init__(self, *replies: dict) -> None:
        self.replies = list(replies)
        self.bodies: list[dict] = []
        self.paths: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.bodies.append(json.loads(request.content))
        self.paths.append(request.url.path)
        return httpx.Response(200, json=self.replies.pop(0))


def test_the_echo_backend_sends_one_completion_per_choice_rendered_by_the_template(
    tmp_path: Path,
) -> None:
    rec = Recorder(recorded("llamacpp_echo_yes.json"), recorded("llamacpp_echo_multi.json"))
    llm = OpenAICompatibleLLM(
        "http://127.0.0.1:1/v1",
        "local",
        tokenizer="bytes",
        loglik="echo",
        transport=httpx.MockTransport(rec),
    )
    assert llm.info.supports_loglik and llm.info.loglik_repeats_prompt
    meter = UsageMeter()
    journal = Journal(tmp_path / "calls.sqlite")
    client = ModelClient(
        "task",
        llm,
        meter=meter,
        guard=BudgetGuard(Budget(), meter),
        journal=journal,
        prices=Prices(input=1e6, output=1e6),
    )
    req = LoglikRequest(messages(("user", "Is it?")), ("Yes", "Absolutely yes"))
    result = client.loglik(req)
    assert rec.paths == ["/v1/completions", "/v1/completions"]
    chatml = "<|im_start|>user\nIs it?<|im_end|>\n<|im_start|>assistant\n"
    assert [b["prompt"] for b in rec.bodies] == [chatml + "Yes", chatml + "Absolutely yes"]
    assert all(b["echo"] and b["logprobs"] == 1 and b["max_tokens"] == 1 for b in rec.bodies)
    assert result.tokens == (1, 3) and result.logprobs[0] == pytest.approx(-2.94017, abs=1e-5)
    # billed as the server reported: 41 + 43 prompt tokens, one generated token each
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (84, 2)
    assert journal.spent_dollars() == pytest.approx(86.0)
    assert client.loglik(req).cached and len(rec.bodies) == 2  # journaled: not asked again


def test_the_first_token_backend_asks_the_chat_endpoint_once(tmp_path: Path) -> None:
    rec = Recorder(recorded("openai_first_token.json"))
    llm = OpenAICompatibleLLM(
        "http://127.0.0.1:1/v1",
        "gpt-4o-mini",
        tokenizer="bytes",
        loglik="first-token",
        transport=httpx.MockTransport(rec),
    )
    result = llm.loglik(LoglikRequest(messages(("user", "Sentiment?")), ("Negative", "Positive")))
    assert rec.paths == ["/v1/chat/completions"]
    assert rec.bodies[0]["logprobs"] is True and rec.bodies[0]["top_logprobs"] == 20
    assert result.logprobs == (-0.4, -1.3) and result.approximate
    assert math.isclose(result.usage.prompt_tokens, 21)


def test_a_server_that_ignores_echo_is_an_error_for_the_example_and_charged(
    tmp_path: Path,
) -> None:
    rec = Recorder(
        {"choices": [{"text": "Yes"}], "usage": {"prompt_tokens": 5, "completion_tokens": 1}}
    )
    llm = OpenAICompatibleLLM(
        "http://127.0.0.1:1/v1", "m", tokenizer="bytes", loglik="echo",
        transport=httpx.MockTransport(rec),
    )  # fmt: skip
    meter = UsageMeter()
    client = ModelClient("task", llm, meter=meter, guard=BudgetGuard(Budget(), meter))
    with pytest.raises(ModelResponseError, match="echo"):
        client.loglik(LoglikRequest(messages(("user", "q")), ("Yes",)))
    assert len(rec.bodies) == 1  # not retried
    u = meter.snapshot()["task"]
    assert u.failed_attempts == 1 and u.prompt_tokens == 5
