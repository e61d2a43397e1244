"""The screen-then-select scaffold: the search shape most optimizers share.

1. **The seed first**: it is scored on `eval_examples` dev examples drawn once (the
   subset every candidate is screened on, so their scores are paired). If the budget
   ends later, it is the fallback winner.
2. **Explore** (the method's own part, `explore`): propose candidates and screen them
   on the subset. Before each step it asks whether the budget pays for the step beside
   the final selection (`has_room`, `need`, `screen`); a step it cannot pay ends the
   exploration with `NoRoom`, a clean stop the run reports as a budget stop.
3. **Select**: the seed and the best others on the subset (by the run's objective)
   are the finalists, scored on dev as the budget allows (Optimizer.select_final);
   `choose_winner` picks the winner.

A new method subclasses `ScreenThenSelect`, takes `ScreeningOptions` (and
`SamplingOptions` when it asks the optimizer model) in its config, and writes
`explore` and `estimate`.
"""

from __future__ import annotations

from abc import abstractmethod

from promptascent.data.example import Example
from promptascent.events import StepFinished
from promptascent.optimizers.base import Optimizer, OptimizerContext
from promptascent.optimizers.options import ScreeningOptions
from promptascent.search.pool import Candidate
from promptascent.search.splits import SUBSET

KEPT_FOR_FINAL = "the budget left is kept for the final selection on dev"


class NoRoom(Exception):
    """The budget left only pays for the final selection: exploring stops here."""

    def __init__(self, reason: str = KEPT_FOR_FINAL) -> None:
        super().__init__(reason)
        self.reason = reason


class ScreenThenSelect(Optimizer):
    """Seed first, screen on the subset, select finalists on dev (module docstring)."""

    config: ScreeningOptions

    def search(self, ctx: OptimizerContext) -> None:
        self.prepare(ctx)
        subset = ctx.dev.sample(self.subset_size(ctx), ctx.rng)
        self.evaluate(ctx, ctx.pool.get(ctx.seed_prompt.id), subset, SUBSET)
        try:
            self.explore(ctx, subset)
        except NoRoom as stop:
            self.stop_early(ctx, stop.reason)
        self.select_final(
            ctx,
            ctx.pool.ranked(SUBSET),
            others=self.final_others(),
            screened=subset,
            keep=self.kept(ctx),
        )

    def prepare(self, ctx: OptimizerContext) -> None:
        """Set-up before the subset is drawn (default: none)."""

    def subset_size(self, ctx: OptimizerContext) -> int:
        """Dev examples in the subset (default: `eval_examples`); fixed for the run."""
        return self.config.eval_examples

    @abstractmethod
    def explore(self, ctx: OptimizerContext, subset: list[Example]) -> None:
        """Proposes candidates and screens them on `subset` (split SUBSET); may raise
        NoRoom to stop for the final selection."""

    # The finalists: the seed, `kept`, and the `final_others` best on the subset.

    def final_others(self) -> int:
        """Finalists besides the seed (and `kept`): `final_k` counts the seed."""
        return self.config.final_k - 1

    def kept(self, ctx: OptimizerContext) -> tuple[Candidate, ...]:
        """Candidates that are always finalists besides the seed (default: none)."""
        return ()

    def planned_finalists(self, ctx: OptimizerContext) -> int:
        """How many finalists the budget is kept for (default: `final_k`)."""
        return self.config.final_k

    def final_cost(self, ctx: OptimizerContext) -> int:
        """Task calls the full final selection on dev would take: each planned
        finalist on the dev examples beyond the screened subset (Optimizer.evaluate
        reuses those). The search keeps `final_reserve` of it."""
        screened = min(self.subset_size(ctx), len(ctx.dev))
        return self.planned_finalists(ctx) * max(0, len(ctx.dev) - screened)

    # The budget question, with the final selection kept.

    def has_room(self, ctx: OptimizerContext, *, task: int = 0, optimizer: int = 0) -> bool:
        """Whether the budget pays for `task` task and `optimizer` optimizer calls now,
        and the final selection after them."""
        return self.affords(ctx, task=task, optimizer=optimizer, final=self.final_cost(ctx))

    def need(
        self,
        ctx: OptimizerContext,
        *,
        task: int = 0,
        optimizer: int = 0,
        reason: str = KEPT_FOR_FINAL,
    ) -> None:
        """`has_room`, or NoRoom(reason): without the final selection, a run that ends on
        its budget has scored nothing on dev and can only return the seed."""
        if not self.has_room(ctx, task=task, optimizer=optimizer):
            raise NoRoom(reason)

    def screen(
        self,
        ctx: OptimizerContext,
        candidates: list[Candidate],
        subset: list[Example],
        *,
        step: int,
        reason: str = KEPT_FOR_FINAL,
    ) -> None:
        """Scores each candidate on the subset while the budget pays for it beside the
        final selection, then reports the step's leader; NoRoom(reason) after that if
        it stopped for lack of room."""
        stopped = False
        for cand in candidates:
            if not self.has_room(ctx, task=len(subset)):
                stopped = True
                break
            self.evaluate(ctx, cand, subset, SUBSET)
        self.step_finished(ctx, step)
        if stopped:
            raise NoRoom(reason)

    def step_finished(self, ctx: OptimizerContext, step: int) -> None:
        """A StepFinished event naming the best candidate on the subset so far."""
        best = ctx.pool.best(SUBSET)
        if best is not None:
            ctx.emit(StepFinished(step, best.id, best.score(SUBSET) or 0.0))
