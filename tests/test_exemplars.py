"""Exemplar selection on scripted task models that learn from demonstrations:

- a model that is right only when some demo's output is "fox" (the owl example):
  random search over k-shot sets must find a set holding it;
- a model that is right on every input only when some demo shows its own answer
  style ("The answer is ..."): gold targets never do, its own bootstrapped outputs do;
- demos on top of the best instruction of an earlier run;
- demo sets too long for the context are skipped and counted; the budget is kept for
  the final selection; a token budget stops the search cleanly; deterministic.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from scripted import (
    KEY,
    PAIRS,
    embedded_settings,
    optimizer_model,
    task_model,
    tiny_navigate,
    write_animal_task,
)

from promptascent import RunSettings, optimize
from promptascent.errors import ConfigError
from promptascent.llm.embedded import EmbeddedLLM
from promptascent.llm.scripted import Responder, ScriptedLLM
from promptascent.llm.types import CompletionRequest
from promptascent.prompts.prompt import Demo, Prompt
from promptascent.store.run_store import RunStore

OPTIONS = {"k": 3, "num_candidates": 4, "eval_examples": 6, "final_k": 2, "strategy": "random"}


def _animal(request: CompletionRequest) -> str:
    return request.messages[-1].content.splitlines()[-1].strip()


def _demo_outputs(request: CompletionRequest) -> list[str]:
    return [m.content for m in request.messages if m.role == "assistant"]


def fox_responder(request: CompletionRequest) -> str:
    """Right iff a demo answers "fox"; otherwise names the input animal."""
    animal = _animal(request)
    if "fox" in _demo_outputs(request):
        return PAIRS[animal]
    return f"I think it is a {animal}"


def style_responder(request: CompletionRequest) -> str:
    """Zero-shot right only on cat and dog, in its own style ("The answer is dog");
    right on every input once a demo shows that style."""
    animal = _animal(request)
    styled = any(o.startswith("The answer is") for o in _demo_outputs(request))
    if styled or animal in ("cat", "dog"):
        return f"The answer is {PAIRS[animal]}"
    return f"I think it is a {animal}"


def key_and_fox_responder(request: CompletionRequest) -> str:
    """Right iff the key instruction is in the user turn and a demo answers "fox"."""
    animal = _animal(request)
    if KEY in request.messages[-1].content and "fox" in _demo_outputs(request):
        return PAIRS[animal]
    return f"I think it is a {animal}"


def settings(tmp_path: Path, task: ScriptedLLM) -> RunSettings:
    return RunSettings(
        runs_dir=tmp_path / "runs",
        cache_dir=tmp_path / "cache",
        backends={"task": task, "optimizer": optimizer_model(), "judge": task},
    )


def scripted(responder: Responder, name: str, context_length: int = 4096) -> ScriptedLLM:
    return ScriptedLLM(responder, model_id=name, context_length=context_length)


def store_of(run_dir: Path) -> RunStore:
    return RunStore.open_existing(run_dir)


def test_random_search_finds_a_demo_set_holding_the_key_example(tmp_path: Path) -> None:
    task = write_animal_task(tmp_path / "task")
    s = settings(tmp_path, scripted(fox_responder, "fox"))
    result = optimize(task, optimizer="exemplars", options=OPTIONS, settings=s)
    assert result.status == "finished"
    best = result.best
    assert best.operation == "demos-random" and best.parents == (result.seed.id,)
    assert best.prompt.instruction == "Which animal is it?"  # the instruction is kept
    assert len(best.prompt.demos) == 3 and "fox" in [d.output for d in best.prompt.demos]
    # demos are train examples with their targets
    assert all(d.output == PAIRS[str(d.input)] for d in best.prompt.demos)
    assert result.test_seed is not None and result.test_best is not None
    assert result.test_seed.mean == 0.0 and result.test_best.mean == 1.0
    # exported as chat messages, demos as user/assistant turns
    assert '"role": "assistant"' in (result.run_dir / "best_prompt.txt").read_text()


def test_bootstrapped_demos_teach_the_models_own_style(tmp_path: Path) -> None:
    task = write_animal_task(tmp_path / "task")
    s = settings(tmp_path / "boot", scripted(style_responder, "style"))
    boot = optimize(
        task, optimizer="exemplars", options={**OPTIONS, "strategy": "bootstrap"}, settings=s
    )
    assert boot.best.operation == "demos-bootstrap"
    outputs = [d.output for d in boot.best.prompt.demos]
    assert len(outputs) == 3 and all(o.startswith("The answer is") for o in outputs)
    assert boot.best.score("dev") == 1.0 and (boot.seed.score("dev") or 0) < 0.5
    store = store_of(boot.run_dir)
    try:
        seed_row = next(c for c in store.candidates() if c["id"] == boot.seed.id)
        assert seed_row["scores"]["train-bootstrap"]["n"] == 12  # the base ran on train
    finally:
        store.close()

    # gold targets ("dog") never show the style: random search finds nothing better
    s = settings(tmp_path / "rand", scripted(style_responder, "style"))
    rand = optimize(task, optimizer="exemplars", options=OPTIONS, settings=s)
    assert rand.best.score("dev") == rand.seed.score("dev")
    assert rand.best.id == rand.seed.id  # ties go to the seed


def test_both_strategies_and_a_bootstrap_with_nothing_correct(tmp_path: Path) -> None:
    task = write_animal_task(tmp_path / "task")
    s = settings(tmp_path, scripted(fox_responder, "fox"))
    result = optimize(
        task, optimizer="exemplars", options={**OPTIONS, "strategy": "both"}, settings=s
    )
    assert result.best.operation == "demos-random"
    store = store_of(result.run_dir)
    try:
        reasons = [e["reason"] for e in store.events() if e["kind"] == "ReplyRejected"]
        steps = [e["step"] for e in store.events() if e["kind"] == "StepFinished"]
    finally:
        store.close()
    # the seed is never right on train, so nothing could be bootstrapped: counted
    assert reasons == ["bootstrap: no train output of the base prompt was correct"]
    assert steps == [1, 2]


def test_demos_go_on_top_of_the_best_prompt_of_an_earlier_run(tmp_path: Path) -> None:
    task = write_animal_task(tmp_path / "task")
    first = optimize(
        task,
        optimizer="ape",
        options={"num_candidates": 3, "eval_examples": 6, "rounds": 0, "final_k": 2},
        settings=RunSettings(
            runs_dir=tmp_path / "runs",
            cache_dir=tmp_path / "cache",
            backends={"task": task_model(), "optimizer": optimizer_model(), "judge": task_model()},
        ),
    )
    assert first.best.prompt.instruction == KEY
    options = {**OPTIONS, "instruction_from_run": str(first.run_dir)}
    s = settings(tmp_path, scripted(key_and_fox_responder, "key-fox"))
    result = optimize(task, optimizer="exemplars", options=options, settings=s)
    assert result.best.prompt.instruction == KEY and result.best.prompt.demos
    store = store_of(result.run_dir)
    try:
        rows = store.candidates()
    finally:
        store.close()
    base = next(c for c in rows if c["operation"] == "from-run")
    assert base["id"] == first.best.id and base["parents"] == []
    assert result.best.parents == (base["id"],)
    # the seed and the base are both finalists on the whole dev split
    dev = {c["id"] for c in rows if "dev" in c["scores"]}
    assert {result.seed.id, base["id"], result.best.id} <= dev


@pytest.mark.parametrize(
    "option",
    [
        {"bogus": 1},
        {"k": 0},
        {"strategy": "nope"},
        {"max_context_fraction": 0},
        {"instruction_from_run": "/nonexistent/run"},
    ],
)
def test_bad_options_are_config_errors(tmp_path: Path, option: dict) -> None:
    task = write_animal_task(tmp_path / "task")
    with pytest.raises(ConfigError) as e:
        optimize(
            task,
            optimizer="exemplars",
            options=option,
            settings=settings(tmp_path, scripted(fox_responder, "fox")),
        )
    assert next(iter(option)) in str(e.value)


def test_an_unfinished_run_is_refused(tmp_path: Path) -> None:
    run = tmp_path / "half"
    RunStore(run).close()  # a run folder with no result
    task = write_animal_task(tmp_path / "task")
    with pytest.raises(ConfigError, match="no result"):
        optimize(
            task,
            optimizer="exemplars",
            options={"instruction_from_run": str(run)},
            settings=settings(tmp_path, scripted(fox_responder, "fox")),
        )


def test_demo_sets_too_long_for_the_context_are_skipped(tmp_path: Path) -> None:
    task = write_animal_task(tmp_path / "task")
    # a 3-shot prompt takes 7 messages (>= 56 tokens of overhead): more than half of 80
    s = settings(tmp_path, scripted(fox_responder, "fox", context_length=80))
    result = optimize(task, optimizer="exemplars", options=OPTIONS, settings=s)
    assert result.status == "finished" and result.best.id == result.seed.id
    assert result.candidates == 1 and result.rejected_replies >= 1
    store = store_of(result.run_dir)
    try:
        reasons = {e["reason"] for e in store.events() if e["kind"] == "ReplyRejected"}
    finally:
        store.close()
    assert all(r.startswith("demo set skipped") and "> 40" in r for r in reasons)


def test_exemplars_keep_room_for_the_final_selection(tmp_path: Path) -> None:
    task = write_animal_task(tmp_path / "task")
    # the whole final takes (2 + 2) x (12 - 6 reused) = 24; the search keeps a third of
    # 38 (12) for it: after the seed (6), three demo sets (6 each) fit beside it, not four
    s = settings(tmp_path, scripted(fox_responder, "fox"))
    result = optimize(
        task, optimizer="exemplars", options=OPTIONS, budget={"task_calls": 38}, settings=s
    )
    assert result.status == "budget" and result.search_usage["task"]["calls"] <= 38
    store = store_of(result.run_dir)
    try:
        rows = store.candidates()
        stopped = [e for e in store.events() if e["kind"] == "SearchStopped"]
    finally:
        store.close()
    assert len([c for c in rows if "dev-subset" in c["scores"]]) == 4 and stopped
    # the 14 left pay for the seed and the best set on the whole dev split
    assert result.seed.score("dev") is not None


def test_exemplars_stop_cleanly_when_a_token_budget_ends(tmp_path: Path) -> None:
    task = write_animal_task(tmp_path / "task")
    # One call at a time: with calls in flight, where a token limit stops depends on
    # which finishes first (README, "Budgets are never exceeded").
    task.write_text(task.read_text().replace("concurrency: 2", "concurrency: 1"))
    s = settings(tmp_path, scripted(fox_responder, "fox"))
    result = optimize(
        task, optimizer="exemplars", options=OPTIONS, budget={"task_tokens": 900}, settings=s
    )
    assert result.status == "budget" and result.stopped_by == "task_tokens"
    assert result.search_usage["task"]["tokens"] <= 900
    assert result.best.id == result.seed.id
    assert result.test_best is not None and result.test_best.n == 18


def test_same_seed_same_candidates(tmp_path: Path) -> None:
    task = write_animal_task(tmp_path / "task")
    opts = {**OPTIONS, "strategy": "both"}

    def run(folder: str) -> list[tuple[str, str, tuple[str, ...]]]:
        s = settings(tmp_path / folder, scripted(style_responder, "style"))
        result = optimize(task, optimizer="exemplars", options=opts, settings=s)
        store = store_of(result.run_dir)
        try:
            return [(c["id"], c["operation"], tuple(c["parents"])) for c in store.candidates()]
        finally:
            store.close()

    first = run("a")
    assert first == run("b") and len(first) > 2


def test_demo_values_round_trip_through_the_store(tmp_path: Path) -> None:
    task = write_animal_task(tmp_path / "task")
    s = settings(tmp_path, scripted(fox_responder, "fox"))
    result = optimize(task, optimizer="exemplars", options=OPTIONS, settings=s)
    store = store_of(result.run_dir)
    try:
        stored = Prompt.from_dict(store.prompt(result.best.id))
        assert stored == result.best.prompt
        assert all(isinstance(d, Demo) for d in stored.demos)
    finally:
        store.close()


@pytest.mark.embedded
def test_exemplars_on_the_embedded_model(tmp_path: Path, embedded: EmbeddedLLM, repo: Path) -> None:
    task = tiny_navigate(repo)
    options = {
        "k": 2,
        "num_candidates": 2,
        "strategy": "both",
        "bootstrap_examples": 4,
        "eval_examples": 3,
        "final_k": 2,
    }
    s = embedded_settings(tmp_path, embedded)
    result = optimize(
        task, optimizer="exemplars", options=options, budget={"task_calls": 40}, settings=s
    )
    assert result.status in ("finished", "budget")
    assert result.search_usage["task"]["calls"] <= 40
    assert result.search_usage["optimizer"]["calls"] == 0
    assert (result.run_dir / "result.json").is_file()
    assert result.seed.score("dev") is not None and result.best.score("dev") is not None
    print(
        f"\nexemplars embedded: seed dev {result.seed.score('dev'):.2f}, "
        f"best dev {result.best.score('dev'):.2f}, demos: {len(result.best.prompt.demos)}"
    )
