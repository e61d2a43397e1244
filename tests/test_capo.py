"""CAPO on scripted models: it finds the hidden key instruction within budget, races
away the clearly worse on fewer dev examples, prefers the shorter of two equally
good prompts, stops cleanly on budget, survives unusable replies, is deterministic;
and one end-to-end run on the real embedded model."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from scripted import KEY, task_model, write_animal_task

from promptascent import RunSettings, optimize
from promptascent.config.task import load_task
from promptascent.errors import ConfigError
from promptascent.estimate import estimate
from promptascent.llm.scripted import ScriptedLLM
from promptascent.llm.types import CompletionRequest
from promptascent.optimizers.capo import CAPO, CAPOConfig
from promptascent.runner import Runner, plan
from promptascent.store.run_store import RunStore

REPO = Path(__file__).resolve().parents[1]

# 12 dev examples in blocks of 4: three blocks, all raced.
CAPO_OPTS = {
    "population_size": 3,
    "generations": 2,
    "crossovers_per_iter": 2,
    "block_size": 4,
    "max_blocks": 3,
    "final_k": 2,
    "upper_shots": 2,
    "init_demos": 3,
}


def _quoted(text: str, after: str) -> str:
    """The line after `after` in a meta-prompt (the instruction it shows)."""
    return text.split(after, 1)[1].strip().splitlines()[0]


def capo_responder(request: CompletionRequest) -> str:
    """Induction proposes a plain wrong instruction; crossover proposes the key on its
    second sample (the first is empty); mutation keeps the key when it is there (by
    repeating it: rejected, so the crossover child is used) and otherwise offers a
    wrong rephrasing or repeats the parent."""
    text = request.messages[-1].content
    if "Merge these two" in text:
        return f"<prompt>{KEY}</prompt>" if request.sample_index == 1 else ""
    if "Rephrase this instruction" in text:
        parent = _quoted(text, "change the wording:")
        if KEY in parent or request.sample_index % 2:
            return f"<prompt>{parent}</prompt>"
        return "<prompt>Tell me which animal it is.</prompt>"
    return "Here is the instruction: Name the animal you see."


def settings(tmp_path: Path, optimizer: ScriptedLLM | None = None) -> RunSettings:
    return RunSettings(
        runs_dir=tmp_path / "runs",
        cache_dir=tmp_path / "cache",
        backends={
            "task": task_model(),
            "optimizer": optimizer or ScriptedLLM(capo_responder, model_id="capo-optimizer"),
            "judge": task_model(),
        },
    )


def candidates(run_dir: Path) -> list[dict]:
    store = RunStore.open_existing(run_dir)
    try:
        return store.candidates()
    finally:
        store.close()


def events(run_dir: Path, kind: str) -> list[dict]:
    store = RunStore.open_existing(run_dir)
    try:
        return [e for e in store.events() if e["kind"] == kind]
    finally:
        store.close()


def test_capo_finds_the_key_instruction(tmp_path: Path) -> None:
    task = write_animal_task(tmp_path / "task")
    result = optimize(task, optimizer="capo", options=CAPO_OPTS, settings=settings(tmp_path))
    assert result.best.prompt.instruction == KEY
    assert result.best.operation == "crossover" and len(result.best.parents) == 2
    assert result.test_seed is not None and result.test_best is not None
    assert result.test_seed.mean == 0.0 and result.test_best.mean == 1.0
    assert result.comparison is not None and result.comparison.low > 0
    assert result.status == "finished" and result.stopped_by is None
    # the empty crossover replies and the repeated parents were counted
    reasons = {e["reason"] for e in events(result.run_dir, "ReplyRejected")}
    assert {"empty", "repeats the parent"} <= reasons
    assert result.rejected_replies >= 4
    # one StepFinished per generation and one for the final selection
    steps = [e["step"] for e in events(result.run_dir, "StepFinished")]
    assert steps == [1, 2, 3]


def test_the_winner_is_scored_on_the_whole_dev_split_and_blocks_are_paid_once(
    tmp_path: Path,
) -> None:
    task = write_animal_task(tmp_path / "task")
    result = optimize(task, optimizer="capo", options=CAPO_OPTS, settings=settings(tmp_path))
    rows = candidates(result.run_dir)
    by_id = {c["id"]: c for c in rows}
    assert by_id[result.best.id]["scores"]["dev"]["n"] == 12
    assert by_id[result.seed.id]["scores"]["dev"]["n"] == 12  # the seed could win
    # every task call of the search is one (candidate, dev example) pair, scored once:
    # the dev split of the finalists is assembled from their blocks
    block_examples = sum(
        s["n"] + s["errors"]
        for c in rows
        for split, s in c["scores"].items()
        if split.startswith("dev-block-")
    )
    assert result.search_usage["task"]["calls"] == block_examples
    # racing saved work: some candidate was dropped before the last block
    blocks_run = [
        sum(split.startswith("dev-block-") for split in c["scores"]) for c in rows if c["scores"]
    ]
    assert min(blocks_run) < 3 == max(blocks_run)


def test_racing_drops_a_clearly_worse_candidate_after_one_block(tmp_path: Path) -> None:
    task = write_animal_task(tmp_path / "task")
    result = optimize(
        task,
        optimizer="capo",
        options={**CAPO_OPTS, "population_size": 2},
        settings=settings(tmp_path),
    )
    rows = candidates(result.run_dir)
    assert result.best.prompt.instruction == KEY
    # generation 1 races the seed, an induced, a mutated and the key instruction: the
    # two wrong newcomers score 0 on the first block of 4 and are out after it
    raced = [c for c in rows if c["scores"] and c["id"] != result.seed.id]
    wrong = [c for c in raced if c["prompt"]["instruction"] != KEY]
    assert len(wrong) == 2
    for c in wrong:
        assert set(c["scores"]) == {"dev-block-0"} and c["scores"]["dev-block-0"]["mean"] == 0.0
    key = next(c for c in raced if c["prompt"]["instruction"] == KEY)
    assert {"dev-block-0", "dev-block-1", "dev-block-2", "dev"} <= set(key["scores"])


def induce_two_keys(request: CompletionRequest) -> str:
    """Induction gives the key with a needless extra sentence first, then the plain key."""
    text = request.messages[-1].content
    if "Here are inputs" in text:
        return {
            0: f"<prompt>{KEY} Then stop and do not explain.</prompt>",
            2: f"<prompt>{KEY}</prompt>",
        }.get(request.sample_index, "<prompt>Name the animal.</prompt>")
    return "<prompt>Which animal is it, really?</prompt>"


# Both keys reach the whole dev split: no generations, every prompt a finalist.
TWO_KEYS_OPTS = {
    **CAPO_OPTS,
    "population_size": 4,
    "generations": 0,
    "final_k": 4,
    "upper_shots": 0,
}


@pytest.mark.parametrize(("penalty", "winner"), [(0.05, KEY), (0.0, "long")])
def test_a_shorter_prompt_that_scores_the_same_wins(
    tmp_path: Path, penalty: float, winner: str
) -> None:
    task = write_animal_task(tmp_path / "task")
    options = {**TWO_KEYS_OPTS, "length_penalty": penalty}
    opt = ScriptedLLM(induce_two_keys, model_id="two-keys")
    result = optimize(task, optimizer="capo", options=options, settings=settings(tmp_path, opt))
    scored = [c for c in candidates(result.run_dir) if "dev" in c["scores"]]
    perfect = [c["prompt"]["instruction"] for c in scored if c["scores"]["dev"]["mean"] == 1.0]
    assert perfect == [f"{KEY} Then stop and do not explain.", KEY]
    expected = KEY if winner == KEY else perfect[0]
    assert result.best.prompt.instruction == expected


def test_the_task_length_penalty_decides_capos_winner_too(tmp_path: Path) -> None:
    """CAPO's own penalty off, the task's on: of two prompts scoring the same on dev
    the shorter wins, as with every optimizer (Optimizer.choose_winner)."""
    task = write_animal_task(tmp_path / "task")
    options = {**TWO_KEYS_OPTS, "length_penalty": 0.0}
    opt = ScriptedLLM(induce_two_keys, model_id="two-keys")
    result = optimize(
        task,
        optimizer="capo",
        options=options,
        length_penalty=0.05,
        settings=settings(tmp_path, opt),
    )
    scored = [c for c in candidates(result.run_dir) if "dev" in c["scores"]]
    perfect = [c["prompt"]["instruction"] for c in scored if c["scores"]["dev"]["mean"] == 1.0]
    assert perfect == [f"{KEY} Then stop and do not explain.", KEY]
    assert result.best.prompt.instruction == KEY


def test_capo_keeps_the_final_selection_paid_for(tmp_path: Path) -> None:
    task = write_animal_task(tmp_path / "task")
    # generation 1 (2 offspring on a block of 4) and the final selection (seed and two
    # finalists on 12 dev examples) do not fit in 28: CAPO stops before it and selects
    result = optimize(
        task,
        optimizer="capo",
        options=CAPO_OPTS,
        budget={"task_calls": 28},
        settings=settings(tmp_path),
    )
    assert result.status == "budget"
    assert (result.stopped_by or "").startswith("budget (capo: stopped before generation 1")
    assert result.search_usage["task"]["calls"] <= 28
    assert result.selection_split == "dev" and result.seed.score("dev") is not None
    assert result.test_best is not None and result.test_best.n == 18


def test_a_budget_ending_in_a_race_selects_on_the_first_block(tmp_path: Path) -> None:
    """A token limit is not predicted: it ends the search inside a race. The first
    dev block, which every raced candidate was scored on, then decides. One call in
    flight: with two, where a token limit cuts depends on which call finishes first."""
    task = write_animal_task(tmp_path / "task")
    task.write_text(task.read_text().replace("concurrency: 2", "concurrency: 1"))
    result = optimize(
        task,
        optimizer="capo",
        options=CAPO_OPTS,
        budget={"task_tokens": 400},
        settings=settings(tmp_path),
    )
    assert result.stopped_by == "task_tokens" and result.status == "budget"
    assert result.selection_split == "dev-block-0"
    assert result.best.prompt.instruction == KEY and result.best.score("dev-block-0") == 1.0


def test_budget_ending_in_the_final_selection_keeps_the_best_scored(tmp_path: Path) -> None:
    task = write_animal_task(tmp_path / "task")
    full = optimize(task, optimizer="capo", options=CAPO_OPTS, settings=settings(tmp_path / "a"))
    calls = int(full.search_usage["task"]["calls"])
    result = optimize(
        task,
        optimizer="capo",
        options=CAPO_OPTS,
        budget={"task_calls": calls - 1},
        settings=settings(tmp_path / "b"),
    )
    assert result.status == "budget" and result.search_usage["task"]["calls"] <= calls - 1
    assert result.best.score("dev") is not None or result.best.id == result.seed.id


def junk_responder(request: CompletionRequest) -> str:
    """Every kind of unusable reply, by sample index."""
    text = request.messages[-1].content
    kind = request.sample_index % 4
    if kind == 0:
        return ""
    if kind == 1:
        return " ".join(["x" * 30] * 200)  # runs to the reply limit: too long
    if kind == 2:
        return "<prompt></prompt>"
    if "change the wording:" in text:  # repeat the instruction it was given
        return f"<prompt>{_quoted(text, 'change the wording:')}</prompt>"
    if "Instruction 1:" in text:
        return _quoted(text, "Instruction 1:")
    return "<prompt>{placeholder}</prompt> <tag>"


def test_capo_survives_a_model_that_never_gives_a_usable_reply(tmp_path: Path) -> None:
    task = write_animal_task(tmp_path / "task")
    junk = ScriptedLLM(junk_responder, model_id="junk")
    options = {**CAPO_OPTS, "population_size": 5, "crossovers_per_iter": 4}
    result = optimize(task, optimizer="capo", options=options, settings=settings(tmp_path, junk))
    assert result.status == "finished"
    # every reply was rejected and counted (duplicates of the fallbacks too)
    assert result.rejected_replies >= len(junk.requests) > 0
    reasons = {e["reason"] for e in events(result.run_dir, "ReplyRejected")}
    assert {"empty", "too long", "repeats the parent"} <= reasons
    # the fallbacks keep the seed's instruction and vary only the demos
    for c in candidates(result.run_dir):
        assert c["prompt"]["instruction"] == "Which animal is it?"
    assert result.test_best is not None and result.test_best.mean == 0.0


def test_same_seed_same_candidates(tmp_path: Path) -> None:
    task = write_animal_task(tmp_path / "task")
    first = optimize(task, optimizer="capo", options=CAPO_OPTS, settings=settings(tmp_path / "a"))
    second = optimize(task, optimizer="capo", options=CAPO_OPTS, settings=settings(tmp_path / "b"))

    def lineage(run_dir: Path) -> list[tuple[str, str, tuple[str, ...], dict]]:
        return [
            (c["id"], c["operation"], tuple(c["parents"]), c["scores"]) for c in candidates(run_dir)
        ]

    assert lineage(first.run_dir) == lineage(second.run_dir)
    assert first.to_dict()["test"] == second.to_dict()["test"]
    third = optimize(
        task, optimizer="capo", options=CAPO_OPTS, seed=1, settings=settings(tmp_path / "c")
    )
    assert lineage(third.run_dir) != lineage(first.run_dir)


def test_meta_prompts_carry_the_task_description_and_the_answers(tmp_path: Path) -> None:
    task = write_animal_task(
        tmp_path / "task", extra="description: Name the opposite of an animal.\n"
    )
    opt = ScriptedLLM(capo_responder, model_id="capo-optimizer")
    optimize(task, optimizer="capo", options=CAPO_OPTS, settings=settings(tmp_path, opt))
    assert opt.requests
    for request in opt.requests:
        text = request.messages[-1].content
        assert text.startswith("Task: Name the opposite of an animal.\nAnswer with exactly one of:")
    assert len({r.sample_index for r in opt.requests}) > 1
    assert all(r.temperature == CAPOConfig().temperature for r in opt.requests)


def test_demos_come_from_train_and_respect_upper_shots(tmp_path: Path) -> None:
    task = write_animal_task(tmp_path / "task")
    result = optimize(task, optimizer="capo", options=CAPO_OPTS, settings=settings(tmp_path))
    rows = candidates(result.run_dir)
    train_inputs = {"cat", "dog", "cow", "horse", "fox", "owl"}
    assert any(c["prompt"]["demos"] for c in rows)
    for c in rows:
        demos = c["prompt"]["demos"]
        assert len(demos) <= CAPO_OPTS["upper_shots"]
        assert all(d["input"] in train_inputs for d in demos)
        assert len({d["input"] for d in demos}) == len(demos)


def test_front_and_estimate(tmp_path: Path) -> None:
    task = write_animal_task(tmp_path / "task")
    p = plan(load_task(task), optimizer="capo", optimizer_options=CAPO_OPTS)
    assert isinstance(p.optimizer, CAPO)
    result = Runner(p, settings(tmp_path)).run()
    front = p.optimizer.front
    assert front and result.best.id in {pt.id for pt in front}
    # on the front: no point is both better and shorter than another
    for a in front:
        for b in front:
            assert not (a.score > b.score and a.length < b.length)
    bound = p.optimizer.estimate(12, 12, 4)
    assert result.search_usage["task"]["calls"] <= bound["task"]
    assert result.search_usage["optimizer"]["calls"] <= bound["optimizer"]


@pytest.mark.parametrize(
    "option",
    [
        {"bogus": 1},
        {"population_size": 1},
        {"alpha": 0.7},
        {"length_penalty": -0.1},
        {"block_size": 0},
        {"temperature": "hot"},
    ],
)
def test_bad_options_are_config_errors(tmp_path: Path, option: dict) -> None:
    task = write_animal_task(tmp_path / "task")
    with pytest.raises(ConfigError) as e:
        optimize(task, optimizer="capo", options=option, settings=settings(tmp_path))
    assert next(iter(option)) in str(e.value)


@pytest.mark.embedded
def test_capo_end_to_end_on_the_embedded_model(tmp_path: Path) -> None:
    task = tmp_path / "tiny.yaml"
    task.write_text(
        f"name: tiny-navigate\n"
        f"data:\n  folder: {REPO / 'examples/data/navigate'}\n"
        "  limits: {train: 10, dev: 6, test: 6}\n"
        "models: {task: embedded, optimizer: embedded, judge: embedded}\n"
        "task_params: {max_tokens: 8}\n"
        "optimizer: {name: capo, population_size: 2, generations: 1, crossovers_per_iter: 2,"
        " block_size: 3, max_blocks: 2, final_k: 1, upper_shots: 1, init_demos: 3,"
        " max_tokens: 48}\n"
        "budget: {task_calls: 40, optimizer_calls: 6}\n"
        "seed: 0\n",
        encoding="utf-8",
    )
    result = optimize(task, settings=RunSettings(runs_dir=tmp_path / "runs", cache_dir=None))
    assert result.status in ("finished", "budget")
    assert result.search_usage["task"]["calls"] <= 40
    assert result.search_usage["optimizer"]["calls"] <= 6
    assert result.test_best is not None and result.test_best.n == 6
    assert (result.run_dir / "result.json").exists()
    seed_dev, best_dev = result.seed.score("dev"), result.best.score("dev")
    assert seed_dev is not None and best_dev is not None
    print(
        f"\nembedded CAPO: dev seed {seed_dev:.3f} best {best_dev:.3f}; "
        f"test seed {result.test_seed.mean if result.test_seed else None} "
        f"best {result.test_best.mean}; best prompt {result.best.prompt.instruction!r} "
        f"({len(result.best.prompt.demos)} demos); rejected {result.rejected_replies}"
    )
    assert re.search(r"\S", result.best.prompt.instruction)


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("capo", {**CAPO_OPTS, "upper_shots": 4}),
        ("exemplars", {"k": 4}),
        ("mipro", {"max_labeled_demos": 4, "max_bootstrapped_demos": 4}),
        ("promptwizard", {"few_shot_count": 4}),
    ],
)
def test_the_dry_run_prices_task_calls_with_the_demonstrations_candidates_carry(
    tmp_path: Path, name: str, options: dict[str, object]
) -> None:
    task = write_animal_task(tmp_path / "task")
    backends = settings(tmp_path).backends
    demo_search = estimate(
        plan(load_task(task), optimizer=name, optimizer_options=options), backends
    )
    seed_only = estimate(plan(load_task(task), optimizer="ape"), backends)
    per_call = demo_search.task.prompt_tokens / demo_search.task.calls
    # four demo turns, each the instruction and a train example, beside the example's turn
    assert per_call > 3 * seed_only.task.prompt_tokens / seed_only.task.calls
    result = optimize(task, optimizer=name, options=options, settings=settings(tmp_path))
    usage = result.search_usage["task"]
    assert usage["model_calls"] > 0
    assert usage["prompt_tokens"] / usage["model_calls"] <= per_call
