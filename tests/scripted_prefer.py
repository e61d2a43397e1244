"""Scripted models for preference tests, usable from a task file
(`{backend: scripted, model: "scripted_prefer:task"}`): the task model's output
depends on the prompt (a prompt saying "politely" gets polite outputs), and the
optimizer model proposes a polite, a rude and a plain paraphrase. Each call is
appended to $PA_CALL_LOG when it is set, so a CLI test can count paid calls."""

from __future__ import annotations

import json
import os
from pathlib import Path

from promptascent.llm.types import CompletionRequest
from promptascent.preference.duel import Choice, Duel

POLITE = "Dear friend"
ANIMALS = ("cat", "dog", "cow", "horse", "fox", "owl", "hen", "pig")
PARAPHRASES = {
    0: "<prompt>Politely name the animal, please.</prompt>",
    1: "<prompt>Shout the name of the animal.</prompt>",
    2: "",  # an empty reply: skipped and reported, not a candidate
    3: "Here is the instruction: Name the animal in one word.",
}


def _log(role: str) -> None:
    path = os.environ.get("PA_CALL_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(role + "\n")


def task_responder(request: CompletionRequest) -> str:
    user = request.messages[-1].content
    animal = next((w for w in user.split() if w.strip(".,") in ANIMALS), "thing").strip(".,")
    lowered = user.lower()
    if "politely" in lowered:
        return f"{POLITE}, I believe it is a {animal}. Thank you kindly!"
    if "shout" in lowered:
        return f"IT IS A {animal.upper()}!"
    return f"It is a {animal}."


def optimizer_responder(request: CompletionRequest) -> str:
    return PARAPHRASES.get(
        request.sample_index, "<prompt>Politely name the animal, please.</prompt>"
    )


def task(request: CompletionRequest) -> str:
    _log("task")
    return task_responder(request)


def optimizer(request: CompletionRequest) -> str:
    _log("optimizer")
    return optimizer_responder(request)


def prefers_polite(duel: Duel) -> Choice:
    """A chooser that likes polite outputs; equal politeness is a tie."""
    a, b = POLITE in duel.output_a, POLITE in duel.output_b
    if a == b:
        return "tie"
    return "A" if a else "B"


def write_inputs_task(folder: Path, *, extra: str = "", models: str = "") -> Path:
    """An inputs-only task (no labels, no metric) on disk; returns the task file."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = [json.dumps({"id": f"in-{i}", "input": a}) for i, a in enumerate(ANIMALS)]
    (folder / "inputs.jsonl").write_text("\n".join(rows) + "\n", encoding="utf-8")
    task = folder / "task.yaml"
    task.write_text(
        "name: animals-by-preference\n"
        "data: {train: inputs.jsonl}\n"
        "seed_prompt: Which animal is it?\n"
        "task_params: {max_tokens: 24}\n"
        "seed: 0\n" + models + extra,
        encoding="utf-8",
    )
    return task


SCRIPTED_MODELS = """\
models:
  task: {backend: scripted, model: "scripted_prefer:task"}
  optimizer: {backend: scripted, model: "scripted_prefer:optimizer"}
  judge: {backend: scripted, model: "scripted_prefer:task"}
"""
