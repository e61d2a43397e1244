"""Span feedback (Promptomatix style): a person selects a span of a candidate's prompt
or of one of its outputs and writes a comment on it.

A comment is stored with the run (table `span_comments` of its store: the candidate,
what was selected, where, and the comment) and becomes a requirement of a refined run
(`promptascent refine RUN --candidate ID --spans`), verbatim: the quoted span and the
comment, never rewritten by a model. Offsets count characters (code points) of the
text the span was taken from, and the span must be exactly that text's slice, so a
stored comment always points at what the person saw.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from promptascent.errors import ConfigError

Target = Literal["prompt", "output"]
TARGETS: tuple[str, ...] = get_args(Target)
MAX_COMMENT_CHARS = 2000
QUOTED_SPAN_CHARS = 300  # longer spans are quoted by their start and end in a requirement


@dataclass(frozen=True)
class SpanComment:
    """A comment on `span`, the characters `start` to `end` of the candidate's
    instruction (`target` "prompt") or of its output on example `example_id` of split
    `split` (`target` "output")."""

    candidate_id: str
    target: Target
    start: int
    end: int
    span: str
    comment: str
    split: str | None = None
    example_id: str | None = None
    ts: float = field(default_factory=time.time)

    def requirement(self) -> str:
        """The requirement this comment becomes in a refined run."""
        span = " ".join(self.span.split())
        if len(span) > QUOTED_SPAN_CHARS:
            half = QUOTED_SPAN_CHARS // 2
            span = f"{span[:half]} ... {span[-half:]}"
        where = "the prompt" if self.target == "prompt" else f"an output ({self.example_id})"
        return f'Feedback on {where}, about "{span}": {self.comment}'

    def to_dict(self) -> dict[str, Any]:
        return {
            "candidate_id": self.candidate_id,
            "target": self.target,
            "start": self.start,
            "end": self.end,
            "span": self.span,
            "comment": self.comment,
            "split": self.split,
            "example_id": self.example_id,
            "ts": self.ts,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SpanComment:
        return cls(
            candidate_id=str(d["candidate_id"]),
            target=d["target"],
            start=int(d["start"]),
            end=int(d["end"]),
            span=str(d["span"]),
            comment=str(d["comment"]),
            split=d.get("split"),
            example_id=d.get("example_id"),
            ts=float(d.get("ts") or 0.0),
        )


def span_comment(
    source: str,
    *,
    candidate_id: str,
    target: str,
    start: int,
    end: int,
    span: str,
    comment: str,
    split: str | None = None,
    example_id: str | None = None,
) -> SpanComment:
    """A checked comment on `source[start:end]`; ConfigError naming the field when the
    target is unknown, the offsets are outside `source`, the span is not the text at
    them, or the comment is empty or too long."""
    if target not in TARGETS:
        raise ConfigError(f"target: {target!r} is not one of {', '.join(TARGETS)}")
    if target == "output" and not (split and example_id):
        raise ConfigError("example_id: a comment on an output names its split and example")
    if not 0 <= start < end <= len(source):
        raise ConfigError(
            f"start, end: {start}..{end} is not a non-empty span of the {target} "
            f"({len(source)} characters)"
        )
    if source[start:end] != span:
        raise ConfigError(f"span: not the {target}'s text at {start}..{end}")
    text = " ".join(comment.split())
    if not text:
        raise ConfigError("comment: empty; say what is wrong with the selected text")
    if len(text) > MAX_COMMENT_CHARS:
        raise ConfigError(f"comment: {len(text)} characters; at most {MAX_COMMENT_CHARS}")
    kind: Target = "prompt" if target == "prompt" else "output"
    return SpanComment(
        candidate_id,
        kind,
        start,
        end,
        span,
        text,
        split=split if kind == "output" else None,
        example_id=example_id if kind == "output" else None,
    )
