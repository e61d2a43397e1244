"""Tolerant parsing of optimizer-model replies.

Small models ignore requested tags, wrap answers in quotes or markdown, echo the
question, or ramble. We take what we can: the text inside the requested tag if
there is one (closed or not), else the reply minus common chatter; then reject
what does not look like a prompt: a repeat of the parent, template tags, or a reply
that restates the meta-prompt ("To fix the problems and build on the instructions so
far, you could ...": it holds a run of META_ECHO_WORDS words of a template's own text).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from importlib import resources

# A reply holding this many consecutive words of a meta-prompt template's own text
# (placeholders cut out) restates the meta-prompt. Measured on the 1,155 candidates of
# the 4.1 grid's seeds 1-2: at 6 words, 17 replies, all restatements, all scoring 0.
META_ECHO_WORDS = 6
# Templates whose text a good candidate may carry: PromptWizard's thinking styles are
# meant to be woven into the instruction.
_MAY_CARRY = frozenset({"promptwizard_styles.txt"})
# Placeholders ({name}) and tags (<prompt>) of a template: not its own words.
TEMPLATE_MARKUP = re.compile(r"\{[A-Za-z_][A-Za-z0-9_]*\}|</?[a-z_]+>")

_PREAMBLE = re.compile(
    r"^\s*((?:sure|okay|ok)(?!\w)[,!.]?|here(?:'s| is)[^:\n]*:|"
    r"(?:the |new |improved |revised )*(?:instruction|prompt)s?(?: was| is)?\s*:|"
    r"the (?:new |improved |revised |final )?(?:instruction|prompt) (?:was|is)(?: to)?\b)\s*",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Parsed:
    text: str | None
    reason: str = ""  # why it was rejected, when text is None


def extract_tagged(reply: str, tag: str) -> str | None:
    """Text inside <tag>...</tag>; an unclosed <tag> runs to the end of the reply."""
    m = re.search(rf"<{tag}>(.*?)(?:</{tag}>|$)", reply, re.IGNORECASE | re.DOTALL)
    return m.group(1).strip() if m else None


_QUOTES = {'"': '"', "'": "'", "`": "`", "\u201c": "\u201d", "\u2018": "\u2019"}


def clean(text: str) -> str:
    """Strips chatter around an instruction: preambles, code fences, quotes."""
    previous = None
    while text != previous:
        previous = text
        text = re.sub(r"^```[a-zA-Z]*\n?|\n?```$", "", text.strip()).strip()
        text = _PREAMBLE.sub("", text, count=1).strip()
        if len(text) >= 2 and _QUOTES.get(text[0]) == text[-1]:
            text = text[1:-1].strip()
    text = re.sub(r"[ \t]+", " ", text)
    return text[:1].upper() + text[1:]


def parse_instruction(
    reply: str,
    *,
    tag: str = "prompt",
    min_chars: int = 8,
    max_chars: int = 2000,
    forbidden: tuple[str, ...] = (),
) -> Parsed:
    """Reads an instruction from a reply. `forbidden` holds texts the reply must not
    simply repeat (the parent prompt, the meta-prompt's own placeholders)."""
    raw = extract_tagged(reply, tag)
    text = clean(raw if raw is not None else reply)
    # A reply that runs on past the instruction usually starts a new block on a blank line.
    if raw is None and "\n\n" in text:
        text = clean(text.split("\n\n", 1)[0])
    if not text:
        return Parsed(None, "empty")
    if len(text) < min_chars:
        return Parsed(None, "too short")
    if len(text) > max_chars:
        return Parsed(None, "too long")
    norm = _norm(text)
    for f in forbidden:
        if _norm(f) == norm:
            return Parsed(None, "repeats the parent")
    if re.search(r"</?[a-z_]+>", text, re.IGNORECASE):
        return Parsed(None, "contains template tags")
    if echoes_meta_prompt(text, allowed=forbidden):
        return Parsed(None, "echoes the meta-prompt")
    return Parsed(text)


def echoes_meta_prompt(text: str, *, allowed: tuple[str, ...] = ()) -> bool:
    """Whether `text` holds META_ECHO_WORDS consecutive words of a meta-prompt
    template's own text (optimizers/templates/), other than words it shares with the
    `allowed` texts (the parents: a run a parent already had is the parent's)."""
    echoed = _phrases(text) & _template_phrases()
    for a in allowed:
        if not echoed:
            break
        echoed -= _phrases(a)
    return bool(echoed)


@functools.cache
def _template_phrases() -> frozenset[tuple[str, ...]]:
    folder = resources.files("promptascent.optimizers") / "templates"
    phrases: set[tuple[str, ...]] = set()
    for entry in folder.iterdir():
        if entry.name.endswith(".txt") and entry.name not in _MAY_CARRY:
            for part in TEMPLATE_MARKUP.split(entry.read_text("utf-8")):
                phrases |= _phrases(part)
    return frozenset(phrases)


def _phrases(text: str) -> set[tuple[str, ...]]:
    words = re.findall(r"\w+(?:'\w+)?", text.casefold())
    n = META_ECHO_WORDS
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def _norm(text: str) -> str:
    return re.sub(r"\W+", " ", text.casefold()).strip()
