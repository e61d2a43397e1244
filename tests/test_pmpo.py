"""PMPO on the scripted model: segments are masked and measured by the loss, the
harmful one is found and shown to the optimizer model with the hardest examples, and
the rewrite that lowers the loss wins; it needs likelihood scoring and keeps to the
budget."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from scripted import KEY, PAIRS, write_animal_task

from promptascent import RunSettings, optimize
from promptascent.errors import ConfigError
from promptascent.llm.scripted import ScriptedLLM
from promptascent.llm.types import CompletionRequest, LoglikRequest
from promptascent.optimizers.pmpo import masked, segments

HARMFUL = "Think about birds."


def test_an_instruction_is_cut_into_sentences_and_lines_without_placeholders() -> None:
    text = "Read the text. Is it fun?\nAnswer yes or no!\nText: {input}"
    assert [s.text for s in segments(text)] == [
        "Read the text.",
        "Is it fun?",
        "Answer yes or no!",
    ]
    second = segments(text)[1]
    assert masked(text, second) == "Read the text.\nAnswer yes or no!\nText: {input}"


def loglik(req: LoglikRequest) -> list[float]:
    """The right animal at -2 nats, -3 when the harmful sentence is in the prompt,
    -0.1 with the key instruction; every other choice at -2.5."""
    user = req.messages[-1].content
    animal = next((w for w in user.split() if w in PAIRS), "")
    right = PAIRS.get(animal, "")
    value = -0.1 if KEY in user else -3.0 if HARMFUL in user else -2.0
    return [value if c == right else -2.5 for c in req.continuations]


class Proposer:
    """Writes the key instruction only when shown the harmful sentence and an example
    with its correct answer (what PMPO's rewrite prompt holds); otherwise rephrases."""

    def __init__(self) -> None:
        self.prompts: list[str] = []

    def __call__(self, request: CompletionRequest) -> str:
        text = request.messages[-1].content
        self.prompts.append(text)
        if f"- {HARMFUL}" in text and "Correct answer:" in text:
            return f"<prompt>{KEY}</prompt>"
        return "<prompt>Say which animal this is.</prompt>"


def run(tmp_path: Path, *, scoring: str = "likelihood", budget: dict | None = None):  # type: ignore[no-untyped-def]
    task = write_animal_task(
        tmp_path / "t",
        extra=(
            f"evaluation: {{scoring: {scoring}}}\n"
            "optimizer: {name: pmpo, rounds: 2, minibatch: 6, variants: 2, eval_examples: 6}\n"
        ),
    )
    task.write_text(
        task.read_text().replace(
            "seed_prompt: Which animal is it?", f"seed_prompt: Which animal is it? {HARMFUL}"
        )
    )
    proposer = Proposer()
    scorer = ScriptedLLM(lambda r: "cat", loglik_fn=loglik)
    settings = RunSettings(
        runs_dir=tmp_path / "runs",
        cache_dir=tmp_path / "cache",
        backends={"task": scorer, "optimizer": ScriptedLLM(proposer), "judge": scorer},
    )
    return optimize(task, settings=settings, budget=budget), proposer


def test_pmpo_finds_the_harmful_sentence_and_the_rewrite_that_lowers_the_loss(
    tmp_path: Path,
) -> None:
    result, proposer = run(tmp_path)
    assert KEY in result.best_prompt.instruction
    # six animals: the right one at -0.1 nats, five others at -2.5
    keyed = -math.log(math.exp(-0.1) / (math.exp(-0.1) + 5 * math.exp(-2.5)))
    assert result.test_best.mean == 1.0
    assert result.test_best.mean_loss == pytest.approx(keyed)
    assert result.test_seed.mean_loss > result.test_best.mean_loss
    ops = {c["operation"] for c in result.lineage}
    assert "rewrite" in ops
    # the rewrite prompt named the harmful part and showed examples with their answers
    shown = proposer.prompts[0]
    assert f"- {HARMFUL}" in shown and "Correct answer:" in shown and "Model's answer:" in shown


def test_pmpo_records_the_masked_prompts_as_candidates(tmp_path: Path) -> None:
    from promptascent.store.run_store import RunStore

    result, _ = run(tmp_path)
    store = RunStore.open_existing(result.run_dir)
    try:
        masks = [c for c in store.candidates() if c["operation"] == "mask"]
    finally:
        store.close()
    assert masks and any(c["note"] == f"without: {HARMFUL}" for c in masks)
    assert all(HARMFUL not in c["prompt"]["instruction"] for c in masks if "birds" in c["note"])


def test_pmpo_needs_likelihood_scoring(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="pmpo measures prompts by their likelihood loss"):
        run(tmp_path, scoring="generate")


def test_pmpo_keeps_to_a_small_budget_and_still_searches(tmp_path: Path) -> None:
    result, proposer = run(tmp_path, budget={"task_calls": 60})
    assert result.search_usage["task"]["calls"] <= 60
    assert result.candidates > 1 and proposer.prompts


def test_a_budget_too_small_to_search_returns_the_seed_as_a_budget_stop(tmp_path: Path) -> None:
    """7 task calls: the seed on the 6-example subset, and no room beside the final's
    share for anything more (main raised its internal _NoRoom out of the run)."""
    result, proposer = run(tmp_path, budget={"task_calls": 7})
    assert result.status == "budget" and result.best.id == result.seed.id
    assert result.search_usage["task"]["calls"] <= 7 and not proposer.prompts


def pet_loglik(req: LoglikRequest) -> list[float]:
    """The pet task scored by likelihood: sure and right with the key instruction;
    with any other prompt right on cat, cow and fox only, by a margin of one nat."""
    from scripted import PET_KEY, PETS

    user = req.messages[-1].content
    animal = next((x.strip() for x in reversed(user.splitlines()) if x.strip() in PAIRS), "?")
    right = "yes" if animal in PETS else "no"
    if PET_KEY in user:
        return [-0.05 if c == right else -3.0 for c in req.continuations]
    lucky = animal in ("cat", "cow", "fox")
    return [(-0.5 if (c == right) == lucky else -1.5) for c in req.continuations]


def test_at_100_task_calls_pmpo_rewrites_and_scores_before_it_selects(tmp_path: Path) -> None:
    from scripted import PET_KEY, pet_proposer, write_pet_task

    task = write_pet_task(tmp_path / "task")  # 63 dev examples
    text = task.read_text().replace("evaluation: {", "evaluation: {scoring: likelihood, ")
    task.write_text(text)
    scorer = ScriptedLLM(lambda r: "unused", loglik_fn=pet_loglik)
    settings = RunSettings(
        runs_dir=tmp_path / "runs",
        cache_dir=tmp_path / "cache",
        backends={"task": scorer, "optimizer": pet_proposer(), "judge": scorer},
    )
    result = optimize(task, optimizer="pmpo", budget={"task_calls": 100}, settings=settings)
    assert result.search_usage["task"]["calls"] <= 100
    assert not result.screening_only
    assert PET_KEY in result.best_prompt.instruction
    assert result.test_best.mean == 1.0 and result.test_seed.mean < 1.0
