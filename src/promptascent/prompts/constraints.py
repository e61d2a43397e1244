"""Constraints a user puts on every candidate prompt: a length limit, protected spans
the optimizer may not change, and the seed's output format kept as it is."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from promptascent.prompts.prompt import Prompt

_KEEP = re.compile(r"<keep>(.*?)</keep>", re.DOTALL | re.IGNORECASE)


def split_keep_tags(instruction: str) -> tuple[str, tuple[str, ...]]:
    """The instruction without `<keep>` tags, and the spans they marked."""
    spans = tuple(s.strip() for s in _KEEP.findall(instruction) if s.strip())
    return _KEEP.sub(lambda m: m.group(1), instruction), spans


@dataclass(frozen=True)
class Verdict:
    prompt: Prompt | None  # None: rejected
    reason: str = ""  # why rejected, or what was repaired
    repaired: bool = False


@dataclass(frozen=True)
class Constraints:
    """`protected`: texts every candidate's instruction must contain verbatim (a
    candidate missing some gets them appended: small optimizer models drop them often,
    and appending keeps the candidate's own wording); `max_prompt_tokens`: candidates
    longer than this (system + demos + instruction + format, without the input) are
    rejected; `keep_output_format`: every candidate keeps the seed's output format."""

    protected: tuple[str, ...] = ()
    max_prompt_tokens: int | None = None
    keep_output_format: bool = False
    seed_output_format: str | None = None
    count_tokens: Callable[[str], int] | None = field(default=None, compare=False)

    def apply(self, prompt: Prompt) -> Verdict:
        repaired: list[str] = []
        if self.keep_output_format and prompt.output_format != self.seed_output_format:
            prompt = replace(prompt, output_format=self.seed_output_format)
            repaired.append("output format restored")
        missing = [s for s in self.protected if s not in prompt.instruction]
        if missing:
            text = prompt.instruction.rstrip()
            prompt = replace(prompt, instruction="\n".join([text, *missing]).strip())
            repaired.append(f"{len(missing)} protected span(s) restored")
        if self.max_prompt_tokens is not None and self.count_tokens is not None:
            tokens = self.count_tokens(_template_text(prompt))
            if tokens > self.max_prompt_tokens:
                return Verdict(
                    None, f"{tokens} tokens > max_prompt_tokens {self.max_prompt_tokens}"
                )
        return Verdict(prompt, "; ".join(repaired), bool(repaired))

    def tokens(self, prompt: Prompt) -> int | None:
        return self.count_tokens(_template_text(prompt)) if self.count_tokens else None


def _template_text(prompt: Prompt) -> str:
    fields = {f: "" for f in (prompt.fields or ("input",))}
    return "\n".join(m.content for m in prompt.render(fields))
