"""Cache keys, budget enforcement, usage accounting and the role client, on the scripted model."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from promptascent.errors import BudgetExhausted, ConfigError, ModelServerError
from promptascent.llm.budget import Budget, BudgetGuard
from promptascent.llm.cache import ResponseCache
from promptascent.llm.client import CachePolicy, ModelClient
from promptascent.llm.journal import Journal
from promptascent.llm.scripted import ScriptedLLM
from promptascent.llm.types import CompletionRequest, LoglikRequest, messages
from promptascent.llm.usage import Prices, UsageMeter

BASE = CompletionRequest(messages(("system", "s"), ("user", "hello there")), max_tokens=16, seed=1)


@pytest.mark.parametrize(
    "change",
    [
        {"temperature": 0.5},
        {"max_tokens": 17},
        {"stop": ("\n",)},
        {"seed": 2},
        {"sample_index": 1},
        {"top_p": 0.9},
        {"messages": messages(("system", "s"), ("user", "hello there!"))},
        {"messages": messages(("user", "s"), ("user", "hello there"))},
    ],
)
def test_cache_key_changes_with_every_request_field(change: dict) -> None:
    other = CompletionRequest(**{**BASE.__dict__, **change})
    assert other.cache_key("m") != BASE.cache_key("m")


def test_cache_key_is_stable_and_includes_model() -> None:
    same = CompletionRequest(**BASE.__dict__)
    assert same.cache_key("m") == BASE.cache_key("m")
    assert BASE.cache_key("m") != BASE.cache_key("m2")


def make_client(
    tmp_path: Path | None,
    budget: Budget = Budget(),
    responder=lambda r: "one two three",
    policy: CachePolicy = CachePolicy(),
    prices: Prices = Prices(),
) -> tuple[ModelClient, ScriptedLLM, UsageMeter]:
    llm = ScriptedLLM(responder)
    meter = UsageMeter()
    cache = ResponseCache(tmp_path / "c.sqlite") if tmp_path else None
    client = ModelClient(
        "task",
        llm,
        meter=meter,
        guard=BudgetGuard(budget, meter),
        cache=cache,
        cache_policy=policy,
        prices=prices,
    )
    return client, llm, meter


def test_cache_hit_costs_nothing_and_is_counted(tmp_path: Path) -> None:
    client, llm, meter = make_client(tmp_path, prices=Prices(input=1e6, output=1e6))
    first = client.complete(BASE)
    second = client.complete(BASE)
    assert not first.cached and second.cached and second.text == first.text
    assert len(llm.requests) == 1
    u = meter.snapshot()["task"]
    assert (u.calls, u.cache_hits, u.model_calls) == (2, 1, 1)
    # prompt "s" + "hello there" = 3 scripted tokens, completion 3 tokens, $1 per token
    assert u.spent_dollars == pytest.approx(6.0)
    assert u.dollars == pytest.approx(12.0)  # budgets count the hit too: a rerun replays


def test_refresh_cache_calls_again_and_no_cache_stores_nothing(tmp_path: Path) -> None:
    client, _, _ = make_client(tmp_path)
    client.complete(BASE)
    refresh, llm2, _ = make_client(tmp_path, policy=CachePolicy(read=False, write=True))
    assert not refresh.complete(BASE).cached and len(llm2.requests) == 1
    nocache, llm3, _ = make_client(None, policy=CachePolicy(read=False, write=False))
    nocache.complete(BASE)
    nocache.complete(BASE)
    assert len(llm3.requests) == 2


def test_errors_are_counted_and_never_cached(tmp_path: Path) -> None:
    calls = {"n": 0}

    def flaky(request: CompletionRequest) -> str:
        calls["n"] += 1
        if calls["n"] == 1:
            raise ModelServerError("http://x: 503")
        return "fine"

    client, _, meter = make_client(tmp_path, responder=flaky)
    with pytest.raises(ModelServerError):
        client.complete(BASE)
    assert client.complete(BASE).text == "fine"
    u = meter.snapshot()["task"]
    assert (u.errors, u.model_calls, u.cache_hits) == (1, 1, 0)


def test_budget_refuses_the_call_that_would_overspend(tmp_path: Path) -> None:
    client, llm, meter = make_client(None, Budget(task_calls=3))
    for _ in range(3):
        client.complete(CompletionRequest(messages(("user", f"q{_}")), max_tokens=4))
    with pytest.raises(BudgetExhausted) as e:
        client.complete(BASE)
    assert e.value.limit == "task_calls"
    assert len(llm.requests) == 3 and meter.snapshot()["task"].calls == 3


def test_token_budget_reserves_worst_case_before_the_call() -> None:
    # prompt 3 tokens + 8 per message overhead x2 = 19, max_tokens 16: 35 > 30 -> refused
    client, llm, _ = make_client(None, Budget(tokens=30))
    with pytest.raises(BudgetExhausted) as e:
        client.complete(BASE)
    assert e.value.limit == "tokens" and not llm.requests


def test_dollar_and_minute_budgets() -> None:
    client, _, _ = make_client(None, Budget(dollars=0.5), prices=Prices(input=1e5, output=1e5))
    with pytest.raises(BudgetExhausted) as e:
        client.complete(BASE)
    assert e.value.limit == "dollars"
    now = [0.0]
    meter = UsageMeter()
    guard = BudgetGuard(Budget(minutes=1), meter, clock=lambda: now[0])
    guard.release(guard.reserve("task", tokens=1, dollars=0))
    now[0] = 61.0
    with pytest.raises(BudgetExhausted) as e2:
        guard.reserve("task", tokens=1, dollars=0)
    assert e2.value.limit == "minutes"


def test_concurrent_calls_never_exceed_the_budget() -> None:
    gate = threading.Barrier(8)

    def slow(request: CompletionRequest) -> str:
        return "ok"

    client, llm, meter = make_client(None, Budget(task_calls=10), responder=slow)
    refused = []

    def worker(i: int) -> None:
        gate.wait()
        for j in range(5):
            try:
                client.complete(CompletionRequest(messages(("user", f"{i}-{j}")), max_tokens=2))
            except BudgetExhausted:
                refused.append(1)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(llm.requests) == 10 and len(refused) == 30
    assert meter.snapshot()["task"].calls == 10


def test_per_role_limits_do_not_bind_other_roles() -> None:
    meter = UsageMeter()
    guard = BudgetGuard(Budget(optimizer_calls=1), meter)
    opt = ModelClient("optimizer", ScriptedLLM(lambda r: "x"), meter=meter, guard=guard)
    task = ModelClient("task", ScriptedLLM(lambda r: "x"), meter=meter, guard=guard)
    opt.complete(BASE)
    with pytest.raises(BudgetExhausted):
        opt.complete(CompletionRequest(messages(("user", "other")), max_tokens=4))
    for i in range(3):
        task.complete(CompletionRequest(messages(("user", f"t{i}")), max_tokens=4))
    assert meter.snapshot()["task"].calls == 3


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("task_calls=600,minutes=5", Budget(task_calls=600, minutes=5.0)),
        ("calls=10", Budget(calls=10)),
        ("dollars=0.5, optimizer_tokens=1000", Budget(dollars=0.5, optimizer_tokens=1000)),
    ],
)
def test_budget_parse(text: str, expected: Budget) -> None:
    assert Budget.parse(text) == expected


@pytest.mark.parametrize("text", ["task_calls", "bogus=1", "calls=abc", "calls=0", "minutes=-1"])
def test_budget_parse_errors(text: str) -> None:
    with pytest.raises(ConfigError):
        Budget.parse(text)


def test_scripted_model_truncates_at_max_tokens() -> None:
    llm = ScriptedLLM(lambda r: "a b c d e")
    out = llm.complete(CompletionRequest(messages(("user", "x")), max_tokens=3))
    assert (out.text, out.finish_reason, out.usage.completion_tokens) == ("a b c", "length", 3)


def test_identical_concurrent_requests_are_made_once(tmp_path: Path) -> None:
    release = threading.Event()
    started = threading.Event()

    def slow(request: CompletionRequest) -> str:
        started.set()
        release.wait(5)
        return "answer"

    client, llm, meter = make_client(tmp_path, responder=slow)
    results: list[str] = []
    threads = [
        threading.Thread(target=lambda: results.append(client.complete(BASE).text))
        for _ in range(4)
    ]
    for t in threads:
        t.start()
    started.wait(5)
    release.set()
    for t in threads:
        t.join()
    assert results == ["answer"] * 4 and len(llm.requests) == 1
    u = meter.snapshot()["task"]
    assert (u.calls, u.model_calls, u.cache_hits) == (4, 1, 3)


def test_a_model_failing_every_call_becomes_model_unavailable() -> None:
    from promptascent.errors import ModelUnavailable

    def down(request: CompletionRequest) -> str:
        raise ModelServerError("http://127.0.0.1:9/v1: 503")

    client, _, _ = make_client(None, responder=down)
    client.max_consecutive_errors = 3
    for i in range(2):
        with pytest.raises(ModelServerError):
            client.complete(CompletionRequest(messages(("user", f"q{i}")), max_tokens=2))
    with pytest.raises(ModelUnavailable, match="failed 3 calls in a row"):
        client.complete(BASE)


def _loglik_client(
    tmp_path: Path, budget: Budget = Budget(), journal: Journal | None = None
) -> tuple[ModelClient, ScriptedLLM, UsageMeter]:
    llm = ScriptedLLM(lambda r: "x", loglik_fn=lambda r: [-1.0 * len(c) for c in r.continuations])
    meter = UsageMeter()
    client = ModelClient(
        "task",
        llm,
        meter=meter,
        guard=BudgetGuard(budget, meter),
        cache=ResponseCache(tmp_path / "c.sqlite"),
        journal=journal,
        prices=Prices(input=1e6),
    )
    return client, llm, meter


LOGLIK = LoglikRequest(messages(("user", "is it true")), ("True", "False"))


def test_a_likelihood_call_is_cached_metered_and_priced_like_a_completion(tmp_path: Path) -> None:
    client, llm, meter = _loglik_client(tmp_path)
    first = client.loglik(LOGLIK)
    second = client.loglik(LOGLIK)
    assert first.logprobs == (-4.0, -5.0) and first.tokens == (1, 1)
    assert not first.cached and second.cached and second.logprobs == first.logprobs
    assert len(llm.loglik_requests) == 1
    u = meter.snapshot()["task"]
    # one call each; prompt "is it true" (3) + the two one-word choices = 5 tokens, $1 each
    assert (u.calls, u.cache_hits, u.model_calls) == (2, 1, 1)
    assert (u.prompt_tokens, u.completion_tokens) == (10, 0)
    assert u.spent_dollars == pytest.approx(5.0)


def test_a_likelihood_call_never_shares_a_cache_entry_with_a_completion(tmp_path: Path) -> None:
    client, _, _ = _loglik_client(tmp_path)
    client.complete(CompletionRequest(LOGLIK.messages))
    assert not client.loglik(LOGLIK).cached
    assert LoglikRequest(LOGLIK.messages, ("False", "True")).cache_key("m") != LOGLIK.cache_key("m")


def test_a_likelihood_call_is_journaled_and_replayed_from_the_journal(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "calls.sqlite")
    client, _, _ = _loglik_client(tmp_path, journal=journal)
    client.loglik(LOGLIK)
    assert journal.spent_dollars() == pytest.approx(5.0)  # the paid attempt is journaled
    (tmp_path / "c.sqlite").unlink()  # the shared cache is gone; the journal remains
    again, llm, _ = _loglik_client(tmp_path / "other", journal=journal)
    assert again.loglik(LOGLIK).cached and not llm.loglik_requests


def test_a_likelihood_call_that_does_not_fit_the_budget_is_not_made(tmp_path: Path) -> None:
    client, llm, _ = _loglik_client(tmp_path, Budget(task_tokens=4))
    with pytest.raises(BudgetExhausted):
        client.loglik(LOGLIK)
    assert not llm.loglik_requests


def test_the_budget_question_names_the_first_limit_that_cannot_pay() -> None:
    client, _, _ = make_client(None, Budget(task_calls=5, optimizer_calls=2, calls=6))
    guard = client.guard
    client.complete(BASE)  # one task call used
    assert guard.affords(task=4) and guard.shortfall(task=4) is None
    short = guard.shortfall(task=5)
    assert short is not None and (short.limit, short.left, short.need) == ("task_calls", 4, 5)
    short = guard.shortfall(task=4, optimizer=2)  # each fits alone; together over `calls`
    assert short is not None and (short.limit, short.need) == ("calls", 6)
    assert not guard.affords(optimizer=3)
    assert guard.task_calls_left() == 4 and guard.task_calls_left(optimizer=3) == 2


def test_a_share_of_the_budget_caps_each_call_limit_at_its_part() -> None:
    meter = UsageMeter()
    guard = BudgetGuard(Budget(task_calls=20, optimizer_calls=9, tokens=10_000), meter)
    task = ModelClient("task", ScriptedLLM(lambda r: "x"), meter=meter, guard=guard)
    for i in range(2):
        task.complete(CompletionRequest(messages(("user", f"t{i}")), max_tokens=4))
    share = guard.share(3, keep=6)  # (20 - 2 - 6) // 3 = 4 task calls, 9 // 3 = 3 optimizer
    assert share is not None
    assert share.remaining("task_calls") == 4 and share.remaining("optimizer_calls") == 3
    assert share.budget.tokens == 10_000  # token, dollar and time limits stay the run's
    assert guard.share(3, keep=18) is None  # nothing left to share


def test_a_client_with_another_guard_shares_cache_and_meter_but_checks_that_guard(
    tmp_path: Path,
) -> None:
    client, llm, meter = make_client(tmp_path, Budget(task_calls=10))
    client.complete(BASE)
    tight = client.with_guard(BudgetGuard(Budget(task_calls=2), meter))
    assert tight.complete(BASE).cached and len(llm.requests) == 1  # the same cache
    with pytest.raises(BudgetExhausted):  # 2 calls used of the view's 2
        tight.complete(CompletionRequest(messages(("user", "new")), max_tokens=4))
    assert client.guard.budget.task_calls == 10  # the original client is unchanged
    assert meter.snapshot()["task"].calls == 2
