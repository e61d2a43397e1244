"""Choosing how a run scores outputs (`evaluation.scoring`), before anything is spent.

"generate" always works. "likelihood" needs a task model that scores continuations and
examples whose target is one of their choices; when either is missing it is an error
naming what is missing, raised at plan time (so `--dry-run` shows it), never mid-run.
"auto" takes likelihood where both hold and says why it did not otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from promptascent.data.example import Dataset
from promptascent.errors import ConfigError, MetricError
from promptascent.evaluation.likelihood import (
    Calibration,
    LikelihoodScoring,
    Normalization,
    gold_index,
)
from promptascent.evaluation.result import SelectBy
from promptascent.llm.base import ModelInfo

SCORINGS = ("generate", "likelihood", "auto")


@dataclass(frozen=True)
class ScoringChoice:
    """The scoring a run uses: `likelihood` None means generation. `note` says why
    "auto" chose what it chose (empty otherwise)."""

    likelihood: LikelihoodScoring | None
    select_by: SelectBy
    note: str = ""

    def describe(self) -> str:
        if self.likelihood is None:
            return "generate"
        tie = "; the lower loss breaks ties" if self.select_by == "accuracy" else ""
        return f"{self.likelihood.describe()}, selected by {self.select_by}{tie}"


def resolve_scoring(
    scoring: str,
    *,
    normalize: Normalization,
    calibration: Calibration,
    select_by: SelectBy,
    task_model: ModelInfo,
    splits: Sequence[Dataset | None],
) -> ScoringChoice:
    """The scoring for `scoring` ("generate", "likelihood", "auto") on this task model
    and these splits (every example that will be scored). ConfigError when "likelihood"
    cannot work, or a likelihood option is set while generating."""
    if scoring == "generate":
        if select_by == "loss":
            raise ConfigError(
                "evaluation.select_by: loss needs evaluation.scoring: likelihood "
                "(generated answers have no loss)"
            )
        return ScoringChoice(None, "accuracy")
    problem = _why_not(task_model, splits)
    if problem is not None:
        if scoring == "likelihood":
            raise ConfigError(f"evaluation.scoring: likelihood: {problem}")
        if select_by == "loss":
            raise ConfigError(f"evaluation.select_by: loss: scoring auto chose generate: {problem}")
        return ScoringChoice(None, "accuracy", note=f"scoring auto chose generate: {problem}")
    return ScoringChoice(
        LikelihoodScoring(normalize=normalize, calibration=calibration),
        select_by,
        note="scoring auto chose likelihood" if scoring == "auto" else "",
    )


def _why_not(task_model: ModelInfo, splits: Sequence[Dataset | None]) -> str | None:
    if not task_model.supports_loglik:
        return (
            f"the task model {task_model.model_id} cannot score continuations "
            "(the embedded model can; see docs/likelihood.md for HTTP servers)"
        )
    for split in splits:
        if split is None:
            continue
        for ex in split:
            try:
                gold_index(ex)
            except MetricError as e:
                return f"{split.name} split: {str(e).removeprefix('likelihood scoring: ')}"
    return None
