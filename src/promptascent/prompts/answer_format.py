"""The answer-format line: tells the task model which answers are valid."""

from __future__ import annotations

from promptascent.data.example import Example


def answer_format_line(examples: list[Example]) -> str | None:
    """ "Answer with exactly one of: a, b." when all examples share one choice set;
    a line pointing at the listed options when choices vary; None without choices."""
    sets = {tuple(ex.choices) for ex in examples if ex.choices}
    if not sets:
        return None
    if len(sets) == 1:
        return f"Answer with exactly one of: {', '.join(next(iter(sets)))}. Say nothing else."
    return "Answer with exactly one of the options, copied word for word. Say nothing else."
