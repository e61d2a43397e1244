"""What every optimizer gets (OptimizerContext) and returns (OptimizerOutcome), and the
base class they share: the template method `optimize`, the one winner rule
(`choose_winner`), the one budget question (`affords`), the final selection sized to
the budget (`select_final`), and the helpers every search uses (propose, evaluate,
reject). Most optimizers build on its screen-then-select form (screening.py)."""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from typing import ClassVar

from promptascent.data.example import Dataset, Example
from promptascent.errors import BudgetExhausted, ModelError, ModelUnavailable
from promptascent.evaluation.evaluator import Evaluator
from promptascent.evaluation.result import EvaluationResult, ExampleResult
from promptascent.events import BudgetStopped, EventSink, PhaseStarted, ReplyRejected, SearchStopped
from promptascent.llm.budget import BudgetGuard, Shortfall
from promptascent.llm.client import ModelClient
from promptascent.llm.types import CompletionRequest, Message
from promptascent.metrics.judge import JudgeStats
from promptascent.optimizers.estimate import SearchEstimate
from promptascent.optimizers.options import OptimizerConfig, SamplingOptions
from promptascent.optimizers.parsing import Parsed, parse_instruction
from promptascent.prompts.constraints import Constraints
from promptascent.prompts.prompt import Prompt
from promptascent.search.final import plan_final
from promptascent.search.pool import Candidate, CandidatePool
from promptascent.search.splits import DEV, FINAL, SUBSET

__all__ = ["FINAL_SHARE", "Optimizer", "OptimizerConfig", "OptimizerContext", "OptimizerOutcome"]

# The search keeps for the final selection what it would cost, but at most this share
# of the task calls the optimizer started with: the rest is for searching. (At 100
# task calls, a final on a whole dev split of 50-60 examples took everything, and the
# search never started.)
FINAL_SHARE = 1 / 3


@dataclass
class OptimizerContext:
    """Everything an optimizer may use. It proposes from `train`, selects on `dev`;
    the test split is not here: it is only for the final report."""

    seed_prompt: Prompt
    train: Dataset
    dev: Dataset
    evaluator: Evaluator
    optimizer_model: ModelClient
    judge_model: ModelClient | None
    rng: random.Random
    guard: BudgetGuard
    emit: EventSink
    pool: CandidatePool
    task_description: str = ""
    constraints: Constraints = field(default_factory=Constraints)
    requirements: str = ""  # what a good output is, in words (the task's `requirements`)
    judge_stats: JudgeStats = field(default_factory=JudgeStats)  # every judge of the run


@dataclass(frozen=True)
class OptimizerOutcome:
    best: Candidate
    selection_split: str
    stopped_by: str | None  # the budget limit that ended the search, if one did
    rejected_replies: int
    # True when no final selection ran (the budget only allowed screening): the winner
    # was chosen on the screening scores, on fewer dev examples.
    screening_only: bool = False


def load_template(name: str) -> str:
    """A meta-prompt template from optimizers/templates/."""
    return (resources.files("promptascent.optimizers") / "templates" / name).read_text("utf-8")


class Optimizer(ABC):
    """Template method: `optimize` runs `search`, turns running out of budget into a
    clean stop, and asks `choose_winner` for the winner on the selection split."""

    name: ClassVar[str]
    Config: ClassVar[type[OptimizerConfig]]
    # Whether it selects on the dev split (False: it selects without labels, e.g. SPO).
    needs_dev: ClassVar[bool] = True
    # Whether it measures prompts by their likelihood loss (PMPO): the run must score
    # by likelihood (evaluation.scoring).
    requires_likelihood: ClassVar[bool] = False
    # The split every candidate is screened on: the winner is chosen there when no
    # final selection ran (None: no such split).
    screening_split: ClassVar[str | None] = SUBSET

    def __init__(self, config: OptimizerConfig | None = None) -> None:
        self.config = config or self.Config()
        self.rejected = 0
        self.stopped_early: str | None = None
        self.final_split: str | None = None  # the split the final selection scored on
        self._final_cap: int | None = None

    @abstractmethod
    def search(self, ctx: OptimizerContext) -> None:
        """Proposes and evaluates candidates into `ctx.pool`."""

    def selection_split(self) -> str:
        """The evaluation split (key in Candidate.evaluations) the winner is chosen on
        when no final selection said otherwise: the whole dev split by default."""
        return DEV

    def estimate(self, train_size: int, dev_size: int, example_tokens: int) -> SearchEstimate:
        """Upper bounds of the search's work for --dry-run. `example_tokens` is the mean
        tokens of one train input plus its target."""
        return SearchEstimate()

    def choose_winner(self, ctx: OptimizerContext, split: str) -> Candidate | None:
        """The winner among the candidates scored on `split` (None: none is): the run's
        one objective, the score less the task's length penalty, at an equal objective
        the lower likelihood loss, then the earlier candidate (CandidatePool.ranked).
        A method with a rule of its own overrides this hook only (CAPO adds its length
        penalty; SPO keeps the last prompt that won its round)."""
        return ctx.pool.best(split)

    def optimize(self, ctx: OptimizerContext) -> OptimizerOutcome:
        stopped_by = None
        self.stopped_early = None
        self.final_split = None
        left = ctx.guard.task_calls_left()
        self._final_cap = None if left is None else int(left * FINAL_SHARE)
        try:
            self.search(ctx)
        except BudgetExhausted as e:
            stopped_by = e.limit
            ctx.emit(BudgetStopped(e.limit))
        except ModelUnavailable as e:
            stopped_by = f"{e.role} model unavailable"
            ctx.emit(SearchStopped(str(e)))
        stopped_by = stopped_by or self.stopped_early
        split = self.final_split or self.selection_split()
        best = self.choose_winner(ctx, split)
        screening_only = False
        if best is None and self.needs_dev:
            # No final selection (the budget only allowed screening, or it ended
            # before one): the screening scores, on fewer examples, are the best
            # evidence there is.
            screening_only = True
            screen = self.screening_split
            fallback = None if screen is None else self.choose_winner(ctx, screen)
            if screen is not None and fallback is not None:
                split, best = screen, fallback
        return OptimizerOutcome(
            best or ctx.pool.get(ctx.seed_prompt.id),
            split,
            stopped_by,
            self.rejected,
            screening_only,
        )

    # The budget question: every step of every search asks it before it spends.

    def shortfall(
        self,
        ctx: OptimizerContext,
        *,
        task: int = 0,
        optimizer: int = 0,
        judge: int = 0,
        final: int = 0,
    ) -> Shortfall | None:
        """The call limit left that cannot pay for a step of `task`, `optimizer` and
        `judge` calls followed by the final selection, None when every one can. `final`
        is what the full final selection would take in task calls; the search keeps
        `final_reserve(final)` of it."""
        return ctx.guard.shortfall(
            task=task + self.final_reserve(final), optimizer=optimizer, judge=judge
        )

    def affords(self, ctx: OptimizerContext, **step: int) -> bool:
        """Whether the call limits left pay for the step and the final selection (the
        keywords of `shortfall`: task, optimizer, judge, final)."""
        return self.shortfall(ctx, **step) is None

    def task_calls_left(
        self, ctx: OptimizerContext, *, optimizer: int = 0, final: int = 0
    ) -> int | None:
        """Task calls the search may still spend beside `optimizer` optimizer calls and
        the final selection's reserve (`final`, as in `shortfall`); None: no limit."""
        left = ctx.guard.task_calls_left(optimizer=optimizer)
        return None if left is None else left - self.final_reserve(final)

    def final_reserve(self, cost: int) -> int:
        """Task calls the search keeps for the final selection: `cost`, what the full
        final selection would take, but at most FINAL_SHARE of the task calls the
        optimizer started with (the final is then made smaller: `select_final`)."""
        return cost if self._final_cap is None else min(cost, self._final_cap)

    # The final selection.

    def select_final(
        self,
        ctx: OptimizerContext,
        ranked: list[Candidate],
        *,
        others: int,
        screened: list[Example],
        keep: tuple[Candidate, ...] = (),
    ) -> list[Candidate]:
        """The final selection, sized to the task calls left (search/final.py).

        The finalists are the seed (the fallback winner), the candidates in `keep`
        (always finalists, so they can win) and the `others` best of `ranked` (best
        first). With the budget for it, each is scored on the whole dev split (split
        DEV); with less, the worst ranked finalists are dropped, then the seed, `keep`
        and the best other are scored on part of dev (split FINAL), `screened` (the
        examples the candidates were screened on) first; with less still, nothing is
        scored and the outcome reports that the budget only allowed screening.
        The seed is scored first: if the budget ends mid-way, it is the fallback
        winner. Returns the finalists scored, in the order scored."""
        seed = ctx.pool.get(ctx.seed_prompt.id)
        forced = [seed, *(k for k in keep if k.id != seed.id)]
        forced_ids = {x.id for x in forced}
        rest = [x for x in ranked if x.id not in forced_ids]
        finalists = forced + rest[: max(0, others)]
        first = {ex.id for ex in screened}
        order = [*screened, *(ex for ex in ctx.dev if ex.id not in first)]
        plan = plan_final(
            [scored_ids(x) for x in finalists],
            [ex.id for ex in order],
            ctx.guard.task_calls_left(),
            forced=len(forced),
        )
        if plan.screening_only:
            return []
        self.final_split = DEV if plan.whole else FINAL
        examples = list(ctx.dev) if plan.whole else order[: plan.examples]
        ctx.emit(PhaseStarted("final", plan.cost))
        chosen = finalists[: plan.finalists]
        for cand in chosen:
            self.score_finalist(ctx, cand, examples, self.final_split)
        return chosen

    def score_finalist(
        self, ctx: OptimizerContext, candidate: Candidate, examples: list[Example], split: str
    ) -> None:
        """Scores one finalist of the final selection on `examples` as `split`."""
        self.evaluate(ctx, candidate, examples, split)

    # Helpers the optimizers share.

    def add_candidate(
        self,
        ctx: OptimizerContext,
        prompt: Prompt,
        *,
        parents: tuple[str, ...] = (),
        operation: str,
        step: int,
        note: str = "",
        count_duplicate: bool = False,
    ) -> Candidate | None:
        """Adds a new candidate; None if the pool already had this prompt (counted as a
        rejected reply with `count_duplicate`) or it breaks the user's constraints
        (counted as a rejected reply). A candidate that dropped a protected span or the
        kept output format is repaired, not rejected. Each refusal is counted once."""
        verdict = ctx.constraints.apply(prompt)
        if verdict.prompt is None:
            self.reject(ctx, f"constraint: {verdict.reason}", step)
            return None
        candidate, new = ctx.pool.propose(
            Candidate(verdict.prompt, parents, operation, step, note=note)
        )
        if not new and count_duplicate:
            self.reject(ctx, "duplicate of a candidate", step)
        return candidate if new else None

    def evaluate(
        self, ctx: OptimizerContext, candidate: Candidate, examples: list[Example], split: str
    ) -> EvaluationResult:
        """Scores a candidate on `examples` as split `split` (once per split). Examples
        it was already scored on under another split are not run or charged again: the
        same prompt on the same example gives the same result (the request, seed
        included, is the same), so e.g. the final selection on dev reuses the
        screening subset's results."""
        if split in candidate.evaluations:
            return candidate.evaluations[split]
        known = scored_results(candidate)
        missing = [ex for ex in examples if ex.id not in known]
        fresh = ctx.evaluator.evaluate(candidate.prompt, missing).by_example() if missing else {}
        result = EvaluationResult(
            candidate.id,
            tuple(known.get(ex.id) or fresh[ex.id] for ex in examples),
            ctx.evaluator.select_by,
        )
        ctx.pool.record(candidate, split, result)
        return result

    def ask(
        self,
        ctx: OptimizerContext,
        meta_prompt: str,
        *,
        sample_index: int,
        step: int,
        seed: int | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        model: ModelClient | None = None,
    ) -> str | None:
        """One reply of the optimizer model (or `model`, e.g. the judge) to a meta-prompt;
        None (counted and reported as a rejected reply) if the call failed. Unless
        given, the request's seed is drawn from the run's RNG, and `temperature` and
        `max_tokens` are the optimizer's options (SamplingOptions).
        Raises only BudgetExhausted and ModelUnavailable, which end the search cleanly."""
        if seed is None:
            seed = ctx.rng.randrange(2**31)
        if temperature is None or max_tokens is None:
            if not isinstance(self.config, SamplingOptions):
                raise TypeError(f"{self.name}: no temperature and max_tokens options")
            temperature = self.config.temperature if temperature is None else temperature
            max_tokens = self.config.max_tokens if max_tokens is None else max_tokens
        request = CompletionRequest(
            messages=(Message("user", meta_prompt),),
            temperature=temperature,
            max_tokens=max_tokens,
            seed=seed,
            sample_index=sample_index,
        )
        try:
            return (model or ctx.optimizer_model).complete(request).text
        except ModelError as e:
            self.reject(ctx, f"model error: {e}", step)
            return None

    def propose(
        self,
        ctx: OptimizerContext,
        meta_prompt: str,
        *,
        sample_index: int,
        step: int,
        seed: int | None = None,
        forbidden: tuple[str, ...] = (),
        tag: str = "prompt",
        parse: Callable[[str], Parsed] | None = None,
    ) -> str | None:
        """Asks the optimizer model (as `ask`) for one instruction, read by `parse`
        (default: parsing.parse_instruction with `tag` and `forbidden`); None (counted,
        reported) when the reply is unusable or the call failed."""
        reply = self.ask(ctx, meta_prompt, sample_index=sample_index, step=step, seed=seed)
        if reply is None:
            return None
        if parse is None:
            parsed = parse_instruction(reply, tag=tag, forbidden=forbidden)
        else:
            parsed = parse(reply)
        if parsed.text is None:
            self.reject(ctx, parsed.reason, step)
        return parsed.text

    def stop_early(self, ctx: OptimizerContext, reason: str) -> None:
        """Records that the search ended before its plan (e.g. keeping the budget left
        for the final selection): the run reports it as stopped by the budget."""
        self.stopped_early = f"budget ({reason})"
        ctx.emit(SearchStopped(reason))

    def reject(self, ctx: OptimizerContext, reason: str, step: int) -> None:
        """Counts an unusable reply (or skipped proposal) and reports why."""
        self.rejected += 1
        ctx.emit(ReplyRejected(reason, step))


def scored_results(candidate: Candidate) -> dict[str, ExampleResult]:
    """The candidate's scored results by example id, over all its evaluations (what
    Optimizer.evaluate reuses instead of calling the model again)."""
    return {
        r.example_id: r
        for ev in candidate.evaluations.values()
        for r in ev.results
        if r.score is not None
    }


def scored_ids(candidate: Candidate) -> set[str]:
    """The ids of the examples the candidate has a score on, under any split."""
    return set(scored_results(candidate))
