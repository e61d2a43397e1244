"""GEPA: reflective prompt evolution with Pareto selection (Agrawal et al., 2025,
"GEPA: Reflective Prompt Evolution Can Outperform Reinforcement Learning"; reference
code: gepa-ai/gepa, and dspy.GEPA).

On the screen-then-select scaffold (screening.py), the subset of dev examples every
candidate is scored on is GEPA's Pareto set: each candidate has a score per example
there. Each step:

1. Parent: drawn from the Pareto front over the examples (search/frontier.py: the
   candidates best on at least one example, less the dominated, each as likely as
   the number of examples it is best on), or the best on average
   (`candidate_selection: best`).
2. Reflective mutation: the parent runs on a minibatch of train (epoch-shuffled, as
   gepa's batch sampler); when it is right on all of it, the step is skipped
   (`skip_perfect_minibatch`). Otherwise the optimizer model reads the traces (input,
   output, expected answer and the metric's feedback; templates/gepa_reflect.txt) and
   writes a new instruction. A malformed reply is a rejected proposal.
3. Acceptance: the child runs on the same minibatch; it is kept only if it does better
   there than the parent (the sum of the scores, as gepa; at an equal sum, under
   likelihood scoring, the lower loss), and is then scored on the Pareto set.
4. Merge (`use_merge`): after a step that added a candidate, the next step first tries
   to merge two front candidates that share an ancestor, neither descending from the
   other, and each best where the other is not. Our prompts have one component (the
   instruction), where gepa's per-component merge could only return a parent: the
   optimizer model writes one instruction from the two (templates/gepa_merge.txt).
   As gepa, the merged candidate is checked on up to `merge_subsample` Pareto-set
   examples (those each parent wins, in turn, then ties) and kept if it scores at
   least as well there as the better parent; then on the rest of the Pareto set.

The search runs until the budget only pays for the final selection (or
`max_iterations`); the finalists are the best on the Pareto set (the seed among them).
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from typing import Literal

from pydantic import Field

from promptascent.data.example import Example
from promptascent.evaluation.result import EvaluationResult, ExampleResult
from promptascent.llm.types import CompletionRequest, Message
from promptascent.optimizers.base import OptimizerContext, load_template
from promptascent.optimizers.estimate import SearchEstimate
from promptascent.optimizers.options import SamplingOptions, ScreeningOptions, default
from promptascent.optimizers.parsing import parse_instruction
from promptascent.optimizers.registry import register
from promptascent.optimizers.screening import ScreenThenSelect
from promptascent.prompts.template import fill
from promptascent.search import frontier
from promptascent.search.minibatch import iter_minibatches
from promptascent.search.pool import Candidate
from promptascent.search.splits import SUBSET, merge_check, reflection

# The Pareto set is sized so that it takes at most this share of the task calls the
# search has (beside the final selection's reserve) per candidate scored on it: the
# seed and several children must fit (at 100 task calls: about 8 examples).
PARETO_SHARE = 1 / 8


class GEPAConfig(ScreeningOptions, SamplingOptions):
    minibatch_size: int = Field(
        3,
        ge=1,
        description="Train examples a parent and its child run on (paper and gepa: 3).",
    )
    reflection_examples: int = Field(
        3,
        ge=1,
        description=(
            "Traces shown to the optimizer model at most, failures first (gepa: the "
            "whole minibatch, 3)."
        ),
    )
    candidate_selection: Literal["pareto", "best"] = Field(
        "pareto",
        description=(
            "Parent selection: from the Pareto front over examples, or the best on "
            "average (gepa: 'pareto'; its 'current_best' is 'best')."
        ),
    )
    skip_perfect_minibatch: bool = Field(
        True,
        description="Skip a step whose parent is right on the whole minibatch (gepa: true).",
    )
    use_merge: bool = Field(
        False, description="Merge two complementary front candidates (gepa optimize: false)."
    )
    max_merge_invocations: int = Field(5, ge=0, description="Merges tried at most (gepa: 5).")
    merge_subsample: int = Field(
        5,
        ge=1,
        description="Pareto-set examples a merged candidate is first checked on (gepa: 5).",
    )
    max_iterations: int = Field(
        100,
        ge=0,
        description=(
            "Steps at most (not in gepa, which runs until its metric-call budget; here "
            "the budget also ends the search)."
        ),
    )
    eval_examples: int = default(
        "eval_examples",
        20,
        "the Pareto set; at most an eighth of the search's task calls",
        description="Dev examples every candidate is scored on (the Pareto set).",
    )
    temperature: float = default("temperature", 1.0, "dspy.GEPA's reflection model: 1.0")
    max_tokens: int = default("max_tokens", 160, "a new instruction is written whole")


@register
class GEPA(ScreenThenSelect):
    name = "gepa"
    Config = GEPAConfig
    config: GEPAConfig

    def __init__(self, config: GEPAConfig | None = None) -> None:
        super().__init__(config)
        self._pareto_size: int | None = None

    # Planning.

    def estimate(self, train_size: int, dev_size: int, example_tokens: int) -> SearchEstimate:
        c = self.config
        pareto = min(c.eval_examples, dev_size)
        batch = min(c.minibatch_size, train_size)
        merges = c.max_merge_invocations if c.use_merge else 0
        steps = c.max_iterations
        return SearchEstimate(
            task_calls=pareto * (1 + steps + merges) + 2 * batch * steps + c.final_k * dev_size,
            optimizer_calls=steps + merges,
            optimizer_prompt_tokens=120 + c.reflection_examples * (example_tokens + 40),
            optimizer_max_tokens=c.max_tokens,
        )

    def prepare(self, ctx: OptimizerContext) -> None:
        c = self.config
        self._pareto_size = min(c.eval_examples, len(ctx.dev))
        left = ctx.guard.task_calls_left()
        if left is not None:
            full_final = c.final_k * len(ctx.dev)
            search = left - self.final_reserve(full_final)
            self._pareto_size = max(1, min(self._pareto_size, int(search * PARETO_SHARE)))

    def subset_size(self, ctx: OptimizerContext) -> int:
        """The Pareto set: `eval_examples`, fewer on a small budget (PARETO_SHARE)."""
        return self.config.eval_examples if self._pareto_size is None else self._pareto_size

    # Search.

    def explore(self, ctx: OptimizerContext, subset: list[Example]) -> None:
        c = self.config
        batches = iter_minibatches(list(ctx.train), c.minibatch_size, ctx.rng, epochs=None)
        merges_due = merges_tried = 0
        found = False  # whether the last step added a candidate
        tried: set[tuple[str, str]] = set()
        for step in range(1, c.max_iterations + 1):
            if c.use_merge and merges_due and found:
                found = False
                pair = self._merge_pair(ctx, tried)
                if pair is not None:
                    merges_tried += 1
                    if self._merge(ctx, pair, subset, step):
                        merges_due -= 1
                    self.step_finished(ctx, step)
                    continue
            found = self._reflect(ctx, self._parent(ctx), batches, subset, step)
            if found and c.use_merge and merges_tried < c.max_merge_invocations:
                merges_due += 1
            self.step_finished(ctx, step)

    def _pareto_scores(self, ctx: OptimizerContext) -> dict[str, dict[str, float]]:
        """Candidate id -> example id -> what selection compares, on the Pareto set."""
        out: dict[str, dict[str, float]] = {}
        for cand in ctx.pool.all():
            ev = cand.evaluations.get(SUBSET)
            if ev is not None and ev.n:
                out[cand.id] = _values(ev)
        return out

    def _parent(self, ctx: OptimizerContext) -> Candidate:
        seed = ctx.pool.get(ctx.seed_prompt.id)
        if self.config.candidate_selection == "best":
            return ctx.pool.best(SUBSET) or seed
        scores = self._pareto_scores(ctx)
        aggregate = {cid: _mean(v) for cid, v in scores.items()}
        chosen = frontier.sample_parent(frontier.front_weights(scores, aggregate), ctx.rng)
        return seed if chosen is None else ctx.pool.get(chosen)

    def _reflect(
        self,
        ctx: OptimizerContext,
        parent: Candidate,
        batches: Iterator[list[Example]],
        subset: list[Example],
        step: int,
    ) -> bool:
        """One reflective mutation of `parent`; whether it added a candidate."""
        c = self.config
        batch = next(batches, None)
        if not batch:
            return False
        # The parent's and the child's minibatch run, the reflection, and the Pareto
        # set for a child that wins: a child the budget could not score there could
        # not be a finalist, so the step is not started.
        self.need(ctx, task=2 * len(batch) + len(subset), optimizer=1)
        split = reflection(step)
        before = self.evaluate(ctx, parent, batch, split)
        if c.skip_perfect_minibatch and before.n and all(s >= 1.0 for s in before.scores):
            return False
        meta = self._reflection_prompt(ctx, parent, batch, before)
        text = self.propose(
            ctx,
            meta,
            sample_index=0,
            step=step,
            parse=lambda reply: parse_instruction(
                reply, tag="prompt", forbidden=(parent.prompt.instruction,)
            ),
        )
        if text is None:
            return False
        child = self.add_candidate(
            ctx,
            parent.prompt.with_instruction(text),
            parents=(parent.id,),
            operation="reflect",
            step=step,
            count_duplicate=True,
        )
        if child is None:
            return False
        after = self.evaluate(ctx, child, batch, split)
        if not _better(after, before):
            return False
        self.evaluate(ctx, child, subset, SUBSET)
        return True

    def _reflection_prompt(
        self,
        ctx: OptimizerContext,
        parent: Candidate,
        batch: list[Example],
        result: EvaluationResult,
    ) -> str:
        """The reflection meta-prompt with as many traces (failures first, the least
        likely gold answer first under likelihood scoring) as fit the optimizer
        model's context with room for the reply."""
        by_id = {ex.id: ex for ex in batch}
        traces = [(by_id[r.example_id], r) for r in result.results if r.example_id in by_id]
        traces.sort(key=_failure_order)
        traces = traces[: self.config.reflection_examples]
        fields = {"prompt": parent.prompt.instruction, "task": _task_line(ctx)}
        template = load_template("gepa_reflect.txt")
        return self._fit(ctx, template, fields, traces)

    def _fit(
        self,
        ctx: OptimizerContext,
        template: str,
        fields: dict[str, str],
        traces: list[tuple[Example, ExampleResult]],
    ) -> str:
        model = ctx.optimizer_model
        text = ""
        for k in range(len(traces), 0, -1):
            text = fill(template, {**fields, "traces": format_traces(traces[:k])})
            request = CompletionRequest(messages=(Message("user", text),))
            if model.prompt_tokens(request) + self.config.max_tokens <= model.context_length:
                break
        return text

    # Merge.

    def _merge_pair(
        self, ctx: OptimizerContext, tried: set[tuple[str, str]]
    ) -> tuple[Candidate, Candidate] | None:
        """Two front candidates not tried before that share an ancestor, neither an
        ancestor of the other, each better than the other on some Pareto-set example
        (drawn in a seeded order); None when no pair qualifies."""
        scores = self._pareto_scores(ctx)
        aggregate = {cid: _mean(v) for cid, v in scores.items()}
        front = frontier.dominators(frontier.example_fronts(scores), aggregate)
        pairs = list(itertools.combinations(front, 2))
        ctx.rng.shuffle(pairs)
        for a, b in pairs:
            if (a, b) in tried:
                continue
            anc_a, anc_b = self._ancestors(ctx, a), self._ancestors(ctx, b)
            if a in anc_b or b in anc_a or not anc_a & anc_b:
                continue
            if 0 in frontier.wins(scores, a, b):
                continue
            tried.add((a, b))
            return ctx.pool.get(a), ctx.pool.get(b)
        return None

    def _ancestors(self, ctx: OptimizerContext, cid: str) -> set[str]:
        out: set[str] = set()
        todo = list(ctx.pool.get(cid).parents)
        while todo:
            p = todo.pop()
            if p not in out and p in ctx.pool:
                out.add(p)
                todo += ctx.pool.get(p).parents
        return out

    def _merge(
        self,
        ctx: OptimizerContext,
        pair: tuple[Candidate, Candidate],
        subset: list[Example],
        step: int,
    ) -> bool:
        """Merges `pair` into one candidate; whether it was kept (module docstring)."""
        a, b = pair
        sa, sb = _values(a.evaluations[SUBSET]), _values(b.evaluations[SUBSET])
        check = balanced_subsample(subset, sa, sb, self.config.merge_subsample, ctx.rng)
        self.need(ctx, task=len(subset), optimizer=1)
        meta = fill(
            load_template("gepa_merge.txt"),
            {
                "first": a.prompt.instruction,
                "second": b.prompt.instruction,
                "task": _task_line(ctx),
            },
        )
        forbidden = (a.prompt.instruction, b.prompt.instruction)
        text = self.propose(ctx, meta, sample_index=0, step=step, forbidden=forbidden)
        if text is None:
            return False
        child = self.add_candidate(
            ctx,
            a.prompt.with_instruction(text),
            parents=(a.id, b.id),
            operation="merge",
            step=step,
            count_duplicate=True,
        )
        if child is None:
            return False
        merged = _values(self.evaluate(ctx, child, check, merge_check(step)))
        ids = [ex.id for ex in check]
        best_parent = max(sum(sa[i] for i in ids), sum(sb[i] for i in ids))
        if sum(merged.get(i, 0.0) for i in ids) < best_parent:
            return False
        self.evaluate(ctx, child, subset, SUBSET)
        return True


# Helpers.

_INPUT_CHARS = 300
_OUTPUT_CHARS = 120


def _values(ev: EvaluationResult) -> dict[str, float]:
    """Example id -> what selection compares (the score, or minus the loss)."""
    out: dict[str, float] = {}
    for r in ev.scored:
        v = r.selection_value(ev.select_by)
        if v is not None:
            out[r.example_id] = v
    return out


def _mean(values: dict[str, float]) -> float:
    return sum(values.values()) / len(values) if values else 0.0


def balanced_subsample(
    subset: list[Example],
    sa: dict[str, float],
    sb: dict[str, float],
    size: int,
    rng: random.Random,
) -> list[Example]:
    """Up to `size` examples both parents were scored on, as gepa balances them: the
    examples each parent wins, taken in turn, then ties (each group shuffled)."""
    both = [ex for ex in subset if ex.id in sa and ex.id in sb]
    a_wins = [ex for ex in both if sa[ex.id] > sb[ex.id]]
    b_wins = [ex for ex in both if sb[ex.id] > sa[ex.id]]
    ties = [ex for ex in both if sa[ex.id] == sb[ex.id]]
    for group in (a_wins, b_wins, ties):
        rng.shuffle(group)
    turns = [ex for pair in itertools.zip_longest(a_wins, b_wins) for ex in pair if ex]
    return [*turns, *ties][:size]


def _better(child: EvaluationResult, parent: EvaluationResult) -> bool:
    """Whether the child did better on the minibatch: a higher sum of what selection
    compares (gepa: strictly higher); at an equal sum, a lower total loss when
    scored by likelihood."""
    c, p = sum(child.selection_scores), sum(parent.selection_scores)
    if c != p:
        return c > p
    return sum(child.losses) < sum(parent.losses) if child.losses and parent.losses else False


def _failure_order(trace: tuple[Example, ExampleResult]) -> tuple[float, float]:
    r = trace[1]
    score = 1.0 if r.score is None else r.score
    return (score, 1.0 if r.gold_prob is None else r.gold_prob)


def _task_line(ctx: OptimizerContext) -> str:
    text = ctx.task_description.strip()
    return f"The task: {text}\n" if text else ""


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."


def format_traces(traces: list[tuple[Example, ExampleResult]]) -> str:
    """Input, output, expected answer and the metric's feedback (where it gives one)
    of each trace, as the reflection prompt shows them."""
    blocks = []
    for ex, r in traces:
        lines = [
            f"Input: {_clip(ex.input_text, _INPUT_CHARS)}",
            f"Output: {_clip(r.output, _OUTPUT_CHARS) or '(empty)'}",
            f"Expected: {' / '.join(ex.targets) or '(not given)'}",
        ]
        if r.error is not None:
            lines.append(f"Feedback: the call failed ({_clip(r.error, _OUTPUT_CHARS)})")
        elif r.feedback:
            lines.append(f"Feedback: {r.feedback}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)
