"""Every paid attempt counted, over real sockets (tests/fault_server.py): timeouts and
unusable replies metered, refusals not, retries reserving their own worst case, call
limits counting logical calls, usage reported beyond the request flagged and metered
as reported, and response bodies capped (gzip included)."""

from __future__ import annotations

import gzip
import tracemalloc
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fault_server import FaultServer, fault_server, gzip_bomb
from scripted import optimizer_model, task_model, write_animal_task

from promptascent.config.task import ModelSpec, load_task
from promptascent.errors import BudgetExhausted, ModelRequestError, ModelResponseError
from promptascent.llm.budget import Budget, BudgetGuard
from promptascent.llm.cache import ResponseCache
from promptascent.llm.client import ModelClient
from promptascent.llm.factory import BackendFactory
from promptascent.llm.http import OpenAICompatibleLLM
from promptascent.llm.http_body import BodyTooLarge, BodyUndecodable, read_body
from promptascent.llm.journal import Journal
from promptascent.llm.types import CompletionRequest, TokenUsage, messages
from promptascent.llm.usage import Prices, RoleUsage, UsageMeter
from promptascent.runner import Runner, RunSettings, plan

MODEL = "fault-model"
DOLLAR_A_TOKEN = Prices(input=1e6, output=1e6)  # dollars equal tokens: sums read plainly


def req(text: str = "Hello?", max_tokens: int = 16) -> CompletionRequest:
    return CompletionRequest(
        messages=messages(("system", "Be brief."), ("user", text)), max_tokens=max_tokens
    )


@pytest.fixture()
def srv() -> Iterator[FaultServer]:
    with fault_server(hang_seconds=1.5) as server:
        yield server


class Rig:
    """The HTTP backend on a fault server, in the task role, with a journal."""

    def __init__(self, server: FaultServer, tmp_path: Path, budget: Budget = Budget(), **kw: Any):
        kw.setdefault("timeout", 0.5)
        kw.setdefault("max_retries", 2)
        self.backend = OpenAICompatibleLLM(
            server.base_url,
            MODEL,
            api_key_env=None,
            backoff_base=0.01,
            backoff_max=0.02,
            sleep=lambda s: None,
            **kw,
        )
        self.meter = UsageMeter()
        self.journal = Journal(tmp_path / "calls.sqlite")
        self.cache = ResponseCache(tmp_path / "responses.sqlite")
        self.client = ModelClient(
            "task",
            self.backend,
            meter=self.meter,
            guard=BudgetGuard(budget, self.meter),
            prices=DOLLAR_A_TOKEN,
            journal=self.journal,
            cache=self.cache,
        )

    def worst(self, request: CompletionRequest) -> TokenUsage:
        return TokenUsage(self.client.prompt_tokens(request), request.max_tokens)

    @property
    def usage(self) -> RoleUsage:
        return self.meter.snapshot()["task"]

    def attempts(self) -> list[tuple[str, int, int, int]]:
        rows = self.journal._conn().execute(
            "SELECT outcome, prompt_tokens, completion_tokens, estimated FROM attempts ORDER BY id"
        )
        return [tuple(r) for r in rows]

    def close(self) -> None:
        self.backend.close()
        self.journal.close()
        self.cache.close()


@pytest.fixture()
def rig(srv: FaultServer, tmp_path: Path) -> Iterator[Rig]:
    r = Rig(srv, tmp_path)
    yield r
    r.close()


def test_worst_case_counts_real_tokens_and_the_templates_allowance(rig: Rig) -> None:
    # The fault server's tokenizer: one token per word. "Be brief." 2, "Hello?" 1; 8 per
    # message; 32 for the template's fixed part.
    assert rig.worst(req()) == TokenUsage(32 + (2 + 8) + (1 + 8), 16)


@pytest.mark.parametrize(
    ("fault", "outcome"),
    [
        ("hang", "timeout"),
        ("drop", "connection lost"),
        ("truncated", "connection lost"),
        ("malformed", "unusable reply"),
        ("empty_choices", "unusable reply"),
    ],
)
def test_an_attempt_that_may_be_billed_is_metered_at_the_calls_worst_case(
    srv: FaultServer, rig: Rig, fault: str, outcome: str
) -> None:
    srv.push(fault, "ok")
    request = req()
    worst = rig.worst(request)
    reply = rig.client.complete(request)
    u = rig.usage
    assert (u.calls, u.model_calls, u.failed_attempts, u.cache_hits) == (1, 1, 1, 0)
    assert (u.prompt_tokens, u.completion_tokens) == (
        worst.prompt_tokens + reply.usage.prompt_tokens,
        worst.completion_tokens + reply.usage.completion_tokens,
    )
    assert u.spent_dollars == pytest.approx(worst.total + reply.usage.total)
    assert u.dollars == pytest.approx(u.spent_dollars)
    assert rig.attempts() == [
        (outcome, worst.prompt_tokens, worst.completion_tokens, 1),
        ("reply", reply.usage.prompt_tokens, reply.usage.completion_tokens, 0),
    ]
    assert rig.journal.spent_dollars() == pytest.approx(u.spent_dollars)


@pytest.mark.parametrize("fault", ["429:0", "500", "503"])
def test_a_refusal_with_an_error_status_is_not_billed(
    srv: FaultServer, rig: Rig, fault: str
) -> None:
    srv.push(fault, "ok")
    reply = rig.client.complete(req())
    u = rig.usage
    assert srv.completions == 2 and u.failed_attempts == 0
    assert u.spent_dollars == pytest.approx(reply.usage.total)
    assert [a[0] for a in rig.attempts()] == ["reply"]


@pytest.mark.parametrize("fault", ["401", "400"])
def test_a_rejected_call_costs_nothing_and_journals_nothing(
    srv: FaultServer, rig: Rig, fault: str
) -> None:
    srv.push(fault)
    with pytest.raises(ModelRequestError):
        rig.client.complete(req())
    assert rig.usage.spent_dollars == 0 and rig.attempts() == []


def test_an_unusable_reply_that_reports_its_usage_is_charged_as_reported(tmp_path: Path) -> None:
    replies = [
        httpx.Response(
            200, json={"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 5}}
        ),
        httpx.Response(
            200,
            json={
                "choices": [{"message": {"role": "assistant", "content": "hi"}}],
                "usage": {"prompt_tokens": 7, "completion_tokens": 1},
            },
        ),
    ]
    backend = OpenAICompatibleLLM(
        "http://mock.test/v1",
        MODEL,
        api_key_env=None,
        tokenizer="bytes",
        transport=httpx.MockTransport(lambda request: replies.pop(0)),
        sleep=lambda s: None,
    )
    meter = UsageMeter()
    client = ModelClient(
        "task", backend, meter=meter, guard=BudgetGuard(Budget(), meter), prices=DOLLAR_A_TOKEN
    )
    client.complete(req())
    u = meter.snapshot()["task"]
    assert (u.failed_attempts, u.prompt_tokens, u.completion_tokens) == (1, 14, 6)
    assert u.spent_dollars == pytest.approx(20)


@pytest.mark.parametrize("limit", ["tokens", "dollars"])
def test_a_retry_that_might_not_fit_the_budget_is_not_made(
    srv: FaultServer, tmp_path: Path, limit: str
) -> None:
    probe = Rig(srv, tmp_path / "probe")
    worst = probe.worst(req()).total
    probe.close()
    # room for the first attempt's worst case and not quite for a second one
    rig = Rig(srv, tmp_path, Budget(**{limit: 2 * worst - 1}))
    srv.push("malformed", "ok")
    with pytest.raises(BudgetExhausted) as stop:
        rig.client.complete(req())
    assert stop.value.limit == limit
    assert srv.completions == 1  # the retry was not made
    u = rig.usage
    assert (u.calls, u.failed_attempts, u.tokens) == (0, 1, worst)
    assert u.spent_dollars == pytest.approx(worst)
    rig.close()


def test_a_retry_that_fits_the_budget_is_made(srv: FaultServer, tmp_path: Path) -> None:
    probe = Rig(srv, tmp_path / "probe")
    worst = probe.worst(req()).total
    probe.close()
    rig = Rig(srv, tmp_path, Budget(tokens=2 * worst))
    srv.push("malformed", "ok")
    assert rig.client.complete(req()).text == "echo: Hello?"
    assert srv.completions == 2 and rig.usage.tokens <= 2 * worst
    rig.close()


def test_call_limits_count_logical_calls_not_attempts(srv: FaultServer, tmp_path: Path) -> None:
    rig = Rig(srv, tmp_path, Budget(task_calls=2))
    srv.push("malformed", "hang", "ok")
    rig.client.complete(req("one"))
    rig.client.complete(req("two"))
    with pytest.raises(BudgetExhausted) as stop:
        rig.client.complete(req("three"))
    assert stop.value.limit == "task_calls"
    u = rig.usage
    assert (u.calls, u.model_calls, u.failed_attempts) == (2, 2, 2)
    assert srv.completions == 4
    rig.close()


def test_usage_reported_beyond_max_tokens_is_flagged_metered_as_reported_and_stops_the_next_call(
    srv: FaultServer, tmp_path: Path
) -> None:
    probe = Rig(srv, tmp_path / "probe")
    worst = probe.worst(req()).total
    probe.close()
    rig = Rig(srv, tmp_path, Budget(tokens=worst + 40))
    srv.push("usage_10x")
    reply = rig.client.complete(req(max_tokens=16))
    assert reply.usage.completion_tokens == 160
    u = rig.usage
    assert u.usage_anomalies == 1 and u.completion_tokens == 160
    assert u.spent_dollars == pytest.approx(reply.usage.total)
    assert rig.journal.anomalies() == [("task", "160 completion tokens for max_tokens 16")]
    with pytest.raises(BudgetExhausted) as stop:
        rig.client.complete(req("again"))
    assert stop.value.limit == "tokens" and srv.completions == 1
    rig.close()


ANOMALY_RUN = """\
models:
  task: {{backend: openai, model: fault-model, base_url: "{url}", api_key_env: null}}
task_params: {{max_tokens: 8}}
optimizer: {{name: ape, num_candidates: 2, eval_examples: 4, rounds: 0, top_k: 1, final_k: 1}}
budget: {{task_tokens: {tokens}}}
"""


def anomaly_run(tmp_path: Path, fault: str, tokens: int) -> tuple[Any, int]:
    """A run whose task model is the fault server answering every call with `fault`,
    under a task-token budget; returns its result and the completions made."""
    with fault_server(default=fault) as server:
        path = write_animal_task(
            tmp_path / fault, extra=ANOMALY_RUN.format(url=server.base_url, tokens=tokens)
        )
        path.write_text(
            path.read_text().replace(
                "evaluation: {concurrency: 2}",
                "evaluation: {concurrency: 1, test: false, train_gap_examples: 0}",
            )
        )
        settings = RunSettings(
            runs_dir=tmp_path / "runs",
            cache_dir=None,
            backends={"optimizer": optimizer_model(), "judge": task_model()},
        )
        return Runner(plan(load_task(path)), settings).run(), server.completions


def test_a_run_whose_server_reports_ten_times_max_tokens_stops_on_the_reported_usage_and_notes_it(
    tmp_path: Path,
) -> None:
    tokens = 250
    honest, honest_calls = anomaly_run(tmp_path, "ok", tokens)
    result, made = anomaly_run(tmp_path, "usage_10x", tokens)
    u = result.usage["task"]
    assert result.status == "budget" and result.stopped_by == "task_tokens"
    assert u["completion_tokens"] == 80 * made and u["usage_anomalies"] == made
    assert u["tokens"] <= tokens + 80 - 8  # reservations cover all but the over-report
    assert made < honest_calls / 2  # the reported figures, not honest ones, filled it
    assert honest.usage["task"]["usage_anomalies"] == 0
    assert not any("beyond the request" in n for n in honest.notes)
    assert any(
        "the task model's server reported usage beyond the request's limits" in n
        and "80 completion tokens for max_tokens 8" in n
        for n in result.notes
    )


def test_a_reply_that_is_not_unicode_text_is_unusable_and_never_journaled(tmp_path: Path) -> None:
    replies = [
        httpx.Response(200, content=b'{"choices": [{"message": {"content": "bad \\ud800"}}]}'),
        httpx.Response(200, json={"choices": [{"message": {"content": "fine"}}]}),
    ]
    backend = OpenAICompatibleLLM(
        "http://mock.test/v1",
        MODEL,
        api_key_env=None,
        tokenizer="bytes",
        transport=httpx.MockTransport(lambda request: replies.pop(0)),
        sleep=lambda s: None,
    )
    meter = UsageMeter()
    journal = Journal(tmp_path / "calls.sqlite")
    client = ModelClient(
        "task", backend, meter=meter, guard=BudgetGuard(Budget(), meter), journal=journal
    )
    assert client.complete(req()).text == "fine"
    assert meter.snapshot()["task"].failed_attempts == 1
    journal.close()


# -- response bodies: capped, decompressed under the cap ---------------------------------

CAP = 1024 * 1024


@pytest.mark.parametrize("fault", ["huge", "gzip_bomb"])
def test_an_oversize_reply_is_an_error_for_its_example_never_journaled_nor_cached(
    srv: FaultServer, tmp_path: Path, fault: str
) -> None:
    gzip_bomb()  # made before the clock runs (about a second, once)
    rig = Rig(srv, tmp_path, max_response_bytes=CAP)
    srv.push(fault)
    request = req()
    tracemalloc.start()
    try:
        with pytest.raises(ModelResponseError) as info:
            rig.client.complete(request)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "larger than 1048576 bytes (max_response_bytes)" in str(info.value)
    assert not info.value.retryable and srv.completions == 1
    assert peak < 8 * CAP  # of a 64 MiB body: it stopped reading at the cap
    key = request.cache_key(rig.client.model_id)
    assert rig.journal.get(key) is None and rig.cache.get(key) is None
    assert rig.usage.failed_attempts == 1 and rig.usage.errors == 1  # billable: metered
    assert [a[0] for a in rig.attempts()] == ["reply too large"]
    rig.close()


def test_a_gzip_reply_is_decoded(srv: FaultServer, rig: Rig) -> None:
    srv.push("gzip")
    assert rig.client.complete(req("squeezed")).text == "echo: squeezed"


def test_the_response_cap_is_set_per_model_in_the_task_file(tmp_path: Path) -> None:
    with fault_server(reply="word " * 1000) as server:  # a 5,000-byte reply
        spec = ModelSpec(
            backend="openai",
            model=MODEL,
            base_url=server.base_url,
            api_key_env=None,
            max_response_bytes=4096,
        )
        assert ModelSpec().max_response_bytes == 8 * 1024 * 1024  # the default: 8 MiB
        factory = BackendFactory()
        backend = factory.get(spec, role="task")
        assert isinstance(backend, OpenAICompatibleLLM) and backend.max_response_bytes == 4096
        long = req(max_tokens=2000)
        with pytest.raises(ModelResponseError, match="larger than 4096 bytes"):
            backend.complete(long)
        roomy = factory.get(spec.model_copy(update={"max_response_bytes": 8192}), role="task")
        assert roomy.complete(long).text.startswith("word word")
        factory.close()


@pytest.mark.parametrize(
    ("encoding", "compress"),
    [
        ("gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("deflate", lambda data: zlib.compress(data, wbits=-zlib.MAX_WBITS)),  # raw, as some send
        ("identity", lambda data: data),
    ],
)
def test_a_body_is_decoded_as_it_streams(encoding: str, compress: Any) -> None:
    data = b'{"answer": "' + b"x" * 200_000 + b'"}'
    assert read_body(streamed(compress(data), encoding), limit=len(data)) == data
    with pytest.raises(BodyTooLarge):
        read_body(streamed(compress(data), encoding), limit=len(data) - 1)


def test_a_damaged_or_unknown_encoding_is_undecodable() -> None:
    with pytest.raises(BodyUndecodable, match="damaged"):
        read_body(streamed(b"\x1f\x8b\x08\x00garbage" * 10, "gzip"), limit=CAP)
    with pytest.raises(BodyUndecodable, match="unsupported Content-Encoding 'br'"):
        read_body(streamed(b"abc", "br"), limit=CAP)


def streamed(raw: bytes, encoding: str) -> httpx.Response:
    """A response not yet read: `read_body` takes its body in chunks."""
    return httpx.Response(200, headers={"Content-Encoding": encoding}, stream=httpx.ByteStream(raw))
