"""The Prompt value: what the task model is given, and how it renders to chat messages."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from typing import Any

from promptascent.llm.types import Message
from promptascent.prompts.template import escape_braces, fill, template_fields


@dataclass(frozen=True)
class Demo:
    """A few-shot demonstration: an input (text or named fields) and the wanted output."""

    input: str | dict[str, str]
    output: str

    @property
    def fields(self) -> dict[str, str]:
        return dict(self.input) if isinstance(self.input, dict) else {"input": self.input}

    def to_dict(self) -> dict[str, Any]:
        return {"input": self.input, "output": self.output}


@dataclass(frozen=True)
class Prompt:
    """A prompt: instruction template, optional system text, demos and output format.

    Rendering (`render`): an optional system message; each demo as a user turn (the
    instruction filled with the demo's input) and an assistant turn (its output); then
    the user turn for the example. The user turn is the instruction with its
    placeholders filled; an instruction without placeholders is followed by a blank
    line and the input. The output format, if any, ends the user turn.
    `id` hashes all of it: two prompts with the same id render identically.
    """

    instruction: str
    system: str | None = None
    demos: tuple[Demo, ...] = ()
    output_format: str | None = None
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def fields(self) -> tuple[str, ...]:
        return template_fields(self.instruction)

    @property
    def id(self) -> str:
        blob = json.dumps(self.content(), sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:12]

    def content(self) -> dict[str, Any]:
        return {
            "system": self.system,
            "instruction": self.instruction,
            "demos": [d.to_dict() for d in self.demos],
            "output_format": self.output_format,
        }

    def user_text(self, fields: dict[str, str], *, where: str = "") -> str:
        if self.fields:
            text = fill(self.instruction, fields, where=where)
        else:
            instruction = fill(self.instruction, {}, where=where)
            body = (
                "\n".join(f"{k}: {v}" for k, v in fields.items())
                if len(fields) > 1
                else next(iter(fields.values()), "")
            )
            text = f"{instruction}\n\n{body}" if instruction.strip() else body
        if self.output_format:
            text = f"{text}\n\n{self.output_format}"
        return text

    def render(self, fields: dict[str, str], *, where: str = "") -> tuple[Message, ...]:
        out: list[Message] = []
        if self.system:
            out.append(Message("system", self.system))
        for i, demo in enumerate(self.demos):
            out.append(Message("user", self.user_text(demo.fields, where=f"demo {i}")))
            out.append(Message("assistant", demo.output))
        out.append(Message("user", self.user_text(fields, where=where)))
        return tuple(out)

    def with_instruction(self, text: str, *, raw: bool = False) -> Prompt:
        """A copy with a new instruction. Model-written text is brace-escaped (keeping
        this prompt's own placeholders) unless `raw`."""
        instruction = text if raw else escape_braces(text, self.fields)
        return replace(self, instruction=instruction, meta={})

    def with_demos(self, demos: tuple[Demo, ...]) -> Prompt:
        return replace(self, demos=demos, meta={})

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, **self.content()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Prompt:
        return cls(
            instruction=d.get("instruction") or "",
            system=d.get("system"),
            demos=tuple(Demo(x["input"], x["output"]) for x in d.get("demos") or ()),
            output_format=d.get("output_format"),
        )

    @property
    def length_chars(self) -> int:
        return sum(len(m.content) for m in self.render({f: "" for f in self.fields or ("input",)}))
