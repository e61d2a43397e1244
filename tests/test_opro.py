"""OPRO on scripted models: the optimizer model climbs the scored trajectory to the
hidden key instruction; the meta-prompt shows scores as integers, worst first; the
search keeps room for the final selection, stops cleanly on the budget, survives
unusable replies and is deterministic. One run on the real embedded model."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest
from scripted import KEY, PAIRS, embedded_settings, tiny_navigate, write_animal_task

from promptascent import RunSettings, optimize
from promptascent.errors import ConfigError
from promptascent.llm.embedded import EmbeddedLLM
from promptascent.llm.scripted import ScriptedLLM
from promptascent.llm.types import CompletionRequest
from promptascent.optimizers.opro import _unwrap_trajectory_echo
from promptascent.store.run_store import RunStore

OPRO = {
    "steps": 3,
    "candidates_per_step": 3,
    "eval_examples": 6,
    "final_k": 2,
    "max_tokens": 32,
}
HINT = "Think of the opposite."  # half a key: right on cat, dog, cow and horse only


def task_responder(request: CompletionRequest) -> str:
    """Right with the key; right on the farm animals with the hint; else names the input."""
    user = request.messages[-1].content
    animal = next((line.strip() for line in user.splitlines() if line.strip() in PAIRS), "?")
    if KEY in user or (HINT in user and animal in ("cat", "dog", "cow", "horse")):
        return PAIRS.get(animal, "?")
    return f"I think it is a {animal}"


def climbing_optimizer(request: CompletionRequest) -> str:
    """Reads the trajectory: proposes the hint until some instruction scores 50 or more,
    then the key. Other samples are junk (chatter without tags, empty replies)."""
    text = request.messages[-1].content
    scores = [int(s) for s in re.findall(r"score:\n(\d+)", text)]
    if request.sample_index % 3 == 0:
        return "Here is the instruction: Name the animal you see."
    if request.sample_index % 3 == 1:
        return ""
    return f"<prompt>{KEY if max(scores, default=0) >= 50 else HINT}</prompt>"


def settings(tmp_path: Path, optimizer: ScriptedLLM | None = None) -> RunSettings:
    task = ScriptedLLM(task_responder, model_id="scripted-task")
    return RunSettings(
        runs_dir=tmp_path / "runs",
        cache_dir=tmp_path / "cache",
        backends={
            "task": task,
            "optimizer": optimizer or ScriptedLLM(climbing_optimizer, model_id="climber"),
            "judge": task,
        },
    )


def candidates(run_dir: Path) -> list[dict]:
    store = RunStore.open_existing(run_dir)
    try:
        return store.candidates()
    finally:
        store.close()


def events(run_dir: Path) -> list[dict]:
    store = RunStore.open_existing(run_dir)
    try:
        return store.events()
    finally:
        store.close()


def test_opro_climbs_the_trajectory_to_the_key(tmp_path: Path) -> None:
    task = write_animal_task(tmp_path / "task")
    result = optimize(task, optimizer="opro", options=OPRO, settings=settings(tmp_path))
    assert result.status == "finished" and result.stopped_by is None
    assert result.best.prompt.instruction == KEY
    assert result.best.operation == "opro" and result.best.step == 2
    by_id = {c["id"]: c for c in candidates(result.run_dir)}
    # the key was proposed from a trajectory that held the hint
    assert any(by_id[p]["prompt"]["instruction"] == HINT for p in result.best.parents)
    assert result.test_seed is not None and result.test_best is not None
    assert result.test_seed.mean == 0.0 and result.test_best.mean == 1.0
    # empty replies, and repeats of instructions already in the trajectory, are counted
    assert result.rejected_replies >= 3 + 2
    rejected = [e["reason"] for e in events(result.run_dir) if e["kind"] == "ReplyRejected"]
    assert "empty" in rejected and "repeats the parent" in rejected
    # the seed and the best of the subset reached the whole dev split
    dev_scored = [c for c in by_id.values() if "dev" in c["scores"]]
    assert result.seed.id in {c["id"] for c in dev_scored} and len(dev_scored) == 2


def test_meta_prompt_shows_integer_scores_worst_first_and_exemplars(tmp_path: Path) -> None:
    task = write_animal_task(tmp_path / "task")
    optimizer = ScriptedLLM(climbing_optimizer, model_id="climber")
    optimize(
        task,
        optimizer="opro",
        options={**OPRO, "max_history": 2},
        settings=settings(tmp_path, optimizer),
    )
    metas = [r.messages[-1].content for r in optimizer.requests]
    assert len(metas) == 3 * 3  # candidates_per_step samples of one meta-prompt a step
    step2 = next(m for m in metas if HINT in m)
    scores = [int(s) for s in re.findall(r"score:\n(\d+)", step2)]
    assert scores == sorted(scores) and len(scores) == 2  # max_history, ascending
    assert all(0 <= s <= 100 for s in scores) and scores[-1] == 67  # 4 of 6, as 0-100
    texts = re.findall(r"text:\n(.*)\n", step2)
    assert texts[-1] == HINT  # the best comes last
    # three train exemplars with their targets
    assert step2.count("input:\n") == 3 and step2.count("output:\n") == 3
    assert "{" not in step2 and "<prompt>" in step2


def test_the_meta_prompt_is_cut_to_the_optimizer_context(tmp_path: Path) -> None:
    task = write_animal_task(tmp_path / "task")
    small = ScriptedLLM(climbing_optimizer, model_id="small", context_length=115)
    result = optimize(task, optimizer="opro", options=OPRO, settings=settings(tmp_path, small))
    assert result.status == "finished"
    for r in small.requests:
        words = len(r.messages[-1].content.split())
        assert words + 8 <= 115 - OPRO["max_tokens"]  # 8: per-message overhead
    # exemplars go first: the first meta-prompt (one short instruction) lost them
    assert "input:" not in small.requests[0].messages[-1].content


def test_opro_keeps_room_for_the_final_selection(tmp_path: Path) -> None:
    task = write_animal_task(tmp_path / "task")
    # seed (6) + step 1 (3 asked, 2 usable: 12) + final (2 x (12 - 6 reused)) = 30;
    # steps 2 and 3 fit one candidate each beside the final selection (6 + 12 of the
    # 18 left), and both replies repeat earlier candidates
    result = optimize(
        task, optimizer="opro", options=OPRO, budget={"task_calls": 36}, settings=settings(tmp_path)
    )
    assert result.search_usage["task"]["calls"] == 30
    assert result.search_usage["optimizer"]["calls"] == 5
    assert result.status == "finished" and result.best.prompt.instruction == HINT
    assert result.best.score("dev") is not None  # the final selection was paid for


def test_a_budget_too_small_for_a_whole_step_gets_a_smaller_step(tmp_path: Path) -> None:
    task = write_animal_task(tmp_path / "task")
    # the search keeps 9 for the final selection (a third of 28; the whole final takes
    # 12). After the seed (6), 22 are left: 3 candidates (18) do not fit beside the 9,
    # 2 (12) do. Step 1 asks 2 (one reply is empty: 6 spent), steps 2 and 3 one each
    # (6 + 9 of the 16 left), and both replies repeat the first candidate.
    result = optimize(
        task, optimizer="opro", options=OPRO, budget={"task_calls": 28}, settings=settings(tmp_path)
    )
    assert result.search_usage["optimizer"]["calls"] == 2 + 1 + 1
    assert result.search_usage["task"]["calls"] <= 28
    assert result.candidates == 2
    assert result.selection_split == "dev" and result.seed.score("dev") is not None


def test_opro_stops_cleanly_when_a_token_budget_ends(tmp_path: Path) -> None:
    task = write_animal_task(tmp_path / "task")
    result = optimize(
        task,
        optimizer="opro",
        options=OPRO,
        budget={"optimizer_tokens": 600},
        settings=settings(tmp_path),
    )
    assert result.status == "budget" and result.stopped_by == "optimizer_tokens"
    assert result.search_usage["optimizer"]["tokens"] <= 600
    # nothing reached the dev split: the best on the screening subset is the answer
    assert result.selection_split == "dev-subset"
    assert result.test_best is not None and result.test_best.n == 18


def test_opro_survives_unusable_replies(tmp_path: Path) -> None:
    task = write_animal_task(tmp_path / "task")
    junk_replies = [
        "",
        "<prompt></prompt>",
        "x" * 3000,  # too long
        "<prompt>Which animal is it?</prompt>",  # repeats the seed
        "text:\nWhich animal is it?\nscore:\n0",  # echoes the trajectory
        "ok",  # too short
    ]
    calls = itertools.count()
    junk = ScriptedLLM(lambda r: junk_replies[next(calls) % len(junk_replies)], model_id="junk")
    options = {**OPRO, "steps": 2}
    result = optimize(task, optimizer="opro", options=options, settings=settings(tmp_path, junk))
    assert result.status == "finished"
    assert result.best.id == result.seed.id
    assert result.rejected_replies == 2 * 3 and result.candidates == 1


def test_same_seed_same_candidates(tmp_path: Path) -> None:
    task = write_animal_task(tmp_path / "task")
    first = optimize(task, optimizer="opro", options=OPRO, settings=settings(tmp_path / "a"))
    second = optimize(task, optimizer="opro", options=OPRO, settings=settings(tmp_path / "b"))

    def lineage(run_dir: Path) -> list[tuple[str, str, tuple[str, ...]]]:
        return [(c["id"], c["operation"], tuple(c["parents"])) for c in candidates(run_dir)]

    assert lineage(first.run_dir) == lineage(second.run_dir)
    assert first.to_dict()["test"] == second.to_dict()["test"]


def test_estimate_bounds_the_calls(tmp_path: Path) -> None:
    from promptascent.optimizers.registry import create

    opt = create("opro", OPRO)
    est = opt.estimate(train_size=12, dev_size=12, example_tokens=4)
    assert est["task"] == 6 * (1 + 9) + 2 * 12 and est["optimizer"] == 9
    task = write_animal_task(tmp_path / "task")
    result = optimize(task, optimizer="opro", options=OPRO, settings=settings(tmp_path))
    assert result.search_usage["task"]["calls"] <= est["task"]
    assert result.search_usage["optimizer"]["calls"] <= est["optimizer"]


def test_unwrap_trajectory_echo() -> None:
    assert _unwrap_trajectory_echo("text:\nSay it.\nscore:\n80") == "Say it."
    assert _unwrap_trajectory_echo("TEXT: Say it.") == "Say it."
    assert _unwrap_trajectory_echo("<prompt>text: a</prompt>") == "<prompt>text: a</prompt>"
    assert _unwrap_trajectory_echo("Just this.") == "Just this."
    looping = "Go on.\n* Face forward.\n* Face forward.\n* Face forward."
    assert _unwrap_trajectory_echo(looping) == "Go on.\n* Face forward."
    assert _unwrap_trajectory_echo("a\n\nb\n\nc") == "a\n\nb\n\nc"  # blank lines stay


@pytest.mark.parametrize(
    "option",
    [{"bogus": 1}, {"steps": 0}, {"candidates_per_step": 0}, {"temperature": "hot"}],
)
def test_bad_options_are_config_errors(tmp_path: Path, option: dict) -> None:
    task = write_animal_task(tmp_path / "task")
    with pytest.raises(ConfigError) as e:
        optimize(task, optimizer="opro", options=option, settings=settings(tmp_path))
    assert next(iter(option)) in str(e.value)


@pytest.mark.embedded
def test_opro_on_the_embedded_model(tmp_path: Path, embedded: EmbeddedLLM, repo: Path) -> None:
    task = tiny_navigate(repo)
    options = {
        "steps": 1,
        "candidates_per_step": 2,
        "eval_examples": 3,
        "final_k": 2,
        "max_history": 3,
        "exemplars": 2,
        "max_tokens": 48,
    }
    s = embedded_settings(tmp_path, embedded)
    result = optimize(
        task, optimizer="opro", options=options, budget={"task_calls": 30}, settings=s
    )
    assert result.status in ("finished", "budget")
    assert result.search_usage["task"]["calls"] <= 30
    assert result.search_usage["optimizer"]["calls"] <= 2
    assert (result.run_dir / "result.json").is_file()
    assert result.seed.score("dev") is not None and result.best.score("dev") is not None
    print(
        f"\nopro embedded: seed dev {result.seed.score('dev'):.2f}, "
        f"best dev {result.best.score('dev'):.2f}, best: {result.best.prompt.instruction!r}"
    )
