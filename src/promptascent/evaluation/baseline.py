"""The constant baseline beside every accuracy: what a prompt that taught the model only
the answer format, not the task, could score by always giving the same answer.

With one set of answers for every example (a label set: yes/no, seven intents), the
constant is the most common expected answer: the majority class. Where the choices
vary from one example to the next (BIG-bench's `Options:` lists: every arithmetic
question has its own numbers), the most common answer is no baseline (it is right once
in a hundred); the constant there is a position in the listed choices: always the
choice at the position where the answer most often stands, as a model that always
copies the first option would be."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from promptascent.metrics.builtin import same_choice


@dataclass(frozen=True)
class Baseline:
    """The constant answer (a target, or `option K` for a position) and its score on
    each example, in the order given (1.0 where it is right)."""

    answer: str
    scores: tuple[float, ...]

    @property
    def rate(self) -> float:
        return sum(self.scores) / len(self.scores)


def majority_baseline(
    targets: Sequence[str | None], choices: Sequence[Sequence[str] | None] | None = None
) -> Baseline | None:
    """The best constant answer on these examples. None without examples, or when some
    example has no target. `choices`, one entry per example, decides which constant:
    when every example has choices and they are not all the same set, a position (the
    most common position of the answer, the first such on a tie); otherwise the most
    common target (the first seen on a tie)."""
    if not targets or any(t is None for t in targets):
        return None
    if choices is not None and _varying(choices):
        positions = [_position(t, c) for t, c in zip(targets, choices, strict=True)]
        counts = Counter(p for p in positions if p is not None)
        if counts:
            best = max(counts, key=lambda i: (counts[i], -i))
            return Baseline(
                f"option {best + 1}", tuple(1.0 if p == best else 0.0 for p in positions)
            )
    majority = Counter(targets).most_common(1)[0][0]
    return Baseline(str(majority), tuple(1.0 if t == majority else 0.0 for t in targets))


def majority_rate(
    targets: Sequence[str | None], choices: Sequence[Sequence[str] | None] | None = None
) -> float | None:
    """The score of always giving the constant answer of `majority_baseline`: the
    majority-class rate with a label set, the most common position's rate where the
    choices vary between examples."""
    baseline = majority_baseline(targets, choices)
    return None if baseline is None else baseline.rate


def _varying(choices: Sequence[Sequence[str] | None]) -> bool:
    """Whether every example has choices and they are not all one set."""
    if not choices or any(not c for c in choices):
        return False
    return len({frozenset(c or ()) for c in choices}) > 1


def _position(target: str | None, choices: Sequence[str] | None) -> int | None:
    """Where the target stands among the choices (None when it is not one of them)."""
    return next((i for i, c in enumerate(choices or ()) if same_choice(c, target or "")), None)
