"""Candidates and the pool that holds them, with lineage.

The pool is the run's record of candidates: a new candidate and each evaluation enter
it through `propose` and `record`, which also emit the event the run store and the
progress display follow (the store reads the evaluation back from the pool)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from promptascent.evaluation.result import EvaluationResult
from promptascent.events import CandidateEvaluated, CandidateProposed, EventSink, ignore
from promptascent.prompts.prompt import Prompt


@dataclass
class Candidate:
    """A prompt the search produced: its parents, the operation that made it, the step,
    its evaluations per split (e.g. "dev-subset", "dev"), and an optional note."""

    prompt: Prompt
    parents: tuple[str, ...] = ()
    operation: str = "seed"
    step: int = 0
    evaluations: dict[str, EvaluationResult] = field(default_factory=dict)
    note: str = ""  # why it was made, e.g. the critique an edit answers

    @property
    def id(self) -> str:
        return self.prompt.id

    def score(self, split: str) -> float | None:
        """What selection compares on `split` (EvaluationResult.selection_mean: the
        metric's mean, or minus the mean loss when selecting by loss); None if unscored."""
        ev = self.evaluations.get(split)
        return ev.selection_mean if ev is not None and ev.n else None

    def loss(self, split: str) -> float | None:
        """Mean likelihood loss on `split` (None when not scored by likelihood)."""
        ev = self.evaluations.get(split)
        return ev.mean_loss if ev is not None else None

    def record(self) -> dict[str, Any]:
        """The candidate as the run store keeps it (plain data; its evaluations are
        stored one by one, EvaluationResult.record)."""
        return {
            "id": self.id,
            "prompt": self.prompt.to_dict(),
            "parents": list(self.parents),
            "operation": self.operation,
            "step": self.step,
            "note": self.note,
        }


class CandidatePool:
    """All candidates of a run by id. Adding a prompt that is already there returns the
    existing candidate (its first lineage is kept). `emit` receives the events of
    `propose` and `record`."""

    def __init__(
        self, penalty: Callable[[Prompt], float] | None = None, *, emit: EventSink = ignore
    ) -> None:
        # Ranking objective: score minus penalty(prompt) (search/objective.py), if set.
        self.penalty = penalty
        self.emit = emit
        self._by_id: dict[str, Candidate] = {}
        self._lock = threading.Lock()

    def add(self, candidate: Candidate) -> tuple[Candidate, bool]:
        """Returns (candidate in the pool, whether it is new)."""
        with self._lock:
            existing = self._by_id.get(candidate.id)
            if existing is not None:
                return existing, False
            self._by_id[candidate.id] = candidate
            return candidate, True

    def propose(self, candidate: Candidate) -> tuple[Candidate, bool]:
        """`add`, and a CandidateProposed event when the candidate is new."""
        candidate, new = self.add(candidate)
        if new:
            c = candidate
            self.emit(CandidateProposed(c.id, c.parents, c.operation, c.step))
        return candidate, new

    def record(self, candidate: Candidate, split: str, result: EvaluationResult) -> None:
        """Stores `result` as the candidate's evaluation on `split`, then emits its
        CandidateEvaluated event."""
        with self._lock:
            candidate.evaluations[split] = result
        r = result
        self.emit(CandidateEvaluated(candidate.id, split, r.mean, r.n, r.unparsed, r.errors))

    def __contains__(self, prompt_id: str) -> bool:
        return prompt_id in self._by_id

    def __len__(self) -> int:
        return len(self._by_id)

    def get(self, prompt_id: str) -> Candidate:
        return self._by_id[prompt_id]

    def all(self) -> list[Candidate]:
        return list(self._by_id.values())

    def objective(
        self, candidate: Candidate, split: str, extra: Callable[[Prompt], float] | None = None
    ) -> float | None:
        """The candidate's score on `split` less its length penalty (if the pool has one)
        and less `extra` (an optimizer's own penalty, e.g. CAPO's), if given."""
        score = candidate.score(split)
        if score is None:
            return None
        if self.penalty is not None:
            score -= self.penalty(candidate.prompt)
        return score if extra is None else score - extra(candidate.prompt)

    def ranked(self, split: str, extra: Callable[[Prompt], float] | None = None) -> list[Candidate]:
        """Candidates scored on `split`, best objective first (`extra`: see
        `objective`). At an equal objective the lower likelihood loss wins (when scored
        by likelihood); remaining ties keep insertion order (earlier, usually simpler,
        candidates win)."""
        values = {c.id: self.objective(c, split, extra) for c in self._by_id.values()}
        scored = [c for c in self._by_id.values() if values[c.id] is not None]

        def key(c: Candidate) -> tuple[float, float]:
            loss = c.loss(split)
            return (-(values[c.id] or 0.0), loss if loss is not None else 0.0)

        return sorted(scored, key=key)

    def best(self, split: str, extra: Callable[[Prompt], float] | None = None) -> Candidate | None:
        """The first of `ranked`: the run's objective on `split`."""
        ranked = self.ranked(split, extra)
        return ranked[0] if ranked else None
