"""Error feedback ("textual gradients"), shared by ProTeGi and PromptAgent: the
failures of a prompt on a minibatch, shown to the optimizer model as far as its
context allows, and the tolerant reading of the reasons and rewritten prompts it
replies with.
"""

from __future__ import annotations

import re

from promptascent.data.example import Example
from promptascent.evaluation.result import EvaluationResult, ExampleResult
from promptascent.llm.client import ModelClient
from promptascent.llm.types import CompletionRequest, Message
from promptascent.optimizers.parsing import Parsed, parse_instruction
from promptascent.prompts.template import fill

Error = tuple[Example, ExampleResult]

# How much of each error is shown: inputs and outputs are clipped to these.
INPUT_CHARS = 300
OUTPUT_CHARS = 120


def failures(result: EvaluationResult, examples: list[Example]) -> list[Error]:
    """The examples of `examples` that `result` scored below 1, with their results;
    under likelihood scoring the worst first (the lowest gold probability)."""
    by_id = {ex.id: ex for ex in examples}
    errors = [
        (by_id[r.example_id], r)
        for r in result.results
        if r.score is not None and r.score < 1.0 and r.example_id in by_id
    ]
    errors.sort(key=lambda pair: 1.0 if pair[1].gold_prob is None else pair[1].gold_prob)
    return errors


def format_errors(errors: list[Error]) -> str:
    """Input, expected answer and model output of each error, clipped."""
    blocks = []
    for ex, r in errors:
        target = " / ".join(ex.targets) or "(not given)"
        output = clip(r.output, OUTPUT_CHARS) or "(empty)"
        text = clip(ex.input_text, INPUT_CHARS)
        blocks.append(f"Input: {text}\nExpected: {target}\nModel output: {output}")
    return "\n\n".join(blocks)


def fit_errors(
    model: ModelClient,
    template: str,
    fields: dict[str, str],
    errors: list[Error],
    reply_tokens: int,
) -> str:
    """`template` filled with `fields` and as many of `errors` (field `errors`) as fit
    in the model's context with `reply_tokens` left for the reply (at least one: if
    even that is too long, the call fails and is counted)."""
    text = ""
    for k in range(len(errors), 0, -1):
        text = fill(template, {**fields, "errors": format_errors(errors[:k])})
        request = CompletionRequest(messages=(Message("user", text),))
        if model.prompt_tokens(request) + reply_tokens <= model.context_length:
            break
    return text


def clip(text: str, limit: int) -> str:
    """Whitespace collapsed, cut to `limit` characters with "..." when longer."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."


def norm(text: str) -> str:
    """Casefolded words: what two texts that say the same thing share."""
    return re.sub(r"\W+", " ", text.casefold()).strip()


# Tolerant parsing of the model's replies.

_START = re.compile(r"<start>(.*?)(?=<end>|</start>|<start>|$)", re.IGNORECASE | re.DOTALL)
_PROMPT = re.compile(r"<prompt>(.*?)(?=</prompt>|<prompt>|$)", re.IGNORECASE | re.DOTALL)
_MARKER = re.compile(r"^\s*(?:\(?\d{1,2}[.):]|[-*\u2022]|reason\s*\d*\s*[:.)-])\s*", re.IGNORECASE)
_TAG = re.compile(r"</?[a-z_]+>", re.IGNORECASE)


def parse_reasons(
    reply: str, *, echo: str = "", min_chars: int = 12, max_chars: int = 400
) -> list[str]:
    """The reasons in a gradient reply, in order, without duplicates: the texts between
    <START> and <END> (the paper's format; an unclosed one runs on), else the items
    of a numbered or bulleted list (continuation lines joined, text before the list
    dropped), else each line that does not end in ":". Items that are too short or
    long, hold tags, or repeat part of the question (`echo`) are dropped."""
    if re.search(r"<start>", reply, re.IGNORECASE):
        items = [m.group(1) for m in _START.finditer(reply)]
    else:
        items = _list_items(reply)
    echoed = norm(echo)
    out: list[str] = []
    for item in items:
        text = _clean_reason(_MARKER.sub("", _TAG.sub(" ", item), count=1))
        normed = norm(text)
        if not min_chars <= len(text) <= max_chars or _TAG.search(text):
            continue
        if not normed or (echoed and normed in echoed) or normed in (norm(x) for x in out):
            continue
        out.append(text)
    return out


_QUOTES = {'"': '"', "'": "'", "`": "`", "\u201c": "\u201d"}


def _clean_reason(text: str) -> str:
    """Whitespace collapsed, surrounding quotes off, first letter capital. (Not
    parsing.clean: its preamble rule would cut "The prompt is vague" to "Vague".)"""
    text = " ".join(text.split())
    if len(text) >= 2 and _QUOTES.get(text[0]) == text[-1]:
        text = text[1:-1].strip()
    return text[:1].upper() + text[1:]


def _list_items(reply: str) -> list[str]:
    lines = reply.splitlines()
    if not any(_MARKER.match(line) for line in lines):
        return [line for line in lines if line.strip() and not line.rstrip().endswith(":")]
    items: list[list[str]] = []
    inside = False  # a blank line ends an item; lines before the list are chatter
    for line in lines:
        if _MARKER.match(line):
            items.append([line])
            inside = True
        elif not line.strip():
            inside = False
        elif inside:
            items[-1].append(line)
    return [" ".join(x.strip() for x in item) for item in items]


def parse_prompt_reply(reply: str, *, forbidden: tuple[str, ...] = ()) -> Parsed:
    """The prompt in an edit or paraphrase reply: inside <prompt> (our templates) or
    <START>/<END> (the paper's), else the reply minus chatter; rejected as in
    parsing.parse_instruction."""
    m = _START.search(reply)
    if m is not None:
        reply = f"<prompt>{m.group(1)}</prompt>"
    return parse_instruction(reply, tag="prompt", forbidden=forbidden)


def parse_prompt_replies(reply: str, *, forbidden: tuple[str, ...] = ()) -> list[Parsed]:
    """Every prompt in a reply asked for several, in order: each text inside <prompt>
    (an unclosed one runs to the next or the end), else each between <START> and <END>,
    else the whole reply read as `parse_prompt_reply`. Each is read and rejected as in
    parsing.parse_instruction (an empty block is rejected, not skipped)."""
    blocks = [m.group(1) for m in _PROMPT.finditer(reply)]
    if not blocks:
        blocks = [m.group(1) for m in _START.finditer(reply)]
    if not blocks:
        return [parse_prompt_reply(reply, forbidden=forbidden)]
    return [parse_instruction(f"<prompt>{b}</prompt>", forbidden=forbidden) for b in blocks]
