"""SPO on scripted models: with a judge that prefers outputs meeting the requirement
("answer in capital letters"), it must find the prompt that makes the task model do
so, without any labelled evaluation; stop cleanly on its budget; count unusable
replies; and be deterministic. One run on the real embedded model."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from scripted import embedded_settings

from promptascent import RunSettings, optimize, task_from_dict
from promptascent.errors import ConfigError
from promptascent.llm.scripted import ScriptedLLM
from promptascent.llm.types import CompletionRequest
from promptascent.runner import plan
from promptascent.store.run_store import RunStore

CAPS = "Answer in capital letters only."
WORDS = ["cat", "dog", "owl", "fox", "cow", "hen"]


def task_responder(request: CompletionRequest) -> str:
    """Repeats the input word; in capitals only when the prompt asks for capitals."""
    instruction, _, word = request.messages[-1].content.rpartition("\n\n")
    return word.upper() if "capital" in instruction.lower() else word


def capitals_judge(request: CompletionRequest) -> str:
    """Prefers the set with more outputs in capitals; answers in prose."""
    text = request.messages[-1].content
    a = re.findall(r"\nA:\n(.*?)\n\nB:", text, re.S)
    b = re.findall(r"\nB:\n(.*?)(?:\n\nReference|\n\n---|\n\nWhich is better)", text, re.S)
    up_a, up_b = sum(x.isupper() for x in a), sum(x.isupper() for x in b)
    if up_a == up_b:
        return "Both are equally good."
    return "Output A is better." if up_a > up_b else "I prefer B."


class ScriptedOptimizer:
    """Gives its replies in order, one per call (SPO asks once per round)."""

    def __init__(self, replies: list[str]) -> None:
        self.replies = replies
        self.calls = 0

    def __call__(self, request: CompletionRequest) -> str:
        reply = self.replies[min(self.calls, len(self.replies) - 1)]
        self.calls += 1
        return reply


SCRIPT = [
    "",  # empty: rejected
    "<prompt>Say the word back.</prompt>",  # outputs like the seed's: a tie, loses
    f"<prompt>{CAPS}</prompt>",  # wins
    "<prompt>Say the word back.</prompt>",  # repeats an earlier candidate: rejected
    "Here is the instruction: Write the word quietly.",  # no tags, read anyway; loses
]


def task(
    *, rounds: int = 5, targets: bool = False, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    rows = [{"id": w, "input": w, **({"target": w.upper()} if targets else {})} for w in WORDS]
    return {
        "name": "caps",
        "requirements": "Answer in capital letters.",
        "data": {"examples": rows, "dev_from_train": False},
        "seed_prompt": "Repeat the word.",
        "metric": {"name": "judge"},
        "optimizer": {"name": "spo", "rounds": rounds, "samples": 3, "votes": 4},
        "seed": 0,
        **(extra or {}),
    }


def settings(tmp_path: Path, script: list[str] = SCRIPT) -> RunSettings:
    return RunSettings(
        runs_dir=tmp_path / "runs",
        cache_dir=tmp_path / "cache",
        backends={
            "task": ScriptedLLM(task_responder, model_id="caps-task"),
            "optimizer": ScriptedLLM(ScriptedOptimizer(script), model_id="caps-optimizer"),
            "judge": ScriptedLLM(capitals_judge, model_id="caps-judge"),
        },
    )


def requests(s: RunSettings, role: str) -> list[str]:
    return [r.messages[-1].content for r in s.backends[role].requests]  # type: ignore[attr-defined]


def test_spo_finds_the_prompt_that_meets_the_requirement(tmp_path: Path) -> None:
    s = settings(tmp_path)
    result = optimize(task(), settings=s)
    assert result.best.prompt.instruction == CAPS
    assert result.best.operation == "spo" and result.best.step == 3
    assert result.best.parents == (result.seed.id,)
    assert "B 4" in result.best.note and "wins" in result.best.note
    assert result.selection_split == "spo" and result.status == "finished"
    assert result.rejected_replies == 2  # the empty reply and the repeat
    # the lineage: the winner, then the seed it beat
    assert [x["operation"] for x in result.lineage] == ["spo", "seed"]
    assert result.lineage[0]["note"] == result.best.note
    # three judged rounds of four votes; a consistent judge agrees with itself
    assert result.usage["judge"]["calls"] == 12
    assert result.judge is not None and result.judge["agreement"] == 1.0
    # no labelled evaluation: the judge only ever compared outputs pairwise
    assert all("Which set" in text for text in requests(s, "judge"))
    assert result.test_best is None and result.train_dev_gap is None
    bound = plan(task_from_dict(task())).optimizer.estimate(6, 0, 4)
    assert result.search_usage["task"]["calls"] <= bound["task"]


def test_the_optimizer_sees_requirements_outputs_and_references(tmp_path: Path) -> None:
    s = settings(tmp_path, [f"<prompt>{CAPS}</prompt>"])
    optimize(task(rounds=1, targets=True), settings=s)
    (meta,) = requests(s, "optimizer")
    assert "Answer in capital letters." in meta and "Repeat the word." in meta
    assert meta.count("Wanted output (reference):") == 3 and "Output: " in meta
    judge_prompt = requests(s, "judge")[0]
    assert judge_prompt.count("Reference (the wanted format)") == 3

    s = settings(tmp_path / "b", [f"<prompt>{CAPS}</prompt>"])
    optimize(task(rounds=1), settings=s)
    (meta,) = requests(s, "optimizer")
    assert "Wanted output" not in meta and "Reference" not in requests(s, "judge")[0]


def test_requirements_default_to_the_task_description(tmp_path: Path) -> None:
    s = settings(tmp_path, [f"<prompt>{CAPS}</prompt>"])
    spec = task(rounds=1, extra={"requirements": "", "description": "Shout the word."})
    optimize(spec, settings=s)
    assert "Shout the word." in requests(s, "optimizer")[0]
    assert "Shout the word." in requests(s, "judge")[0]


def test_budget_stops_cleanly_with_the_best_so_far(tmp_path: Path) -> None:
    # round 1 (4 judge calls) fits; round 2 would need 4 more: not started
    s = settings(tmp_path, [f"<prompt>{CAPS}</prompt>", "<prompt>Say the word.</prompt>"])
    result = optimize(task(), budget={"judge_calls": 6}, settings=s)
    assert result.status == "budget" and "whole round" in (result.stopped_by or "")
    assert result.best.prompt.instruction == CAPS
    assert result.search_usage["judge"]["calls"] == 4


def test_running_out_mid_round_keeps_the_last_winner(tmp_path: Path) -> None:
    full = optimize(task(), settings=settings(tmp_path / "full"))
    tokens = int(full.search_usage["judge"]["tokens"] * 0.8)
    result = optimize(task(), budget={"judge_tokens": tokens}, settings=settings(tmp_path))
    assert result.status == "budget" and result.stopped_by == "judge_tokens"
    assert result.search_usage["judge"]["tokens"] <= tokens
    assert result.best.id == result.seed.id or "wins" in result.best.note


def test_unusable_replies_are_counted_and_the_seed_is_kept(tmp_path: Path) -> None:
    s = settings(tmp_path, ["", "<prompt></prompt>", "<prompt>Repeat the word.</prompt>"])
    result = optimize(task(rounds=3), settings=s)
    assert result.best.id == result.seed.id and result.rejected_replies == 3
    assert result.usage["judge"]["calls"] == 0 and result.judge is None
    assert result.candidates == 1


def test_same_seed_same_candidates(tmp_path: Path) -> None:
    first = optimize(task(), settings=settings(tmp_path / "a"))
    second = optimize(task(), settings=settings(tmp_path / "b"))

    def lineage(run_dir: Path) -> list[tuple[str, str, tuple[str, ...], str]]:
        store = RunStore.open_existing(run_dir)
        try:
            return [
                (c["id"], c["operation"], tuple(c["parents"]), c["note"])
                for c in store.candidates()
            ]
        finally:
            store.close()

    assert lineage(first.run_dir) == lineage(second.run_dir)
    assert len(lineage(first.run_dir)) == 4  # seed + three judged challengers


@pytest.mark.parametrize("option", [{"bogus": 1}, {"rounds": 0}, {"votes": 0}, {"samples": "x"}])
def test_bad_options_are_config_errors(tmp_path: Path, option: dict) -> None:
    with pytest.raises(ConfigError) as e:
        optimize(task(), options=option, settings=settings(tmp_path))
    assert next(iter(option)) in str(e.value)


@pytest.mark.embedded
def test_spo_end_to_end_on_the_embedded_model(tmp_path: Path, embedded: object) -> None:
    path = tmp_path / "Greeting.yaml"
    path.write_text(
        "prompt: |\n  Reply to the message.\n\n"
        "requirements: |\n  Reply in one short, polite sentence.\n\n"
        "count: None\n\n"
        "qa:\n"
        "  - question: |\n      Hello, how are you?\n    answer: |\n      None\n"
        "  - question: |\n      Thanks for your help!\n    answer: |\n      None\n"
        "  - question: |\n      Can you help me?\n    answer: |\n      None\n",
        encoding="utf-8",
    )
    result = optimize(
        path,
        options={"rounds": 2, "samples": 2, "votes": 2, "max_tokens": 96},
        budget={"calls": 24},
        settings=embedded_settings(tmp_path, embedded),
    )
    assert result.status in ("finished", "budget")
    assert (result.run_dir / "result.json").exists()
    assert result.search_usage["task"]["calls"] + result.search_usage["judge"]["calls"] <= 24
    print(
        f"\nembedded SPO: best {result.best.prompt.instruction!r}; judge "
        f"{result.judge}; rejected {result.rejected_replies}; notes {result.notes}"
    )
    assert result.usage["judge"]["calls"] > 0
    store = RunStore.open_existing(result.run_dir)
    try:
        assert store.get("judge") == result.judge
        assert store.get("status") == result.status
    finally:
        store.close()


def test_labels_only_on_test_are_used_only_for_the_report(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The label-free benchmark's setting: train unlabelled, test labelled, a labelled
    metric. Planning accepts it (SPO scores nothing itself) and the report scores test."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "train.jsonl").write_text(
        "\n".join(f'{{"id": "{w}", "input": "{w}"}}' for w in WORDS) + "\n"
    )
    (tmp_path / "test.jsonl").write_text(
        "\n".join(f'{{"id": "t-{w}", "input": "{w}", "target": "{w.upper()}"}}' for w in WORDS)
        + "\n"
    )
    spec = task(
        extra={
            "data": {"train": "train.jsonl", "test": "test.jsonl", "dev_from_train": False},
            "metric": {"name": "regex", "pattern": "^[A-Z]+$"},  # capitals or unparsed
        }
    )
    result = optimize(spec, settings=settings(tmp_path))
    assert result.best.prompt.instruction == CAPS
    assert result.test_seed is not None and result.test_seed.mean == 0.0
    assert result.test_best is not None and result.test_best.mean == 1.0
    with pytest.raises(ConfigError, match=r"train split: .* no target"):
        plan(
            task_from_dict(
                {
                    **spec,
                    "optimizer": {"name": "ape"},
                    "data": {**spec["data"], "dev_from_train": True},
                }
            )
        )


def one_order_judge(request: CompletionRequest) -> str:
    """Names B when B shows capitals, else calls it even: the capitals prompt gets votes
    only in the order where it is shown second."""
    text = request.messages[-1].content
    b = re.findall(r"\nB:\n(.*?)(?:\n\nReference|\n\n---|\n\nWhich is better)", text, re.S)
    return "B is better." if any(x.isupper() for x in b) else "Both are equally good."


@pytest.mark.parametrize("consistent", [True, False])
def test_a_win_needs_votes_in_both_orders(tmp_path: Path, consistent: bool) -> None:
    s = settings(tmp_path, [f"<prompt>{CAPS}</prompt>"])
    s.backends["judge"] = ScriptedLLM(one_order_judge, model_id="one-order-judge")
    spec = task(
        rounds=1, extra={"optimizer": {"name": "spo", "rounds": 1, "consistent_wins": consistent}}
    )
    result = optimize(spec, settings=s)
    if consistent:
        assert result.best.id == result.seed.id
        candidates = RunStore.open_existing(result.run_dir)
        try:
            notes = [c["note"] for c in candidates.candidates() if c["operation"] == "spo"]
        finally:
            candidates.close()
        assert notes and "votes came from one A/B order only" in notes[0]
    else:
        assert result.best.prompt.instruction == CAPS and "wins" in result.best.note
