"""Scripted models for exact tests: a task model that is right only when the prompt
holds a hidden key instruction, and an optimizer model that can propose it."""

from __future__ import annotations

import re

from promptascent.data.example import Dataset, Example
from promptascent.llm.scripted import ScriptedLLM
from promptascent.llm.types import CompletionRequest

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
    """Right answer iff the key instruction is in the user turn; otherwise echoes."""
    user = request.messages[-1].content
    animal = user.strip().split()[-1].strip(".")
    if KEY in user:
        return PAIRS.get(animal, "unknown")
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


def first_word(request: CompletionRequest) -> str:
    return request.messages[-1].content.split()[0]


def ids(text: str) -> list[str]:
    return re.findall(r"[0-9a-f]{12}", text)
