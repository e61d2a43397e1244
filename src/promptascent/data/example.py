"""Examples and datasets: pure values."""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Example:
    """One task instance.

    `input` is text, or a mapping of named fields for templates like "{question}".
    `target` is the expected answer (None for unlabelled samples); `also_accept` lists
    other answers that count as correct; `choices` is the set of valid answers for
    multiple choice.
    """

    id: str
    input: str | dict[str, str]
    target: str | None = None
    choices: tuple[str, ...] | None = None
    also_accept: tuple[str, ...] = ()
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def fields(self) -> dict[str, str]:
        """The template fields: named fields, or {"input": text}."""
        if isinstance(self.input, dict):
            return dict(self.input)
        return {"input": self.input}

    @property
    def input_text(self) -> str:
        if isinstance(self.input, dict):
            return "\n".join(f"{k}: {v}" for k, v in self.input.items())
        return self.input

    @property
    def targets(self) -> tuple[str, ...]:
        """Every accepted answer: the target, then also_accept."""
        if self.target is None:
            return self.also_accept
        return (self.target, *self.also_accept)

    @property
    def content_id(self) -> str:
        """Hash of what the model sees and what is scored: changes when the data does."""
        blob = json.dumps(
            [self.id, self.input, self.target, self.choices, self.also_accept],
            sort_keys=True,
            ensure_ascii=False,
        )
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class Dataset:
    """An ordered, named collection of examples with unique ids. `notes` say what
    loading changed in the data (control characters removed), for the run's notes."""

    name: str
    examples: tuple[Example, ...]
    notes: tuple[str, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for ex in self.examples:
            if ex.id in seen:
                from promptascent.errors import DataError

                raise DataError(f"{self.name}: duplicate example id {ex.id!r}")
            seen.add(ex.id)

    def __len__(self) -> int:
        return len(self.examples)

    def __iter__(self) -> Iterator[Example]:
        return iter(self.examples)

    def __getitem__(self, i: int) -> Example:
        return self.examples[i]

    def sample(self, n: int, rng: random.Random) -> list[Example]:
        """n examples without replacement (all of them, shuffled, if n >= len)."""
        return rng.sample(list(self.examples), min(n, len(self.examples)))

    def head(self, n: int) -> Dataset:
        return Dataset(self.name, self.examples[:n])

    def subset(self, ids: Sequence[str]) -> Dataset:
        by_id = {ex.id: ex for ex in self.examples}
        return Dataset(self.name, tuple(by_id[i] for i in ids))

    @property
    def labelled(self) -> bool:
        return all(ex.target is not None for ex in self.examples)
