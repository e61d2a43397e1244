"""Scripted models that echo what they are shown, loadable from a task file
(`backend: scripted, model: "scripted_echo:task"`), so that hostile text in the data
really reaches model outputs, candidate prompts and the terminal. Each adds escape
sequences and markup of its own: a model's output is no more trusted than data."""

from __future__ import annotations

import re

from scripted import KEY, task_responder

from promptascent.llm.types import CompletionRequest

# Recolour, set the window title, clear the screen; and rich markup.
MODEL_ESCAPES = "\x1b[5;31mblink\x1b[0m\x1b]0;model-title\x07\x1b[2J"
MODEL_MARKUP = "[blink]model-markup[/blink]"


def task(request: CompletionRequest) -> str:
    """The scripted task model's answer (right iff the prompt holds the key), then the
    rendered user turn (data included) and the model's own escapes and markup."""
    user = request.messages[-1].content
    return f"{task_responder(request)} | {user} {MODEL_ESCAPES} {MODEL_MARKUP}"


def optimizer(request: CompletionRequest) -> str:
    """An instruction made of the first data line of its meta-prompt that holds markup
    (tags and braces removed, so that it parses as a prompt), with the model's own
    escapes and markup, then the key instruction (so that it wins); a plain
    instruction without the key when no line has any."""
    text = request.messages[-1].content
    line = next((ln for ln in text.splitlines() if "[bold red]" in ln), "")
    echoed = re.sub(r"</?[a-zA-Z_]+>|[{}]", "", line).removeprefix("Input: ").strip()
    if not echoed:
        return "<prompt>Name the animal you see.</prompt>"
    return f"<prompt>{echoed} {MODEL_ESCAPES} {MODEL_MARKUP} {KEY}</prompt>"
