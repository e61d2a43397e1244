"""Scripted models for the EvoPrompt tests.

The hidden key (scripted.KEY, "Answer with the opposite animal.") is reachable only by
evolution: the initial population holds prompts with one half of it ("Answer with
..." or "... opposite ..."), each right on a third of the animals, and only a
crossover (GA) or differential step (DE) that sees both halves proposes the key.
The initial population's replies also hold the malformed kinds a small model gives:
a repeat of the seed, an overlong reply, an empty one, an echo of the meta-prompt.
"""

from __future__ import annotations

import re

from scripted import KEY, PAIRS

from promptascent.llm.scripted import ScriptedLLM
from promptascent.llm.types import CompletionRequest

SEED = "Which animal is it?"

# Replies to the initial-population meta-prompts by sample index (mixed init:
# even indexes paraphrase the seed, odd ones induce from demos).
INIT_REPLIES = {
    0: "<prompt>Answer with one animal name.</prompt>",
    1: "The instruction was: Think of the opposite.",  # untagged, with a preamble
    2: f"<prompt>{SEED}</prompt>",  # repeats the parent
    3: "<prompt>" + "x" * 2500 + "</prompt>",  # too long
    4: "",  # empty
    5: "I gave a friend an instruction. Following it, the friend wrote outputs.",  # echo
    6: "Sure! Here is a variation:\n<prompt>Answer with an animal, please.",  # unclosed tag
    7: "<prompt>Name the animal you see.</prompt>",
    8: "1. Crossover Prompt: junk\n2. Final prompt: Answer with a single animal.",  # labelled
}
INIT_REJECTED = {2: "repeats the parent", 3: "too long", 4: "empty", 5: "echoes the meta-prompt"}


def task_responder(request: CompletionRequest) -> str:
    """Right on every animal with the key; with one half of it, right on a third of
    them; otherwise names the input animal (a parsed, wrong answer)."""
    user = request.messages[-1].content
    animal = next((line.strip() for line in user.splitlines() if line.strip() in PAIRS), "?")
    lowered = user.casefold()
    if KEY in user:
        return PAIRS[animal]
    if "opposite" in lowered and animal in ("cat", "dog"):
        return PAIRS[animal]
    if "answer with" in lowered and animal in ("cow", "horse"):
        return PAIRS[animal]
    return f"I think it is a {animal}"


def _field(text: str, label: str) -> str:
    m = re.search(rf"^{label}: (.*)$", text, re.MULTILINE)
    return m.group(1) if m else ""


def _combine(prompts: list[str], sample_index: int, base: str) -> str:
    joined = " ".join(prompts).casefold()
    if "answer with" in joined and "opposite" in joined:
        return f"1. Crossover Prompt: {prompts[0]} {prompts[1]}\n2. <prompt>{KEY}</prompt>"
    # A child that is none of its parents (a mutation); sometimes an unusable reply.
    if sample_index % 4 == 3:
        return "1. Crossover the following prompts and generate a new prompt:"  # echo
    return f"<prompt>{base.rstrip('.')} (v{sample_index}).</prompt>"


def optimizer_responder(request: CompletionRequest) -> str:
    text = request.messages[-1].content
    i = request.sample_index
    if "Identify the different parts" in text:  # DE
        prompts = [_field(text, f"Prompt {n}") for n in (1, 2, 3)] + [_field(text, "Basic Prompt")]
        return _combine(prompts, i, prompts[3])
    if "Crossover the following prompts" in text:  # GA
        prompts = [_field(text, "Prompt 1"), _field(text, "Prompt 2")]
        return _combine(prompts, i, prompts[0])
    return INIT_REPLIES.get(i, f"<prompt>Look at the animal, take {i}.</prompt>")


def task_model() -> ScriptedLLM:
    return ScriptedLLM(task_responder, model_id="scripted-evo-task")


def optimizer_model() -> ScriptedLLM:
    return ScriptedLLM(optimizer_responder, model_id="scripted-evo-optimizer")
