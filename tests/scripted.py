"""Scripted models for exact tests: a task model that is right only when the prompt
holds a hidden key instruction, and an optimizer model that can propose it."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from promptascent.data.example import Dataset, Example
from promptascent.llm.scripted import ScriptedLLM
from promptascent.llm.types import CompletionRequest
from promptascent.runner import RunSettings
from promptascent.store.run_store import RunStore

KEY = "Answer with the opposite animal."
PAIRS = {"cat": "dog", "dog": "cat", "cow": "horse", "horse": "cow", "fox": "owl", "owl": "fox"}


def animal_dataset(name: str, n: int, offset: int = 0) -> Dataset:
    animals = list(PAIRS)
    examples = []
    for i in range(n):
        a = animals[(i + offset) % len(animals)]
        examples.append(
            Example(f"{name}-{i}", f"{a}", target=PAIRS[a], choices=tuple(sorted(set(PAIRS))))
        )
    return Dataset(name, tuple(examples))


def task_responder(request: CompletionRequest) -> str:
    """Right answer iff the key instruction is in the user turn; otherwise names the
    input animal (a parsed, wrong answer)."""
    user = request.messages[-1].content
    animal = next((line.strip() for line in user.splitlines() if line.strip() in PAIRS), "?")
    if KEY in user:
        return PAIRS[animal]
    return f"I think it is a {animal}"


def optimizer_responder(request: CompletionRequest) -> str:
    """Proposes the key on some samples, junk on others, so the search must select."""
    text = request.messages[-1].content
    if "variation" in text:
        return "<prompt>Please answer the question about the animal.</prompt>"
    if request.sample_index % 3 == 2:
        return f"<prompt>{KEY}</prompt>"
    if request.sample_index % 3 == 1:
        return ""  # an empty reply: must be counted, not crash
    return "Here is the instruction: Name the animal you see."


def task_model() -> ScriptedLLM:
    return ScriptedLLM(task_responder, model_id="scripted-task")


def optimizer_model() -> ScriptedLLM:
    return ScriptedLLM(optimizer_responder, model_id="scripted-optimizer")


# The scripted models as a task file names them (tests/scripted_cli.py), for runs the
# tests start as commands.
CLI_MODELS = (
    "models:\n"
    "  task: {backend: scripted, model: 'scripted_cli:task'}\n"
    "  optimizer: {backend: scripted, model: 'scripted_cli:optimizer'}\n"
    "  judge: {backend: scripted, model: 'scripted_cli:task'}\n"
)


def write_animal_task(folder: Path, *, extra: str = "") -> Path:
    """A labelled task on disk (train/dev/test JSONL and task.yaml); returns the yaml."""
    import json

    folder.mkdir(parents=True, exist_ok=True)
    for split, n, offset in (("train", 12, 0), ("dev", 12, 1), ("test", 18, 2)):
        ds = animal_dataset(split, n, offset)
        lines = [
            json.dumps(
                {
                    "id": ex.id,
                    "input": ex.input,
                    "target": ex.target,
                    "choices": list(ex.choices or ()),
                }
            )
            for ex in ds
        ]
        (folder / f"{split}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    task = folder / "task.yaml"
    task.write_text(
        "name: animals\n"
        "data: {train: train.jsonl, dev: dev.jsonl, test: test.jsonl}\n"
        "seed_prompt: Which animal is it?\n"
        "metric: choice_accuracy\n"
        "evaluation: {concurrency: 2}\n"
        "seed: 0\n" + extra,
        encoding="utf-8",
    )
    return task


def first_word(request: CompletionRequest) -> str:
    return request.messages[-1].content.split()[0]


def ids(text: str) -> list[str]:
    return re.findall(r"[0-9a-f]{12}", text)


def tiny_navigate(
    repo: Path, *, train: int = 6, dev: int = 4, test: int = 4, max_tokens: int = 8
) -> dict:
    """A few navigate examples as a task mapping, for one end-to-end run on the
    embedded model."""
    return {
        "name": "tiny-navigate",
        "data": {
            "folder": str(repo / "examples/data/navigate"),
            "limits": {"train": train, "dev": dev, "test": test},
        },
        "task_params": {"max_tokens": max_tokens},
        "seed": 0,
    }


def embedded_settings(tmp_path: Path, model: object) -> RunSettings:
    """Run settings with `model` (the session's embedded model) in every role."""
    return RunSettings(
        runs_dir=tmp_path / "runs",
        cache_dir=tmp_path / "cache",
        backends={"task": model, "optimizer": model, "judge": model},  # type: ignore[dict-item]
    )


# A two-choice task with a dev split as large as the one measured at 100 task calls
# (63 examples): is the animal a pet? The seed prompt names no answer (scores 0), any
# other prompt names one and is right on half of the animals, and a prompt holding
# PET_KEY is always right.

PETS = ("cat", "dog", "fox")
PET_SEED = "Is it a pet?"
PET_KEY = "Say yes for cats, dogs and foxes, and no for every other animal."


def pet_dataset(name: str, n: int, offset: int = 0) -> Dataset:
    animals = list(PAIRS)
    examples = []
    for i in range(n):
        a = animals[(i + offset) % len(animals)]
        target = "yes" if a in PETS else "no"
        examples.append(Example(f"{name}-{i}", a, target=target, choices=("yes", "no")))
    return Dataset(name, tuple(examples))


def pet_responder(request: CompletionRequest) -> str:
    """Right with PET_KEY; "maybe" (no answer) with the seed prompt alone; with any
    other prompt right on cat, cow and fox only."""
    user = request.messages[-1].content
    animal = next((x.strip() for x in reversed(user.splitlines()) if x.strip() in PAIRS), "?")
    right = "yes" if animal in PETS else "no"
    if PET_KEY in user:
        return right
    if len(request.messages) == 1 and user == f"{PET_SEED}\n\n{animal}":
        return "maybe"
    return right if animal in ("cat", "cow", "fox") else {"yes": "no", "no": "yes"}[right]


def pet_proposals() -> Callable[[CompletionRequest], str]:
    """Replies of an optimizer model that proposes PET_KEY on its first reply and on
    every third after it, and a middling instruction on the others (distinct, so a
    search has several candidates); asked for reasons (ProTeGi's gradients), it gives
    two."""
    calls = iter(range(10**6))

    def respond(request: CompletionRequest) -> str:
        text = request.messages[-1].content
        if "could have gotten these examples wrong" in text:
            return (
                "<START>It does not say which animals are pets.<END>\n"
                "<START>It names no answer.<END>"
            )
        n = next(calls)
        if n % 3 == 0:
            return f"<prompt>{PET_KEY}</prompt>"
        return f"<prompt>Look at the animal and answer question number {n}.</prompt>"

    return respond


def pet_proposer() -> ScriptedLLM:
    """An optimizer model replying as `pet_proposals`."""
    return ScriptedLLM(pet_proposals(), model_id="pet-proposer")


def write_pet_task(folder: Path, *, train: int = 30, dev: int = 63, test: int = 24) -> Path:
    """The pet task on disk (train/dev/test JSONL and task.yaml); returns the yaml."""
    import json

    folder.mkdir(parents=True, exist_ok=True)
    for split, n, offset in (("train", train, 0), ("dev", dev, 1), ("test", test, 2)):
        lines = [
            json.dumps(
                {"id": ex.id, "input": ex.input, "target": ex.target, "choices": ["yes", "no"]}
            )
            for ex in pet_dataset(split, n, offset)
        ]
        (folder / f"{split}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    task = folder / "task.yaml"
    task.write_text(
        "name: pets\n"
        "data: {train: train.jsonl, dev: dev.jsonl, test: test.jsonl}\n"
        f"seed_prompt: {PET_SEED}\n"
        "metric: choice_accuracy\n"
        "evaluation: {concurrency: 2}\n"
        "seed: 0\n",
        encoding="utf-8",
    )
    return task


def pet_settings(
    tmp_path: Path,
    optimizer: ScriptedLLM | None = None,
    task: ScriptedLLM | None = None,
) -> RunSettings:
    """Run settings for the pet task: `task` (default: pet_responder) as the task model,
    `optimizer` (default: pet_proposer) as the optimizer model."""
    return RunSettings(
        runs_dir=tmp_path / "runs",
        cache_dir=tmp_path / "cache",
        backends={
            "task": task or ScriptedLLM(pet_responder, model_id="pet-task"),
            "optimizer": optimizer or pet_proposer(),
            "judge": task_model(),
        },
    )


def stored_candidates(run_dir: Path) -> list[dict[str, Any]]:
    """The candidates a run's store recorded."""
    store = RunStore.open_existing(run_dir)
    try:
        return store.candidates()
    finally:
        store.close()


def stored_events(run_dir: Path, kind: str) -> list[dict[str, Any]]:
    """The events of one kind a run's store recorded."""
    store = RunStore.open_existing(run_dir)
    try:
        return [e for e in store.events() if e["kind"] == kind]
    finally:
        store.close()
