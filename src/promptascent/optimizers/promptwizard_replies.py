"""Tolerant reading of the optimizer model's replies to PromptWizard's meta-prompts,
and the formatting of examples shown to it.

PromptWizard asks for several items per reply, each between <START> and <END>
(instruction variations, reasons, synthetic examples); small models drop the tags,
leave one open, use our <prompt> tag or number the items. `blocks` takes what is there;
each reader then keeps the items that look like what was asked and says why it dropped
the others (a `Parsed` with no text), so every dropped item can be counted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from promptascent.data.example import Example
from promptascent.evaluation.result import ExampleResult
from promptascent.metrics.builtin import first_named_choice
from promptascent.optimizers.parsing import Parsed, clean, parse_instruction

_BLOCK = re.compile(r"<start>(.*?)(?=<end>|</start>|<start>|$)", re.IGNORECASE | re.DOTALL)
_PROMPT = re.compile(r"<prompt>(.*?)(?=</prompt>|<prompt>|$)", re.IGNORECASE | re.DOTALL)
_ITEM = re.compile(r"^\s*(?:\(?\d{1,2}[.):]|[-*\u2022])\s+")
_TAG = re.compile(r"</?[a-z_]+>", re.IGNORECASE)

# Longest texts kept: a critique shown to the refinement, a reasoning chain in a
# demonstration, a persona in the system message.
CRITIQUE_CHARS = 800
REASONING_CHARS = 400
PERSONA_CHARS = 800


def blocks(reply: str) -> list[str]:
    """The items of a reply, in order: the texts between <START> and <END> (an
    unclosed one runs to the next <START> or the end), else those in <prompt> tags,
    else the items of a numbered or bulleted list, else the whole reply as one."""
    for pattern in (_BLOCK, _PROMPT):
        found = [m.group(1).strip() for m in pattern.finditer(reply)]
        if found:
            return found
    lines = reply.splitlines()
    if sum(1 for line in lines if _ITEM.match(line)) >= 2:
        items: list[list[str]] = []
        for line in lines:
            if _ITEM.match(line):
                items.append([_ITEM.sub("", line, count=1)])
            elif items and line.strip():
                items[-1].append(line.strip())
        return [" ".join(item).strip() for item in items]
    return [reply.strip()]


def parse_variations(reply: str, *, forbidden: tuple[str, ...]) -> list[Parsed]:
    """Each item of a reply read as an instruction (parsing.parse_instruction: the
    reply must not just repeat one of `forbidden`), without a leading list number."""
    items = [_ITEM.sub("", item, count=1) for item in blocks(reply)]
    return [parse_instruction(f"<prompt>{item}</prompt>", forbidden=forbidden) for item in items]


def repetitive(text: str) -> bool:
    """Whether `text` loops (a small model repeating itself): 12 words or more, fewer
    than a third of them distinct."""
    words = text.casefold().split()
    return len(words) >= 12 and len(set(words)) < len(words) / 3


def _too_short(text: str) -> bool:
    return len(text) < 12 or len(text.split()) < 3


def parse_critique(reply: str) -> Parsed:
    """A critique: its reasons as a list when it gave several, else its text; tags
    removed, clipped to CRITIQUE_CHARS. Under three words, or looping, it is none."""
    items = [" ".join(_TAG.sub(" ", b).split()) for b in blocks(reply)]
    items = [x for x in items if x]
    if not items:
        return Parsed(None, "empty critique")
    text = items[0] if len(items) == 1 else "\n".join(f"- {x}" for x in items)
    if _too_short(text):
        return Parsed(None, "critique too short")
    if repetitive(text):
        return Parsed(None, "critique repeats itself")
    if len(text) > CRITIQUE_CHARS:
        text = text[: CRITIQUE_CHARS - 3].rstrip() + "..."
    return Parsed(text)


@dataclass(frozen=True)
class SyntheticExample:
    """A question and the answer the optimizer model gave it."""

    question: str
    answer: str


_ANS = re.compile(r"<ANS_START>(.*?)(?:<ANS_END>|<ANS_START>|$)", re.IGNORECASE | re.DOTALL)


def _marker(item: str, words: str, start: int = 0) -> re.Match[str] | None:
    """Where a field marker ends: "[Answer]" first, else "Answer:", else the word."""
    for pattern in (rf"\[(?:{words})\]\s*:?", rf"\b(?:{words})\s*:", rf"\b(?:{words})\b"):
        m = re.compile(pattern, re.IGNORECASE).search(item, start)
        if m is not None:
            return m
    return None


def parse_examples(
    reply: str, *, choices: tuple[str, ...] | None
) -> list[SyntheticExample | Parsed]:
    """The synthetic examples of a reply, one per item: "[Question] ... [Answer] ...",
    the answer between <ANS_START> and <ANS_END> (else the answer's last line). With
    `choices`, the answer must name one of them (it becomes that choice). An item
    without a question or an answer is a Parsed with the reason it was dropped."""
    out: list[SyntheticExample | Parsed] = []
    for item in blocks(reply):
        q = _marker(item, "question|input")
        a = _marker(item, "answer|output", q.end()) if q else None
        if q is None or a is None:
            out.append(Parsed(None, "synthetic example: no [Question] and [Answer]"))
            continue
        question = " ".join(item[q.end() : a.start()].split())
        answer_text = item[a.end() :]
        tagged = _ANS.search(answer_text)
        lines = [x.strip() for x in answer_text.splitlines() if x.strip()]
        answer = tagged.group(1) if tagged else (lines[-1] if lines else "")
        answer = " ".join(_TAG.sub(" ", answer).split()).strip(" .\"'")
        if not question:
            out.append(Parsed(None, "synthetic example: empty question"))
        elif not answer:
            out.append(Parsed(None, "synthetic example: empty answer"))
        elif choices is not None:
            named = first_named_choice(answer, choices)
            if named is None:
                out.append(Parsed(None, "synthetic example: the answer is not a choice"))
            else:
                out.append(SyntheticExample(question, named))
        else:
            out.append(SyntheticExample(question, answer))
    return out


_REASON_PREFIX = re.compile(
    r"^\s*(?:\[?(?:improved\s+)?reasoning(?:\s+chain)?\]?|\[?explanation\]?|steps?)\s*:\s*",
    re.IGNORECASE,
)
_ANSWER_LINE = re.compile(r"^\s*(?:\[?answer\]?|so the answer is|therefore)\b", re.IGNORECASE)


def parse_reasoning(reply: str) -> Parsed:
    """A short chain of thought: the reply's first paragraph without a heading, tags or
    a line giving the answer, in one line, cut at a sentence end near REASONING_CHARS."""
    text = _REASON_PREFIX.sub("", _TAG.sub(" ", reply).strip(), count=1)
    paragraph = text.strip().split("\n\n", 1)[0]
    lines = [x for x in paragraph.splitlines() if x.strip() and not _ANSWER_LINE.match(x)]
    text = " ".join(" ".join(lines).split())
    if _too_short(text):
        return Parsed(None, "reasoning: empty or too short")
    if repetitive(text):
        return Parsed(None, "reasoning repeats itself")
    return Parsed(_clip_sentence(text, REASONING_CHARS))


_PERSONA_PREFIX = re.compile(r"^\s*\[?(?:agent description|expert)\]?\s*:\s*", re.IGNORECASE)


def parse_persona(reply: str) -> Parsed:
    """An expert persona: the first paragraph of the reply, without a heading or what
    follows a new "[Instruction]", in one line, cut near PERSONA_CHARS. It speaks to
    the model ("you", as the template asks); a reply that does not is none."""
    text = re.split(r"\[instruction\]", reply, maxsplit=1, flags=re.IGNORECASE)[0]
    text = _PERSONA_PREFIX.sub("", clean(_TAG.sub(" ", text)), count=1)
    text = " ".join(text.strip().split("\n\n", 1)[0].split())
    if len(text) < 20:
        return Parsed(None, "persona: empty or too short")
    if not re.search(r"\byou(?:r)?\b", text, re.IGNORECASE):
        return Parsed(None, "persona: not in the second person")
    if repetitive(text):
        return Parsed(None, "persona repeats itself")
    return Parsed(_clip_sentence(text, PERSONA_CHARS))


# Formatting what the optimizer model is shown.

_INPUT_CHARS = 300
_OUTPUT_CHARS = 120


def format_examples(examples: list[tuple[Example, ExampleResult | None]]) -> str:
    """Each example's input, the output it got (when known) and the expected answer."""
    out = []
    for ex, r in examples:
        lines = [f"Input: {_clip(ex.input_text, _INPUT_CHARS)}"]
        if r is not None:
            lines.append(f"Output: {_clip(r.output, _OUTPUT_CHARS) or '(empty)'}")
        lines.append(f"Expected: {' / '.join(ex.targets) or '(not given)'}")
        out.append("\n".join(lines))
    return "\n\n".join(out)


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."


def _clip_sentence(text: str, limit: int) -> str:
    """`text` up to `limit` characters, cut after the last sentence end that fits
    (else at the limit)."""
    if len(text) <= limit:
        return text
    head = text[:limit]
    end = max(head.rfind(". "), head.rfind("! "), head.rfind("? "))
    return head[: end + 1] if end > 0 else head.rstrip()
