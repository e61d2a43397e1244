"""Text normalisation and boundary-aware phrase search shared by the metrics."""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

# Quote-like characters that Unicode does not class as punctuation.
_EXTRA_QUOTES = frozenset("`´")
# A leading sign or decimal point that belongs to a number ("-5", ".5") is kept.
_NUMBER_LEAD = re.compile(r"[-+.]\d")


def is_punctuation(ch: str) -> bool:
    """True for Unicode punctuation (categories P*) and quote-like marks."""
    return unicodedata.category(ch).startswith("P") or ch in _EXTRA_QUOTES


def fold(text: str) -> str:
    """NFKC and casefold, repeated until stable (so the result is a fixed point)."""
    for _ in range(4):
        folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())
        if folded == text:
            break
        text = folded
    return text


def normalize_text(text: str) -> str:
    """The canonical form used for comparing answers.

    NFKC, casefold, whitespace runs collapsed to one space, and punctuation or quotes
    stripped from both ends ("'Paris.'" -> "paris"), except a sign or decimal point that
    starts a number ("-5" stays "-5"). Inner punctuation and articles are kept.
    Idempotent: normalize_text(normalize_text(x)) == normalize_text(x).
    """
    text = fold(text)
    while True:
        stripped = _strip_edges(" ".join(text.split()))
        if stripped == text:
            return text
        text = stripped


def _strip_edges(text: str) -> str:
    start, end = 0, len(text)
    while start < end and (text[start].isspace() or is_punctuation(text[start])):
        if _NUMBER_LEAD.match(text, start):
            break
        start += 1
    while end > start and (text[end - 1].isspace() or is_punctuation(text[end - 1])):
        end -= 1
    return text[start:end]


def tokens(text: str) -> list[str]:
    """Normalised words with punctuation removed ("It's, ok." -> ["its", "ok"])."""
    cleaned = "".join(" " if ch == "_" else ch for ch in normalize_text(text))
    cleaned = "".join(ch for ch in cleaned if not is_punctuation(ch))
    return cleaned.split()


def match_form(text: str) -> str:
    """The form searched by phrase matching: folded, with "_" read as a space."""
    return fold(text).replace("_", " ")


@lru_cache(maxsize=4096)
def phrase_pattern(phrase: str) -> re.Pattern[str] | None:
    """A regex finding `phrase` in match_form text as a whole word or phrase.

    `phrase` is put in match_form; its words may be separated by any whitespace. A match
    may not be preceded or followed by a letter or digit, so "plausible" is not found
    in "implausible" and "(a)" is found in "answer: (a)". None for a blank phrase.
    """
    words = match_form(phrase).split()
    if not words:
        return None
    body = r"\s+".join(re.escape(w) for w in words)
    return re.compile(rf"(?<!\w){body}(?!\w)")


def find_phrase(phrase: str, text: str) -> re.Match[str] | None:
    """The first whole-word match of `phrase` in `text` (already in match_form)."""
    pattern = phrase_pattern(phrase)
    return pattern.search(text) if pattern is not None else None
