"""Fitting a meta-prompt into a model's context by shortening the texts it quotes.

A judge or optimizer prompt quotes inputs and outputs whose length the framework does
not control. MetaGPT's SPO sent judge prompts longer than the model's context on every
call (docs/findings.md); here the quoted texts are cut, fairly, before the call instead.
"""

from __future__ import annotations

from collections.abc import Callable

from promptascent.errors import ContextOverflow

MARK = " [...]"
MIN_SHARE = 8  # tokens a quoted text keeps at least; below that the prompt says nothing


def prompt_limit(context_length: int, max_tokens: int) -> int:
    """Prompt tokens a call may take: the context less the reply and a margin for the
    chat template (its role markers are not in a text's token count)."""
    return context_length - max_tokens - 16 - context_length // 50


def fit_pieces(
    render: Callable[[list[str]], str],
    pieces: list[str],
    *,
    limit: int,
    count_tokens: Callable[[str], int],
) -> str:
    """`render(pieces)` with the pieces shortened so that the result takes at most
    `limit` tokens. Short pieces are kept whole; what they leave is shared equally by
    the longer ones (water-filling), each cut at the end and marked " [...]".
    Raises ContextOverflow (a ModelError: counted as a failed call, never a vote) when
    even the template with pieces of MIN_SHARE tokens does not fit."""
    prompt = render(pieces)
    if count_tokens(prompt) <= limit:
        return prompt
    room = limit - count_tokens(render([""] * len(pieces)))
    for _ in range(4):  # token counts of joined texts differ a little from their sum
        if pieces and room < MIN_SHARE * len(pieces):
            break
        prompt = render(_water_fill(pieces, room, count_tokens))
        if count_tokens(prompt) <= limit:
            return prompt
        room = int(room * 0.9)
    raise ContextOverflow(
        f"the prompt does not fit in {limit} tokens even with its quoted texts cut short"
    )


def _water_fill(pieces: list[str], room: int, count_tokens: Callable[[str], int]) -> list[str]:
    sizes = [count_tokens(p) for p in pieces]
    out = list(pieces)
    left, todo = room, len(pieces)
    for i in sorted(range(len(pieces)), key=lambda j: sizes[j]):
        share = left // todo
        if sizes[i] > share:
            out[i] = truncate(pieces[i], share, count_tokens)
            left -= share
        else:
            left -= sizes[i]
        todo -= 1
    return out


def truncate(text: str, tokens: int, count_tokens: Callable[[str], int]) -> str:
    """`text` cut at the end (marked " [...]") to at most `tokens` tokens."""
    if count_tokens(text) <= tokens:
        return text
    size = count_tokens(text)
    cut = int(len(text) * tokens / max(1, size))
    while cut > 0:
        shorter = text[:cut].rstrip() + MARK
        if count_tokens(shorter) <= tokens:
            return shorter
        cut = int(cut * 0.85)
    return ""
