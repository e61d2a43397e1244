"""A prompt exactly as it is sent to the task model, for deployment."""

from __future__ import annotations

import json
from typing import Literal, get_args

from promptascent.errors import ConfigError
from promptascent.prompts.export_tools import to_dspy, to_langchain, to_registry
from promptascent.prompts.prompt import Prompt

ExportFormat = Literal["text", "messages", "json", "promptfoo", "langchain", "dspy", "registry"]
FORMATS: tuple[str, ...] = get_args(ExportFormat)


def check_format(fmt: str) -> None:
    """ConfigError naming the known formats when `fmt` is not one."""
    if fmt not in FORMATS:
        raise ConfigError(f"unknown export format {fmt!r}: use {', '.join(FORMATS)}")


def export_prompt(prompt: Prompt, fmt: str) -> str:
    """`text`: the user turn with `{field}` placeholders (only for prompts that are one
    user turn: no system text, no demos); `messages`: the chat messages as JSON, demos
    included, the last user turn with placeholders; `json`: the Prompt's fields;
    `langchain`, `dspy`, `registry`: see prompts/export_tools.py. `promptfoo` needs the
    run's test examples too (export_tools.to_promptfoo)."""
    check_format(fmt)
    fields = {f: "{" + f + "}" for f in (prompt.fields or ("input",))}
    if fmt == "text":
        if prompt.system or prompt.demos:
            raise ConfigError(
                "this prompt has a system message or demos, which plain text cannot carry "
                "exactly; use --format messages"
            )
        return prompt.user_text(fields)
    if fmt == "messages":
        return json.dumps(
            [m.to_dict() for m in prompt.render(fields)], indent=2, ensure_ascii=False
        )
    if fmt == "json":
        return json.dumps(prompt.to_dict(), indent=2, ensure_ascii=False)
    if fmt == "langchain":
        return json.dumps(to_langchain(prompt), indent=2, ensure_ascii=False)
    if fmt == "dspy":
        return json.dumps(to_dspy(prompt), indent=2, ensure_ascii=False)
    if fmt == "registry":
        return json.dumps(to_registry(prompt), indent=2, ensure_ascii=False)
    raise ConfigError(
        "the promptfoo export needs the run's test examples: use `promptascent export RUN`"
    )
