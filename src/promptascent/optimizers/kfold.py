"""k-fold selection for small data (`evaluation.folds: k`).

With few labelled examples a fixed train/dev split wastes half of them on each role,
and a dev split of a dozen examples picks a winner by noise. With k folds the train
and dev examples are pooled and cut into k folds; the optimizer searches k times, each
time proposing from k-1 folds and selecting on the one left out, with 1/k of the
budget left after the final selection is paid for. The k fold winners and the seed
are then scored on every pooled example (split "cv"), where each winner has been in
the proposing role on some examples and the selecting role on the others, as every
other winner was; the best there wins. The test split still only reports.

Inside fold i a candidate's evaluations are those of a fold-local pool; the run's pool
and store get them as "fold{i}/<split>" (e.g. "fold2/dev"), so nothing a fold
measured is lost or mixed with another fold's split of the same name.
"""

from __future__ import annotations

import dataclasses
import random

from promptascent.data.example import Dataset, Example
from promptascent.events import CandidateEvaluated, CandidateProposed, Event, PhaseStarted
from promptascent.llm.budget import BudgetGuard
from promptascent.optimizers.base import Optimizer, OptimizerContext, OptimizerOutcome
from promptascent.optimizers.estimate import SearchEstimate
from promptascent.search.pool import Candidate, CandidatePool
from promptascent.search.splits import CV, in_fold


def make_folds(examples: list[Example], k: int, rng: random.Random) -> list[list[Example]]:
    """`examples` shuffled and dealt into k folds of near-equal size."""
    shuffled = list(examples)
    rng.shuffle(shuffled)
    return [shuffled[i::k] for i in range(k)]


class KFoldSelection(Optimizer):
    """Runs `inner`'s search once per fold and selects among the fold winners on all
    pooled examples (the winner by the run's objective, `choose_winner`, on "cv"). It
    records the run under the inner optimizer's name and options."""

    screening_split = None  # no common screening: the fold winners meet only on "cv"

    def __init__(self, inner: Optimizer, folds: int) -> None:
        if folds < 2:
            raise ValueError("k-fold selection needs at least 2 folds")
        super().__init__(inner.config)
        self.inner = inner
        self.folds = folds
        self.name = inner.name  # type: ignore[misc]
        self.Config = inner.Config  # type: ignore[misc]

    def selection_split(self) -> str:
        return CV

    def estimate(self, train_size: int, dev_size: int, example_tokens: int) -> SearchEstimate:
        n, k = train_size + dev_size, self.folds
        one = self.inner.estimate(n - n // k, max(1, n // k), example_tokens)
        return dataclasses.replace(
            one,
            task_calls=k * one.task_calls + (k + 1) * n,
            optimizer_calls=k * one.optimizer_calls,
        )

    def search(self, ctx: OptimizerContext) -> None:
        pooled = [*ctx.train, *ctx.dev]
        k = self.folds
        folds = make_folds(pooled, k, ctx.rng)
        winners: list[tuple[int, Candidate, str]] = []  # fold, winner, its selection split
        for i in range(k):
            # Each fold's share of what is left once the final selection is paid for.
            guard = ctx.guard.share(k - i, keep=(k + 1) * len(pooled))
            if guard is None:
                self.stop_early(ctx, f"fold {i + 1} not started: no budget left beside the final")
                break
            ctx.emit(PhaseStarted(f"fold {i + 1}/{k}"))
            held_out = folds[i]
            rest = [ex for j, fold in enumerate(folds) if j != i for ex in fold]
            outcome = self._run_fold(ctx, i + 1, rest, held_out, guard)
            winners.append((i + 1, ctx.pool.get(outcome.best.id), outcome.selection_split))
            if outcome.stopped_by and "unavailable" in outcome.stopped_by:
                self.stopped_early = outcome.stopped_by  # the next fold would fail too
                break
        ctx.emit(PhaseStarted(CV, (len(winners) + 1) * len(pooled)))
        seed = ctx.pool.get(ctx.seed_prompt.id)
        for fold, cand, split in winners:
            held = cand.score(in_fold(fold, split))
            mark = f"winner of fold {fold}"
            if held is not None:
                mark += f" (held-out fold: {held:.3f})"
            cand.note = f"{cand.note}; {mark}" if cand.note else mark
        # The seed first: if the budget ends mid-way, it is the fallback winner.
        for cand in [seed, *(c for _, c, _ in winners if c is not seed)]:
            self.evaluate(ctx, cand, pooled, CV)

    def _run_fold(
        self,
        ctx: OptimizerContext,
        fold: int,
        train: list[Example],
        dev: list[Example],
        guard: BudgetGuard,
    ) -> OptimizerOutcome:
        events = _FoldEvents(fold, ctx)
        events.pool.add(Candidate(ctx.seed_prompt, operation="seed"))
        sub = dataclasses.replace(
            ctx,
            train=Dataset(f"train (fold {fold})", tuple(train)),
            dev=Dataset(f"dev (fold {fold})", tuple(dev)),
            evaluator=ctx.evaluator.with_guard(guard),
            optimizer_model=ctx.optimizer_model.with_guard(guard),
            judge_model=ctx.judge_model.with_guard(guard) if ctx.judge_model else None,
            rng=random.Random(ctx.rng.randrange(2**31)),
            guard=guard,
            emit=events,
            pool=events.pool,
        )
        inner = type(self.inner)(self.inner.config)
        outcome = inner.optimize(sub)
        self.rejected += inner.rejected
        return outcome


class _FoldEvents:
    """The fold's pool and event sink: forwards a fold's events to the run; its new
    candidates join the run's pool, its evaluations are recorded there under
    "fold{i}/<split>"."""

    def __init__(self, fold: int, ctx: OptimizerContext) -> None:
        self.fold = fold
        self.ctx = ctx
        self.pool = CandidatePool(ctx.pool.penalty, emit=self)

    def __call__(self, event: Event) -> None:
        if isinstance(event, CandidateProposed):
            c = self.pool.get(event.candidate_id)
            # Proposed by an earlier fold (or the seed): recorded already.
            self.ctx.pool.propose(Candidate(c.prompt, c.parents, c.operation, c.step, note=c.note))
        elif isinstance(event, CandidateEvaluated):
            result = self.pool.get(event.candidate_id).evaluations[event.split]
            target = self.ctx.pool.get(event.candidate_id)
            self.ctx.pool.record(target, in_fold(self.fold, event.split), result)
        else:
            self.ctx.emit(event)
