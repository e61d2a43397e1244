"""What a report says about one run, read from its run store and nothing else.

A finished run's figures (test scores, CIs, paired difference, majority-class rate,
predictions) are its recorded result, the same dict the terminal summary prints, so
the two never disagree. An interrupted run (or one still running) has no result: its
facts are what was recorded so far, and `partial` is True.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from promptascent.errors import ConfigError
from promptascent.evaluation.baseline import majority_rate
from promptascent.evaluation.result import EvaluationResult, ExampleResult, compare
from promptascent.evaluation.stats import PairedComparison
from promptascent.prompts.prompt import Prompt
from promptascent.search.splits import CV, DEV, FINAL, SUBSET, TEST
from promptascent.store.run_lock import current_status
from promptascent.store.run_store import EXAMPLES_KEY, RunStore

ENDED = ("finished", "budget", "stopped")
# The splits a candidate's score is shown on (lineage, score against length), in order
# of preference: the whole selection split first, the screening subset last.
SCORE_SPLITS = (DEV, FINAL, CV, SUBSET)
_PREFER_CONFIG = "prefer_config"  # preference/session.py CONFIG_KEY


@dataclass(frozen=True)
class CandidateFacts:
    """One candidate as the run store holds it: its prompt, lineage and scores per split
    (each {"mean", "ci_low", "ci_high", "n", "unparsed", "errors", "mean_loss"})."""

    id: str
    prompt: Prompt
    parents: tuple[str, ...]
    operation: str
    step: int
    note: str
    scores: dict[str, dict[str, Any]]

    @property
    def length(self) -> int:
        """Characters of what the prompt adds to each input: system text, instruction,
        demonstrations and output format (the report's measure of a prompt's cost)."""
        p = self.prompt
        demos = sum(len(str(d.input)) + len(d.output) for d in p.demos)
        return len(p.system or "") + len(p.instruction) + demos + len(p.output_format or "")

    def shown_score(self) -> tuple[str, float] | None:
        """The split and score the report shows for this candidate: the first of
        SCORE_SPLITS it was scored on, else any dev split it has (racing blocks,
        minibatches); None when it has no score on dev."""
        for split in (*SCORE_SPLITS, *sorted(self.scores)):
            if split not in self.scores or not split.startswith(("dev", CV)):
                continue
            mean = self.scores[split]["mean"]
            if mean is not None and math.isfinite(mean):
                return split, mean
        return None


@dataclass(frozen=True)
class ScorePoint:
    """One candidate evaluation during the run, in the order they happened, with what
    the run had spent by then (None in runs recorded before spending was stored)."""

    candidate_id: str
    split: str
    score: float
    n: int
    step: int
    task_calls: int | None
    calls: int | None
    dollars: float | None


@dataclass(frozen=True)
class ExampleRow:
    """One example under the seed prompt and the best prompt (None: not scored)."""

    example_id: str
    input: str | None
    expected: str | None
    seed: dict[str, Any] | None
    best: dict[str, Any] | None

    @property
    def differs(self) -> bool:
        """Whether the two prompts' outputs or scores differ on this example."""
        if self.seed is None or self.best is None:
            return self.seed is not self.best
        return (self.seed["output"], self.seed["score"]) != (
            self.best["output"],
            self.best["score"],
        )


@dataclass(frozen=True)
class Side:
    """The seed or the best prompt on the split the report compares them on."""

    candidate_id: str
    mean: float | None
    ci_low: float | None
    ci_high: float | None
    n: int
    unparsed: int
    errors: int
    predictions: dict[str, int]


@dataclass(frozen=True)
class RunFacts:
    run_id: str
    run_dir: Path
    status: str
    config: dict[str, Any]
    result: dict[str, Any] | None
    candidates: tuple[CandidateFacts, ...]
    seed_id: str
    best_id: str
    points: tuple[ScorePoint, ...]
    usage: dict[str, dict[str, float]]
    # The split seed and best are compared on: "test" for an ended run with a test
    # split, else the selection split they were both scored on (None: no such split).
    compared_on: str | None
    seed: Side | None
    best: Side | None
    difference: PairedComparison | None
    majority_rate: float | None
    examples: tuple[ExampleRow, ...]
    origin: dict[str, Any] | None = None
    elapsed_seconds: float | None = None
    notes: tuple[str, ...] = field(default=())

    @property
    def partial(self) -> bool:
        """The run has not ended (interrupted, failed, or still running): the report
        shows what was recorded so far."""
        return self.result is None

    @property
    def confidence(self) -> float:
        if self.result is not None:
            return float(self.result.get("confidence", 0.95))
        evaluation = self.config.get("task", {}).get("evaluation", {})
        return float(evaluation.get("confidence", 0.95))

    def candidate(self, candidate_id: str) -> CandidateFacts:
        return next(c for c in self.candidates if c.id == candidate_id)


def read_run(run_dir: Path) -> RunFacts:
    """Reads what a report shows from the run store in `run_dir`. ConfigError for a
    folder that holds no run (or only a preference run), StorageError for a damaged
    store (both one line, naming the folder or file)."""
    store = RunStore.open_existing(run_dir)
    try:
        config = store.get("config")
        if config is None:
            if store.get(_PREFER_CONFIG) is not None:
                raise ConfigError(
                    f"{run_dir}: a preference run has no report; `promptascent show` "
                    "prints its ranking"
                )
            raise ConfigError(f"{run_dir}: the run recorded no configuration (nothing to report)")
        rows = store.candidates()
        if not rows:
            raise ConfigError(f"{run_dir}: the run recorded no candidate yet (nothing to report)")
        status = current_status(run_dir, str(store.get("status") or "unknown"))
        result = store.get("result") if status in ENDED else None
        candidates = tuple(
            CandidateFacts(
                id=r["id"],
                prompt=Prompt.from_dict(r["prompt"]),
                parents=tuple(r["parents"]),
                operation=r["operation"],
                step=int(r["step"]),
                note=r["note"],
                scores=r["scores"],
            )
            for r in rows
        )
        events = store.events()
        seed_id = result["seed_candidate"] if result else _seed_of(candidates)
        best_id = result["best_candidate"] if result else _best_so_far(events, seed_id)
        compared_on = _compared_on(result, candidates, seed_id, best_id)
        seed_rows = store.evaluations(seed_id, compared_on) if compared_on else []
        best_rows = store.evaluations(best_id, compared_on) if compared_on else []
        recorded = (store.get(EXAMPLES_KEY) or {}).get(compared_on or "", [])
        usage = result["usage"] if result else store.usage()
        elapsed = store.get("elapsed_seconds")
        origin = store.get("origin")
    finally:
        store.close()
    steps = {c.id: c.step for c in candidates}
    seed_side, best_side, difference, majority = _sides(
        result, compared_on, seed_id, best_id, seed_rows, best_rows, recorded, config
    )
    return RunFacts(
        run_id=run_dir.name,
        run_dir=run_dir,
        status=status,
        config=config,
        result=result,
        candidates=candidates,
        seed_id=seed_id,
        best_id=best_id,
        points=_points(events, steps),
        usage=usage,
        compared_on=compared_on,
        seed=seed_side,
        best=best_side,
        difference=difference,
        majority_rate=majority,
        examples=_example_rows(recorded, seed_rows, best_rows),
        origin=origin,
        elapsed_seconds=None if elapsed is None else float(elapsed),
        notes=tuple(result.get("notes", ())) if result else (),
    )


def _seed_of(candidates: tuple[CandidateFacts, ...]) -> str:
    return next((c.id for c in candidates if c.operation == "seed"), candidates[0].id)


def _best_so_far(events: list[dict[str, Any]], seed_id: str) -> str:
    """The best candidate the optimizer had named when the run stopped (its last
    finished step), else the seed."""
    named = [e["best_candidate_id"] for e in events if e["kind"] == "StepFinished"]
    return named[-1] if named else seed_id


def _compared_on(
    result: dict[str, Any] | None,
    candidates: tuple[CandidateFacts, ...],
    seed_id: str,
    best_id: str,
) -> str | None:
    if result is not None and (result.get("test") or {}).get("seed"):
        return TEST
    scores = {c.id: c.scores for c in candidates}
    for split in (TEST, *SCORE_SPLITS):
        if split in scores.get(seed_id, {}) and split in scores.get(best_id, {}):
            return split
    return None


def _sides(
    result: dict[str, Any] | None,
    split: str | None,
    seed_id: str,
    best_id: str,
    seed_rows: list[dict[str, Any]],
    best_rows: list[dict[str, Any]],
    recorded: list[dict[str, Any]],
    config: dict[str, Any],
) -> tuple[Side | None, Side | None, PairedComparison | None, float | None]:
    """Seed and best on the compared split, their paired difference and the
    majority-class rate: an ended run's recorded figures; for a partial run, the same
    functions the runner uses, applied to the recorded per-example rows."""
    if split is None:
        return None, None, None, None
    if result is not None and split == TEST:
        test = result["test"]
        diff = test.get("difference")
        return (
            _side(seed_id, test["seed"]),
            _side(best_id, test["best"]),
            None if not diff else _comparison(diff),
            test.get("majority_rate"),
        )
    task = config.get("task", {})
    confidence = float(task.get("evaluation", {}).get("confidence", 0.95))
    seed_ev = _evaluation(seed_id, seed_rows)
    best_ev = _evaluation(best_id, best_rows)
    difference = compare(seed_ev, best_ev, seed=int(task.get("seed", 0)), confidence=confidence)
    targets = [r.get("target") for r in recorded]
    choices = [r.get("choices") for r in recorded]
    return (
        _side_of(seed_ev, confidence),
        _side_of(best_ev, confidence),
        difference if difference.n else None,
        majority_rate(targets, choices),
    )


def _side(candidate_id: str, ev: dict[str, Any]) -> Side:
    return Side(
        candidate_id=candidate_id,
        mean=ev["mean"],
        ci_low=ev["ci_low"],
        ci_high=ev["ci_high"],
        n=ev["n"],
        unparsed=ev["unparsed"],
        errors=ev["errors"],
        predictions=dict(ev.get("predictions") or {}),
    )


def _side_of(ev: EvaluationResult, confidence: float) -> Side:
    s = ev.summary(confidence)
    return _side(ev.prompt_id, {**s, "predictions": dict(ev.predictions().most_common(10))})


def _evaluation(candidate_id: str, rows: list[dict[str, Any]]) -> EvaluationResult:
    """The stored per-example rows as the EvaluationResult they were written from."""
    return EvaluationResult(
        candidate_id,
        tuple(
            ExampleResult(
                example_id=r["example_id"],
                output=r["output"],
                score=r["score"],
                parsed=bool(r["parsed"]),
                prediction=r["prediction"],
                error=r["error"],
                finish_reason=r["finish_reason"],
                loss=r["loss"],
                gold_prob=r["gold_prob"],
            )
            for r in rows
        ),
    )


def _comparison(diff: dict[str, Any]) -> PairedComparison:
    return PairedComparison(
        mean_diff=diff["mean"],
        low=diff["ci_low"],
        high=diff["ci_high"],
        n=diff["n"],
        wins=diff["wins"],
        losses=diff["losses"],
        ties=diff["ties"],
        p_value=diff["p_value"],
    )


def _points(events: list[dict[str, Any]], steps: dict[str, int]) -> tuple[ScorePoint, ...]:
    """Each candidate evaluation on a dev split, with the spending recorded right after
    it (the runner's BudgetSpent follows its CandidateEvaluated)."""
    points: list[ScorePoint] = []
    for i, e in enumerate(events):
        if e["kind"] != "CandidateEvaluated" or not str(e["split"]).startswith(("dev", CV)):
            continue
        score = e["score"]
        if score is None or not math.isfinite(score):
            continue
        after = events[i + 1] if i + 1 < len(events) else {}
        spent = after if after.get("kind") == "BudgetSpent" else {}
        points.append(
            ScorePoint(
                candidate_id=e["candidate_id"],
                split=e["split"],
                score=float(score),
                n=int(e["n"]),
                step=steps.get(e["candidate_id"], 0),
                task_calls=spent.get("task_calls"),
                calls=spent.get("calls"),
                dollars=spent.get("dollars"),
            )
        )
    return tuple(points)


def _example_rows(
    recorded: list[dict[str, Any]],
    seed_rows: list[dict[str, Any]],
    best_rows: list[dict[str, Any]],
) -> tuple[ExampleRow, ...]:
    """Seed and best per example, the examples where they differ first (then in the
    data's order). Inputs and expected answers come from the examples the run
    recorded; a run recorded before they were stored shows ids only."""
    seed = {r["example_id"]: r for r in seed_rows}
    best = {r["example_id"]: r for r in best_rows}
    known = {r["id"]: r for r in recorded}
    order = [r["id"] for r in recorded if r["id"] in seed or r["id"] in best]
    order += sorted((set(seed) | set(best)) - set(order))
    rows = [
        ExampleRow(
            example_id=i,
            input=known.get(i, {}).get("input"),
            expected=known.get(i, {}).get("target"),
            seed=seed.get(i),
            best=best.get(i),
        )
        for i in order
    ]
    return tuple(sorted(rows, key=lambda r: not r.differs))
