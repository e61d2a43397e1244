"""The Evaluator on the scripted model: scores, unparsed and error counts, caches, budget."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from scripted import KEY, animal_dataset, task_model, write_animal_task

from promptascent import RunSettings, optimize
from promptascent.errors import BudgetExhausted, ModelServerError
from promptascent.evaluation.cache import EvaluationCache
from promptascent.evaluation.evaluator import Evaluator, TaskParams
from promptascent.evaluation.result import compare
from promptascent.llm.budget import Budget, BudgetGuard
from promptascent.llm.client import ModelClient
from promptascent.llm.scripted import ScriptedLLM
from promptascent.llm.types import CompletionRequest
from promptascent.llm.usage import UsageMeter
from promptascent.metrics.registry import get_metric
from promptascent.prompts.prompt import Prompt
from promptascent.store.run_store import RunStore

EXAMPLES = list(animal_dataset("dev", 12))


def evaluator(
    llm: ScriptedLLM,
    *,
    budget: Budget = Budget(),
    cache: EvaluationCache | None = None,
    concurrency: int = 3,
    params: TaskParams = TaskParams(max_tokens=8),
) -> tuple[Evaluator, UsageMeter]:
    meter = UsageMeter()
    client = ModelClient("task", llm, meter=meter, guard=BudgetGuard(budget, meter))
    return (
        Evaluator(
            client,
            get_metric("choice_accuracy"),
            params=params,
            concurrency=concurrency,
            cache=cache,
        ),
        meter,
    )


def test_scores_each_example_and_keeps_order() -> None:
    ev, meter = evaluator(task_model())
    good = ev.evaluate(Prompt(KEY), EXAMPLES)
    bad = ev.evaluate(Prompt("Which animal?"), EXAMPLES)
    assert [r.example_id for r in good.results] == [ex.id for ex in EXAMPLES]
    assert good.mean == 1.0 and bad.mean == 0.0 and good.n == 12
    assert meter.snapshot()["task"].calls == 24
    ci = good.ci()
    assert ci.low == ci.high == 1.0
    diff = compare(bad, good)
    assert diff.mean_diff == 1.0 and diff.wins == 12 and diff.low > 0


def test_output_naming_no_choice_scores_zero_and_is_counted_unparsed() -> None:
    ev, _ = evaluator(ScriptedLLM(lambda r: "I cannot say."))
    res = ev.evaluate(Prompt("x"), EXAMPLES)
    assert res.mean == 0.0 and res.unparsed == 12
    assert res.predictions() == {"<unparsed>": 12}


def test_model_errors_are_counted_never_scored() -> None:
    def flaky(request: CompletionRequest) -> str:
        if "cat" in request.messages[-1].content:
            raise ModelServerError("http://127.0.0.1:1/v1: 503")
        return "dog"

    ev, meter = evaluator(ScriptedLLM(flaky))
    res = ev.evaluate(Prompt("x"), EXAMPLES)
    assert res.errors == 2 and res.n == 10
    assert all(r.score is None and r.error for r in res.results if "cat" in r.example_id or r.error)
    assert meter.snapshot()["task"].errors == 2


def test_budget_exhaustion_propagates_and_spends_no_more() -> None:
    llm = task_model()
    ev, meter = evaluator(llm, budget=Budget(task_calls=5))
    with pytest.raises(BudgetExhausted):
        ev.evaluate(Prompt(KEY), EXAMPLES)
    assert len(llm.requests) == 5 == meter.snapshot()["task"].calls


def test_evaluation_cache_hits_count_as_calls_but_cost_no_model_call(tmp_path: Path) -> None:
    cache = EvaluationCache(tmp_path / "e.sqlite")
    llm = task_model()
    ev, _ = evaluator(llm, cache=cache)
    ev.evaluate(Prompt(KEY), EXAMPLES)
    llm2 = task_model()
    ev2, meter2 = evaluator(llm2, cache=cache)
    again = ev2.evaluate(Prompt(KEY), EXAMPLES)
    assert again.mean == 1.0 and not llm2.requests
    u = meter2.snapshot()["task"]
    assert (u.calls, u.cache_hits, u.model_calls) == (12, 12, 0)


@pytest.mark.parametrize("temperature", [0.0, 0.7])
def test_greedy_task_calls_are_shared_across_run_seeds(tmp_path: Path, temperature: float) -> None:
    """At temperature 0 the seed changes no reply: runs of seeds 0 and 1 (compare's
    seeds) share the cached replies, and no seed is sent. When sampling, each seed pays
    its own calls and sends its seed."""
    cache = EvaluationCache(tmp_path / "e.sqlite")
    replies = []
    for seed in (0, 1):
        llm = task_model()
        params = TaskParams(temperature=temperature, max_tokens=8, seed=seed)
        ev, meter = evaluator(llm, cache=cache, params=params)
        assert ev.evaluate(Prompt(KEY), EXAMPLES).mean == 1.0
        replies.append(meter.snapshot()["task"].model_calls)
        assert {r.seed for r in llm.requests} <= {None if temperature == 0 else seed}
    assert replies == ([12, 0] if temperature == 0 else [12, 12])


def test_serial_and_concurrent_evaluation_agree() -> None:
    serial, _ = evaluator(task_model(), concurrency=1)
    parallel, _ = evaluator(task_model(), concurrency=4)
    assert (
        serial.evaluate(Prompt(KEY), EXAMPLES).results
        == parallel.evaluate(Prompt(KEY), EXAMPLES).results
    )


def test_run_store_holds_the_whole_run_and_export_is_what_was_scored(tmp_path: Path) -> None:
    task = write_animal_task(tmp_path / "task")
    scripted = task_model()
    result = optimize(
        task,
        options={"num_candidates": 3, "eval_examples": 6, "rounds": 0},
        settings=RunSettings(
            runs_dir=tmp_path / "runs",
            cache_dir=None,
            backends={"task": scripted, "optimizer": __import__("scripted").optimizer_model()},
        ),
    )
    run_dir = result.run_dir
    assert (run_dir / "best_prompt.txt").read_text() == KEY + "\n\n{input}\n"
    # best_prompt.json: the prompt's fields, read back by `eval --prompt` as the same prompt
    from promptascent.evaluate import read_prompt_file

    assert read_prompt_file(run_dir / "best_prompt.json") == result.best.prompt
    saved = json.loads((run_dir / "result.json").read_text())
    assert saved["best_candidate"] == result.best.id and saved["test"]["best"]["mean"] == 1.0
    store = RunStore.open_existing(run_dir)
    try:
        cands = store.candidates()
        assert cands[0]["operation"] == "seed" and len(cands) == result.candidates
        rows = store.evaluations(result.best.id, "test")
        assert len(rows) == 18 and all(r["score"] == 1.0 for r in rows)
        assert store.get("status") == "finished"
        assert store.usage()["task"]["calls"] == result.usage["task"]["calls"]
        kinds = {e["kind"] for e in store.events()}
        assert {"RunStarted", "CandidateProposed", "CandidateEvaluated", "RunFinished"} <= kinds
        exported = Prompt.from_dict(store.prompt(result.best.id))
    finally:
        store.close()
    # The exported prompt renders to exactly the messages the task model was sent.
    sent = [r.messages for r in scripted.requests]
    example = {"input": "cat"}
    assert exported.render(example) in sent


def test_prompts_too_long_for_the_context_are_skipped_and_counted() -> None:
    from promptascent.errors import ContextOverflow

    def small_context(request: CompletionRequest) -> str:
        raise ContextOverflow("scripted: prompt exceeds the context of 8 tokens")

    ev, _ = evaluator(ScriptedLLM(small_context))
    ev.task_model.max_consecutive_errors = 3  # overflow is the data's fault: never trips it
    res = ev.evaluate(Prompt("x"), EXAMPLES)
    assert res.skipped == 12 and res.errors == 12 and res.n == 0
    assert res.summary()["skipped"] == 12
