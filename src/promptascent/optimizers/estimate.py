"""What a search would spend at most, as its optimizer plans it (for --dry-run)."""

from __future__ import annotations

from dataclasses import dataclass, fields

# The keys of the dict this replaced, for callers that still read it that way.
_KEYS = {"task": "task_calls", "optimizer": "optimizer_calls", "judge": "judge_calls"}


@dataclass(frozen=True)
class SearchEstimate:
    """Upper bounds of one search's work: calls per model role, and per call of the
    optimizer (and judge) model its prompt tokens and reply limit. The test split's
    scoring after the search is not part of it (runner.estimate adds it)."""

    task_calls: int = 0
    optimizer_calls: int = 0
    optimizer_prompt_tokens: int = 0
    optimizer_max_tokens: int = 0
    judge_calls: int = 0
    judge_prompt_tokens: int = 0
    judge_max_tokens: int = 0
    # The most demonstrations a candidate of this search carries (its task calls are
    # priced with that many train examples as demos when the seed has fewer).
    max_demos: int = 0

    def __getitem__(self, key: str) -> int:
        """`estimate["task"]` is `estimate.task_calls` (the names of the former dict)."""
        name = _KEYS.get(key, key)
        if name not in {f.name for f in fields(self)}:
            raise KeyError(key)
        value: int = getattr(self, name)
        return value
