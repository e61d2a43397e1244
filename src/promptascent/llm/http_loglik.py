"""Scoring continuations over OpenAI-compatible HTTP: request bodies and reply parsing.

Two ways, chosen per model (`loglik:` in its spec):

- "echo" (llama.cpp's server, vLLM): the completions endpoint with `echo` returns the
  log-probability of every prompt token. The chat is rendered to text with the
  model's chat template (llm/chat_template.py), each continuation is appended and
  sent as its own request (`max_tokens` 1: servers differ on 0), and the
  continuation's tokens are found at the end of the echoed prompt by their text.
- "first-token" (chat APIs that give only the top log-probabilities of the generated
  token, such as OpenAI's): one chat request generating one token with its top 20
  alternatives; each choice is scored by the listed token it begins with. An
  approximation (the rest of a choice is not scored), marked as such; two choices
  that begin with the same token cannot be told apart and are an error.

Replies are untrusted: anything that does not have the expected shape is a
ModelResponseError naming what was missing.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

from promptascent.errors import ModelRequestError, ModelResponseError

TOP_LOGPROBS = 20
LOGLIK_MODES = ("none", "echo", "first-token")


def echo_body(model: str, text: str) -> dict[str, Any]:
    return {
        "model": model,
        "prompt": text,
        "max_tokens": 1,
        "temperature": 0,
        "echo": True,
        "logprobs": 1,
    }


def parse_echo(data: Any, continuation: str, where: str) -> tuple[float, int]:
    """(sum of the continuation's token log-probabilities, its token count) from an
    echo reply. The continuation's tokens are the
    last echoed prompt tokens whose text adds up to exactly `continuation`; the tokens
    the server generated after it (`usage.completion_tokens`, or 0 or 1) are skipped."""
    choice = _first(data, where)
    lp = choice.get("logprobs")
    tokens = lp.get("tokens") if isinstance(lp, dict) else None
    values = lp.get("token_logprobs") if isinstance(lp, dict) else None
    if not isinstance(tokens, list) or not isinstance(values, list) or len(tokens) != len(values):
        raise _final(
            f"{where}: HTTP 200 but no echoed prompt log-probabilities (does the server "
            "support `echo` on its completions endpoint?)"
        )
    usage = data.get("usage") if isinstance(data, dict) else None
    generated = usage.get("completion_tokens") if isinstance(usage, dict) else None
    tries = [generated] if isinstance(generated, int) and 0 <= generated <= 1 else []
    for skip, spelled in [(k, f) for k in [*tries, 1, 0] for f in (False, True)]:
        end = len(tokens) - skip
        pieces = [_respell(t) if spelled else t for t in tokens[:end]]
        found = _suffix_matching(pieces, continuation)
        if found is not None:
            picked = values[end - found : end]
            if not all(isinstance(v, int | float) and math.isfinite(v) for v in picked):
                raise ModelResponseError(
                    f"{where}: HTTP 200 but a continuation token has no log-probability"
                )
            return float(sum(picked)), found
    raise _final(
        f"{where}: HTTP 200 but the echoed tokens do not end with the continuation "
        f"{continuation!r} (the tokenizer may merge it with the prompt's last token)"
    )


def _final(message: str) -> ModelResponseError:
    """An unusable reply that asking again would not change: not retried."""
    error = ModelResponseError(message)
    error.retryable = False
    return error


# Raw byte-level BPE and SentencePiece spellings of a space, a line break and a tab, as
# servers that echo unconverted tokens (older vLLM) write them.
_RESPELL = str.maketrans({"Ġ": " ", "▁": " ", "Ċ": "\n", "ĉ": "\t"})


def _respell(token: Any) -> Any:
    return token.translate(_RESPELL) if isinstance(token, str) else token


def _suffix_matching(tokens: Sequence[Any], text: str) -> int | None:
    """How many of the last `tokens` spell exactly `text`, or None."""
    if not text:
        return 0
    joined = ""
    for n in range(1, len(tokens) + 1):
        piece = tokens[-n]
        if not isinstance(piece, str):
            return None
        joined = piece + joined
        if joined == text:
            return n
        if len(joined) >= len(text) or not text.endswith(joined):
            return None
    return None


def first_token_body(model: str, messages: list[dict[str, str]]) -> dict[str, Any]:
    return {
        "model": model,
        "messages": messages,
        "max_tokens": 1,
        "temperature": 0,
        "logprobs": True,
        "top_logprobs": TOP_LOGPROBS,
    }


def parse_first_token(data: Any, choices: Sequence[str], where: str) -> tuple[list[float], bool]:
    """Each choice's log-probability as the token it begins with among the reply's top
    alternatives, and whether some choice was not among them (it then gets the lowest
    listed log-probability: an upper bound). ModelRequestError when two choices begin
    with the same listed token."""
    choice = _first(data, where)
    lp = choice.get("logprobs")
    content = lp.get("content") if isinstance(lp, dict) else None
    first = content[0] if isinstance(content, list) and content else None
    top = first.get("top_logprobs") if isinstance(first, dict) else None
    if not isinstance(top, list) or not top:
        raise ModelResponseError(f"{where}: HTTP 200 but no top log-probabilities")
    listed: list[tuple[str, float]] = []
    for entry in top:
        token = entry.get("token") if isinstance(entry, dict) else None
        value = entry.get("logprob") if isinstance(entry, dict) else None
        if isinstance(token, str) and isinstance(value, int | float) and math.isfinite(value):
            listed.append((token, float(value)))
    if not listed:
        raise ModelResponseError(f"{where}: HTTP 200 but no usable top log-probabilities")
    floor = min(v for _, v in listed)
    out: list[float] = []
    owner: dict[str, str] = {}
    missing = False
    for text in choices:
        match = max(
            ((t, v) for t, v in listed if t.strip() and text.startswith(t.lstrip())),
            key=lambda tv: len(tv[0].lstrip()),
            default=None,
        )
        if match is None:
            out.append(floor)
            missing = True
            continue
        if match[0] in owner:
            raise ModelRequestError(
                f"{where}: first-token scoring cannot tell apart the choices "
                f"{owner[match[0]]!r} and {text!r}: both begin with the token {match[0]!r}"
            )
        owner[match[0]] = text
        out.append(match[1])
    return out, missing


_FIRST_PIECE = re.compile(r"\s*(\w+|[^\w\s])")


def shared_first_piece(choices: Sequence[str]) -> tuple[str, str] | None:
    """Two choices that begin with the same word or sign (so, most likely, with the
    same token), or None: first-token scoring cannot tell them apart."""
    seen: dict[str, str] = {}
    for text in choices:
        m = _FIRST_PIECE.match(text)
        piece = m.group(1).lower() if m else text
        if piece in seen:
            return seen[piece], text
        seen[piece] = text
    return None


def _first(data: Any, where: str) -> dict[str, Any]:
    choices = data.get("choices") if isinstance(data, dict) else None
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise ModelResponseError(f"{where}: HTTP 200 but no choices")
    return choices[0]
