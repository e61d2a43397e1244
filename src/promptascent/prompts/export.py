"""A prompt exactly as it is sent to the task model, for deployment."""

from __future__ import annotations

import json
from typing import Literal

from promptascent.errors import ConfigError
from promptascent.prompts.prompt import Prompt

ExportFormat = Literal["text", "messages", "json"]


def export_prompt(prompt: Prompt, fmt: str) -> str:
    """`text`: the user turn with `{field}` placeholders (only for prompts that are one
    user turn: no system text, no demos); `messages`: the chat messages as JSON, demos
    included, the last user turn with placeholders; `json`: the Prompt's fields."""
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
    raise ConfigError(f"unknown export format {fmt!r}: use text, messages or json")
