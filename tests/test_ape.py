"""APE on scripted models: it must find the hidden key instruction within budget,
stop cleanly when the budget ends, survive unusable replies, and be deterministic."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from scripted import KEY, optimizer_model, task_model, write_animal_task

from promptascent import RunSettings, optimize
from promptascent.llm.scripted import ScriptedLLM
from promptascent.prompts.answer_format import answer_format_line
from promptascent.store.run_store import RunStore

APE = {"num_candidates": 3, "eval_examples": 6, "rounds": 1, "top_k": 2, "final_k": 2}


def settings(tmp_path: Path, optimizer: ScriptedLLM | None = None) -> RunSettings:
    return RunSettings(
        runs_dir=tmp_path / "runs",
        cache_dir=tmp_path / "cache",
        backends={
            "task": task_model(),
            "optimizer": optimizer or optimizer_model(),
            "judge": task_model(),
        },
    )


def test_ape_finds_the_key_instruction(tmp_path: Path) -> None:
    task = write_animal_task(tmp_path / "task")
    result = optimize(task, optimizer="ape", options=APE, settings=settings(tmp_path))
    assert result.best.prompt.instruction == KEY
    assert result.best.operation == "induce"
    assert result.test_seed is not None and result.test_best is not None
    assert result.test_seed.mean == 0.0 and result.test_best.mean == 1.0
    assert result.comparison is not None and result.comparison.low > 0
    # one optimizer reply was empty: counted, not fatal
    assert result.rejected_replies >= 1
    assert result.stopped_by is None and result.status == "finished"


def test_ape_stops_cleanly_on_budget_with_best_so_far(tmp_path: Path) -> None:
    task = write_animal_task(tmp_path / "task")
    # seed on the subset (6) + the final selection on dev (2 x 12) fit in 40; the
    # induced candidates' screening would not: the budget is kept for the selection
    result = optimize(
        task, optimizer="ape", options=APE, budget={"task_calls": 40}, settings=settings(tmp_path)
    )
    assert result.status == "budget" and "kept for the final selection" in (result.stopped_by or "")
    assert result.search_usage["task"]["calls"] <= 40
    assert result.selection_split == "dev" and result.seed.score("dev") is not None
    assert result.test_best is not None and result.test_best.n == 18


def test_a_budget_too_small_for_the_final_selection_ends_on_the_subset(tmp_path: Path) -> None:
    task = write_animal_task(tmp_path / "task")
    result = optimize(
        task, optimizer="ape", options=APE, budget={"task_calls": 8}, settings=settings(tmp_path)
    )
    assert result.search_usage["task"]["calls"] <= 8
    assert result.best.id == result.seed.id and result.selection_split == "dev-subset"


def test_ape_survives_a_model_that_never_gives_a_usable_reply(tmp_path: Path) -> None:
    task = write_animal_task(tmp_path / "task")
    junk = ScriptedLLM(lambda r: "<prompt></prompt>" if r.sample_index % 2 else "", model_id="junk")
    result = optimize(task, optimizer="ape", options=APE, settings=settings(tmp_path, junk))
    assert result.best.id == result.seed.id or result.best.operation == "format"
    assert result.rejected_replies == 3 + 2 * 2  # every induction and every resample


def test_same_seed_same_candidates(tmp_path: Path) -> None:
    task = write_animal_task(tmp_path / "task")
    first = optimize(task, optimizer="ape", options=APE, settings=settings(tmp_path / "a"))
    second = optimize(task, optimizer="ape", options=APE, settings=settings(tmp_path / "b"))

    def lineage(run_dir: Path) -> list[tuple[str, str, tuple[str, ...]]]:
        store = RunStore.open_existing(run_dir)
        try:
            return [(c["id"], c["operation"], tuple(c["parents"])) for c in store.candidates()]
        finally:
            store.close()

    assert lineage(first.run_dir) == lineage(second.run_dir)
    assert first.to_dict()["test"] == second.to_dict()["test"]


def test_warm_rerun_makes_no_model_calls_and_gives_the_same_result(tmp_path: Path) -> None:
    task = write_animal_task(tmp_path / "task")
    cold = optimize(task, optimizer="ape", options=APE, settings=settings(tmp_path))
    warm = optimize(task, optimizer="ape", options=APE, settings=settings(tmp_path))
    assert cold.usage["task"]["model_calls"] > 0
    assert warm.usage["task"]["model_calls"] == 0 and warm.usage["optimizer"]["model_calls"] == 0
    assert warm.usage["task"]["calls"] == cold.usage["task"]["calls"]
    assert warm.best.id == cold.best.id


def test_answer_format_line() -> None:
    from promptascent.data.example import Example

    same = [Example("a", "x", "yes", ("yes", "no")), Example("b", "y", "no", ("yes", "no"))]
    assert answer_format_line(same) == "Answer with exactly one of: yes, no. Say nothing else."
    varied = [Example("a", "x", "p", ("p", "q")), Example("b", "y", "r", ("r", "s"))]
    assert "options" in (answer_format_line(varied) or "")
    assert answer_format_line([Example("a", "x", "t")]) is None


@pytest.mark.parametrize("option", [{"bogus": 1}, {"num_candidates": 0}, {"temperature": "hot"}])
def test_bad_options_are_config_errors(tmp_path: Path, option: dict) -> None:
    from promptascent.errors import ConfigError

    task = write_animal_task(tmp_path / "task")
    with pytest.raises(ConfigError) as e:
        optimize(task, optimizer="ape", options=option, settings=settings(tmp_path))
    assert next(iter(option)) in str(e.value)


def test_a_failing_task_model_ends_the_run_cleanly(tmp_path: Path) -> None:
    from promptascent.errors import ModelServerError

    def down(request: object) -> str:
        raise ModelServerError("http://127.0.0.1:9/v1: 503 (after retries)")

    task = write_animal_task(tmp_path / "task")
    s = settings(tmp_path)
    s.backends["task"] = ScriptedLLM(down, model_id="down")
    result = optimize(task, optimizer="ape", options=APE, settings=s)
    assert result.status == "stopped" and result.stopped_by == "task model unavailable"
    assert result.best.id == result.seed.id and result.test_best is None
    assert any("no test scores" in n and "503" in n for n in result.notes)
    assert json.loads((result.run_dir / "result.json").read_text())["status"] == "stopped"
