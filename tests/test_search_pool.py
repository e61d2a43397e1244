"""The candidate pool is the one way candidates and evaluations enter a run: `propose`
and `record` store and emit the event the run store and progress follow."""

from __future__ import annotations

import dataclasses

from promptascent.evaluation.result import EvaluationResult, ExampleResult
from promptascent.events import CandidateEvaluated, CandidateProposed, Event
from promptascent.prompts.prompt import Prompt
from promptascent.search.pool import Candidate, CandidatePool


def test_a_proposed_candidate_is_announced_once() -> None:
    seen: list[Event] = []
    pool = CandidatePool(emit=seen.append)
    first, new = pool.propose(Candidate(Prompt("Name the animal."), operation="seed"))
    again, new_again = pool.propose(Candidate(Prompt("Name the animal."), ("x",), "induce", 1))
    assert new and not new_again and again is first and again.operation == "seed"
    assert [type(e) for e in seen] == [CandidateProposed]
    assert seen[0] == dataclasses.replace(CandidateProposed(first.id, (), "seed", 0), ts=seen[0].ts)


def test_a_recorded_evaluation_is_stored_then_announced() -> None:
    seen: list[tuple[Event, float | None]] = []
    pool = CandidatePool()
    cand, _ = pool.add(Candidate(Prompt("Name the animal.")))
    # the event comes after the evaluation is stored: a listener can read it back
    pool.emit = lambda e: seen.append((e, cand.score("dev")))
    results = (ExampleResult("a", "cat", 1.0), ExampleResult("b", "", None, error="down"))
    result = EvaluationResult(cand.id, results)
    pool.record(cand, "dev", result)
    assert cand.evaluations["dev"] is result
    (event, stored), *more = seen
    assert not more and stored == 1.0
    assert event == CandidateEvaluated(cand.id, "dev", 1.0, 1, 0, 1, ts=event.ts)  # n: scored
