"""The money of each call, exactly, on the scripted model: attempts a backend reports
(llm/metering.py), the journal's record of every paid attempt, and a resumed run's
meter starting from it (llm/journal.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from promptascent.errors import BudgetExhausted, ModelTimeout
from promptascent.llm.budget import Budget, BudgetGuard
from promptascent.llm.cache import ResponseCache
from promptascent.llm.client import ModelClient
from promptascent.llm.journal import Journal
from promptascent.llm.metering import UsageLimits, current_attempt_meter
from promptascent.llm.scripted import ScriptedLLM
from promptascent.llm.types import Completion, CompletionRequest, TokenUsage, messages
from promptascent.llm.usage import Prices, RoleUsage, UsageMeter

# $1 a token: dollars read as tokens. Scripted tokens are words.
PRICES = Prices(input=1e6, output=1e6)
REQ = CompletionRequest(messages(("user", "one two three")), max_tokens=10)
# 3 prompt words + 8 for the message; max_tokens 10
WORST = TokenUsage(3 + 8, 10)
REPLY = "a b"  # 2 tokens; prompt 3
PAID = TokenUsage(3, 2)


def req(text: str) -> CompletionRequest:
    return CompletionRequest(messages(("user", text)), max_tokens=10)


class Flaky:
    """A scripted responder that behaves like a retrying HTTP backend: for each of
    `failures` attempts it charges a billable failure (usage `reported`, None for
    unknown) and retries, reserving first; then it answers `reply`."""

    def __init__(self, failures: int = 0, reported: TokenUsage | None = None) -> None:
        self.failures = failures
        self.reported = reported
        self.attempts = 0

    def __call__(self, request: CompletionRequest) -> str:
        meter = current_attempt_meter()
        for _ in range(self.failures):
            self.attempts += 1
            meter.charge_failed(self.reported, "timeout")
            meter.before_retry()
        self.attempts += 1
        return REPLY


def client(
    journal: Journal | None,
    responder: Callable[[CompletionRequest], str] | None = None,
    budget: Budget = Budget(),
) -> ModelClient:
    meter = UsageMeter()
    return ModelClient(
        "task",
        ScriptedLLM(responder or Flaky()),
        meter=meter,
        guard=BudgetGuard(budget, meter),
        prices=PRICES,
        journal=journal,
    )


def usage(c: ModelClient) -> RoleUsage:
    return c.meter.snapshot()["task"]


def nothing_reserved(c: ModelClient) -> bool:
    return all(abs(v) < 1e-9 for v in c.guard._reserved.values())


def test_a_billable_failed_attempt_is_charged_at_the_worst_case_and_the_reply_as_reported(
    tmp_path: Path,
) -> None:
    c = client(Journal(tmp_path / "calls.sqlite"), Flaky(failures=1))
    c.complete(REQ)
    u = usage(c)
    assert (u.calls, u.model_calls, u.failed_attempts, u.cache_hits) == (1, 1, 1, 0)
    assert (u.prompt_tokens, u.completion_tokens) == (11 + 3, 10 + 2)
    assert u.spent_dollars == pytest.approx(WORST.total + PAID.total)
    assert c.journal is not None and c.journal.spent_dollars() == pytest.approx(u.spent_dollars)
    assert nothing_reserved(c)


def test_a_failed_attempt_with_reported_usage_is_charged_as_reported() -> None:
    c = client(None, Flaky(failures=1, reported=TokenUsage(5, 1)))
    c.complete(REQ)
    assert usage(c).tokens == 6 + PAID.total


def test_each_retry_reserves_its_own_worst_case_and_is_not_made_when_it_might_not_fit() -> None:
    flaky = Flaky(failures=1)
    # one attempt's worst case (21) fits; the failed one's charge (21) plus a retry's does not
    c = client(None, flaky, Budget(tokens=2 * WORST.total - 1))
    with pytest.raises(BudgetExhausted) as stop:
        c.complete(REQ)
    assert stop.value.limit == "tokens" and flaky.attempts == 1
    u = usage(c)
    assert (u.calls, u.failed_attempts, u.tokens) == (0, 1, WORST.total)
    assert nothing_reserved(c)
    made = client(None, Flaky(failures=1), Budget(tokens=2 * WORST.total))
    assert made.complete(REQ).text == REPLY


def test_a_call_limit_counts_one_call_however_many_attempts_it_took() -> None:
    c = client(None, Flaky(failures=3), Budget(task_calls=1))
    c.complete(REQ)
    with pytest.raises(BudgetExhausted) as stop:
        c.complete(req("another"))
    assert stop.value.limit == "task_calls"
    assert (usage(c).calls, usage(c).failed_attempts) == (1, 3)


def test_a_failed_call_releases_every_reservation() -> None:
    def fails(request: CompletionRequest) -> str:
        current_attempt_meter().charge_failed(None, "timeout")
        current_attempt_meter().before_retry()
        raise ModelTimeout("http://x: timed out")

    c = client(None, fails)
    with pytest.raises(ModelTimeout):
        c.complete(REQ)
    u = usage(c)
    assert (u.calls, u.errors, u.failed_attempts, u.tokens) == (0, 1, 1, WORST.total)
    assert nothing_reserved(c)


class OverReporting(ScriptedLLM):
    """Reports 50 completion tokens whatever max_tokens was."""

    def complete(self, request: CompletionRequest) -> Completion:
        return Completion("w", "length", TokenUsage(3, 50))


def test_usage_limits_flag_completions_beyond_max_tokens_and_absurd_prompts() -> None:
    limits = UsageLimits.of(REQ.messages, REQ.max_tokens)
    assert limits.anomaly(TokenUsage(3, 10)) is None
    assert limits.anomaly(TokenUsage(3, 100)) == "100 completion tokens for max_tokens 10"
    ceiling = len("one two three") + 64 + 256
    assert limits.anomaly(TokenUsage(ceiling, 1)) is None
    assert limits.anomaly(TokenUsage(ceiling + 1, 1)) == (
        f"{ceiling + 1} prompt tokens for a prompt of at most {ceiling}"
    )


def test_a_reply_beyond_the_requests_limits_is_counted_as_an_anomaly_and_metered_as_reported(
    tmp_path: Path,
) -> None:
    llm = OverReporting(lambda r: "w")
    meter = UsageMeter()
    journal = Journal(tmp_path / "calls.sqlite")
    c = ModelClient(
        "task",
        llm,
        meter=meter,
        guard=BudgetGuard(Budget(tokens=WORST.total + 30), meter),
        prices=PRICES,
        journal=journal,
    )
    c.complete(REQ)
    assert usage(c).usage_anomalies == 1 and usage(c).completion_tokens == 50
    assert journal.anomalies() == [("task", "50 completion tokens for max_tokens 10")]
    with pytest.raises(BudgetExhausted):  # 53 used: the next worst case (21) does not fit
        c.complete(req("next"))


# -- a resumed run starts from what was paid ---------------------------------------------


def earlier_process(path: Path) -> RoleUsage:
    """What a killed process did: paid X (after one failed attempt), paid Y, and failed
    once on Z with no reply (killed mid-retry)."""
    journal = Journal(path)
    c = client(journal, Flaky(failures=1))
    c.complete(req("x"))
    c.backend = ScriptedLLM(Flaky())
    c.complete(req("y"))

    def killed(request: CompletionRequest) -> str:
        current_attempt_meter().charge_failed(None, "timeout")
        raise ModelTimeout("killed mid-retry")

    c.backend = ScriptedLLM(killed)
    with pytest.raises(ModelTimeout):
        c.complete(req("z"))
    journal.close()
    return usage(c)


def test_a_resumed_run_starts_from_what_earlier_processes_paid(tmp_path: Path) -> None:
    before = earlier_process(tmp_path / "calls.sqlite")
    journal = Journal(tmp_path / "calls.sqlite")
    flaky = Flaky()
    c = client(journal, flaky)
    c.meter.carry_over(journal.carry_over())
    u = usage(c)
    assert (u.model_calls, u.failed_attempts) == (2, 2)
    assert u.spent_dollars == pytest.approx(before.spent_dollars) == journal.spent_dollars()
    # Z's failed attempt will not be replayed: counted against the budget now
    one_word = (1 + 8) + 10  # the worst case of a one-word request
    assert u.calls == 0 and u.tokens == one_word
    c.complete(req("x"))  # a replay of a call paid earlier: that call, no cache hit
    u = usage(c)
    assert (u.calls, u.cache_hits, u.model_calls) == (1, 0, 2) and flaky.attempts == 0
    assert u.tokens == one_word + one_word + (1 + 2)  # X's reply and its failed attempt
    c.complete(req("x"))  # asked again in this process: a cache hit, as in one process
    assert (usage(c).calls, usage(c).cache_hits) == (2, 1)
    c.complete(req("y"))
    c.complete(req("z"))  # never answered: paid now
    u = usage(c)
    assert (u.model_calls, u.calls, flaky.attempts) == (3, 4, 1)
    assert u.spent_dollars == pytest.approx(journal.spent_dollars())


def test_a_resumed_run_counts_the_same_as_one_that_was_never_interrupted(tmp_path: Path) -> None:
    once = client(Journal(tmp_path / "once.sqlite"), Flaky())
    split = tmp_path / "split.sqlite"
    first = client(Journal(split), Flaky())
    calls = [req(w) for w in ("a", "b", "a", "c", "d", "b")]
    for r in calls:
        once.complete(r)
    for r in calls[:3]:
        first.complete(r)
    journal = Journal(split)
    second = client(journal, Flaky())
    second.meter.carry_over(journal.carry_over())
    for r in calls:  # the resumed run replays the search from the start
        second.complete(r)
    a, b = usage(once), usage(second)
    assert (a.calls, a.cache_hits, a.model_calls) == (b.calls, b.cache_hits, b.model_calls)
    assert (a.tokens, a.dollars, a.spent_dollars) == (b.tokens, b.dollars, b.spent_dollars)


def test_a_journal_from_before_attempts_were_recorded_replays_as_cache_hits(
    tmp_path: Path,
) -> None:
    old = ResponseCache(tmp_path / "calls.sqlite")  # replies only, as journals were
    c = client(None, Flaky())
    old.put(REQ.cache_key(c.model_id), "{}", c.backend.complete(REQ))
    old.close()
    journal = Journal(tmp_path / "calls.sqlite")
    c = client(journal, Flaky())
    c.meter.carry_over(journal.carry_over())
    c.complete(REQ)
    assert (usage(c).model_calls, usage(c).cache_hits, usage(c).spent_dollars) == (0, 1, 0)


def test_an_evaluation_cache_hit_for_a_call_paid_earlier_counts_as_that_call(
    tmp_path: Path,
) -> None:
    first = client(Journal(tmp_path / "calls.sqlite"), Flaky())
    reply = first.complete(REQ)
    journal = Journal(tmp_path / "calls.sqlite")
    c = client(journal, Flaky())
    c.meter.carry_over(journal.carry_over())
    c.replay(reply, lambda: REQ)
    c.replay(reply, lambda: REQ)
    assert (usage(c).calls, usage(c).cache_hits, usage(c).model_calls) == (2, 1, 1)
