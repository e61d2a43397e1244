"""PMPO: Probabilistic Metric Prompt Optimization (Zhao et al., 2025, "PMPO:
Probabilistic Metric Prompt Optimization for Small and Large Language Models").

Prompts are measured by the task model's loss (the cross-entropy of the right answer,
from likelihood scoring: evaluation/likelihood.py), one forward pass per example and
no generated answers. Each round:

1. Locate: on a minibatch of train examples, the loss of the current prompt and of the
   prompt with each of its segments (sentences, lines) masked out. A segment whose
   removal lowers the loss hurts; the masked prompts are candidates themselves.
2. Rewrite: the optimizer model sees the current instruction, its most harmful
   segments (or, when none hurts, is asked for an addition) and the examples with the
   lowest probability of the right answer, and writes `variants` new instructions.
3. Select: variants (and masked prompts) that lower the minibatch loss are scored on
   the dev subset; the one with the lowest loss there is the next round's prompt.

A round the budget cannot pay in full (small budgets) skips the masking analysis: the
rewrites are shown the current prompt's hardest dev-subset examples and scored on the
subset directly. Finally the best candidates (the seed among them) compete on dev
(Optimizer.select_final), under the run's selection rule (`evaluation.select_by`). Needs
`evaluation.scoring: likelihood` (or auto with a model that scores continuations).
The paper's settings are not all published; the defaults here are ours and small.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

from pydantic import Field

from promptascent.data.example import Example
from promptascent.evaluation.result import EvaluationResult
from promptascent.events import StepFinished
from promptascent.optimizers.base import OptimizerContext, load_template
from promptascent.optimizers.estimate import SearchEstimate
from promptascent.optimizers.options import SamplingOptions, ScreeningOptions, default
from promptascent.optimizers.registry import register
from promptascent.optimizers.screening import NoRoom, ScreenThenSelect
from promptascent.prompts.template import fill, template_fields
from promptascent.search.pool import Candidate
from promptascent.search.splits import SUBSET, train_minibatch

_INPUT_CHARS = 300
_SEGMENT = re.compile(r"[^\n.!?]*(?:[.!?]+|\n|$)")


class PMPOConfig(ScreeningOptions, SamplingOptions):
    rounds: int = Field(3, ge=1, description="Rounds of locate, rewrite, select.")
    minibatch: int = Field(12, ge=2, description="Train examples the losses are measured on.")
    max_segments: int = Field(6, ge=0, description="Segments masked per round (0: none).")
    rewrite_segments: int = Field(2, ge=1, description="Harmful segments shown for rewriting.")
    variants: int = Field(4, ge=1, description="Rewrites proposed per round.")
    hard_examples: int = Field(3, ge=1, description="Lowest-probability examples shown.")
    max_tokens: int = default("max_tokens", 160, "a rewrite of the whole instruction")


@dataclass(frozen=True)
class Segment:
    """A sentence or line of an instruction template: `start`:`end` in it."""

    text: str
    start: int
    end: int


def segments(instruction: str) -> list[Segment]:
    """The instruction's sentences and lines that can be masked: non-blank, without a
    placeholder (masking one would drop the input)."""
    out = []
    for m in _SEGMENT.finditer(instruction):
        text = m.group(0)
        if text.strip() and not template_fields(text):
            out.append(Segment(text.strip(), m.start(), m.end()))
    return out


def masked(instruction: str, seg: Segment) -> str:
    """The instruction without `seg` (and the space it leaves)."""
    return re.sub(r"[ \t]{2,}", " ", instruction[: seg.start] + instruction[seg.end :]).strip()


@register
class PMPO(ScreenThenSelect):
    name = "pmpo"
    Config = PMPOConfig
    config: PMPOConfig
    requires_likelihood: ClassVar[bool] = True

    def estimate(self, train_size: int, dev_size: int, example_tokens: int) -> SearchEstimate:
        c = self.config
        batch = min(c.minibatch, train_size)
        subset = min(c.eval_examples, dev_size)
        per_round = batch * (1 + c.max_segments + c.variants) + subset * c.variants
        return SearchEstimate(
            task_calls=subset + c.rounds * per_round + c.final_k * dev_size,
            optimizer_calls=c.rounds * c.variants,
            optimizer_prompt_tokens=120 + c.hard_examples * (example_tokens + 12),
            optimizer_max_tokens=c.max_tokens,
        )

    def planned_finalists(self, ctx: OptimizerContext) -> int:
        """The finalists the next step could produce: the budget kept grows with them."""
        return min(self.config.final_k, len(ctx.pool.ranked(SUBSET)) + 1)

    def explore(self, ctx: OptimizerContext, subset: list[Example]) -> None:
        current = ctx.pool.get(ctx.seed_prompt.id)
        for step in range(1, self.config.rounds + 1):
            current = self._round(ctx, current, subset, step)

    def _round(
        self, ctx: OptimizerContext, current: Candidate, subset: list[Example], step: int
    ) -> Candidate:
        c = self.config
        instruction = current.prompt.instruction
        masks = segments(instruction)[: c.max_segments]
        batch_size = min(c.minibatch, len(ctx.train))
        full = batch_size * (1 + len(masks) + c.variants) + len(subset) * c.variants
        left = self.task_calls_left(ctx, final=self.final_cost(ctx))
        if left is not None and left < full:
            # A small budget: no masking analysis; the rewrites are measured on the dev
            # subset directly, as many as fit.
            return self._short_round(ctx, current, subset, step, left)
        batch = ctx.train.sample(c.minibatch, ctx.rng)
        split = train_minibatch(step)
        base = self._loss_on(ctx, current, batch, split)
        # 1. Locate: the loss without each segment.
        harmful: list[tuple[float, Segment]] = []
        better: list[Candidate] = []
        for seg in masks:
            cand = self.add_candidate(
                ctx,
                current.prompt.with_instruction(masked(instruction, seg), raw=True),
                parents=(current.id,),
                operation="mask",
                step=step,
                note=f"without: {seg.text}",
            )
            if cand is None:
                continue
            delta = self._loss_on(ctx, cand, batch, split).loss - base.loss
            if delta < 0:
                harmful.append((delta, seg))
                better.append(cand)
        harmful.sort(key=lambda pair: pair[0])
        # 2. Rewrite the worst parts, shown the hardest examples.
        meta = self._meta_prompt(ctx, instruction, [s for _, s in harmful], base.result, batch)
        for cand in self._rewrites(ctx, current, meta, c.variants, step):
            if self._loss_on(ctx, cand, batch, split).loss < base.loss:
                better.append(cand)
        # 3. Select: what lowered the minibatch loss competes on the dev subset.
        for cand in better:
            self.need(ctx, task=len(subset))
            self.evaluate(ctx, cand, subset, SUBSET)
        return self._next(ctx, current, step)

    def _short_round(
        self,
        ctx: OptimizerContext,
        current: Candidate,
        subset: list[Example],
        step: int,
        left: int,
    ) -> Candidate:
        """A round the budget cannot pay in full: rewrites shown the current prompt's
        hardest dev-subset examples, each scored on the subset."""
        n = min(self.config.variants, left // max(1, len(subset)))
        if n < 1:
            raise NoRoom
        base = self.evaluate(ctx, current, subset, SUBSET)
        meta = self._meta_prompt(ctx, current.prompt.instruction, [], base, subset)
        for cand in self._rewrites(ctx, current, meta, n, step):
            self.need(ctx, task=len(subset))
            self.evaluate(ctx, cand, subset, SUBSET)
        return self._next(ctx, current, step)

    def _rewrites(
        self, ctx: OptimizerContext, current: Candidate, meta: str, n: int, step: int
    ) -> list[Candidate]:
        """Up to `n` new instructions from the optimizer model, as candidates."""
        out = []
        for i in range(n):
            self.need(ctx, optimizer=1)
            forbidden = (current.prompt.instruction,)
            text = self.propose(ctx, meta, sample_index=i, step=step, forbidden=forbidden)
            if not text:
                continue
            cand = self.add_candidate(
                ctx,
                current.prompt.with_instruction(text),
                parents=(current.id,),
                operation="rewrite",
                step=step,
            )
            if cand is not None:
                out.append(cand)
        return out

    def _next(self, ctx: OptimizerContext, current: Candidate, step: int) -> Candidate:
        """The prompt with the lowest loss on the dev subset: the next round's."""
        screened = [x for x in ctx.pool.all() if x.loss(SUBSET) is not None]
        nxt = min(screened, key=lambda x: x.loss(SUBSET) or 0.0, default=current)
        ctx.emit(StepFinished(step, nxt.id, nxt.score(SUBSET) or 0.0))
        return nxt

    def _loss_on(
        self, ctx: OptimizerContext, cand: Candidate, batch: list[Example], split: str
    ) -> _Loss:
        self.need(ctx, task=len(batch))
        result = self.evaluate(ctx, cand, batch, split)
        loss = result.mean_loss
        return _Loss(float("inf") if loss is None else loss, result)

    def _meta_prompt(
        self,
        ctx: OptimizerContext,
        instruction: str,
        harmful: list[Segment],
        result: EvaluationResult,
        batch: list[Example],
    ) -> str:
        c = self.config
        if harmful:
            listed = "\n".join(f"- {s.text}" for s in harmful[: c.rewrite_segments])
            parts = f"These parts of it make the answers worse:\n{listed}"
        else:
            parts = "Every part of it helps; add what is missing."
        by_id = {ex.id: ex for ex in batch}
        scored = [r for r in result.results if r.gold_prob is not None]
        hardest = sorted(scored, key=lambda r: r.gold_prob or 0.0)[: c.hard_examples]
        blocks = []
        for r in hardest:
            ex = by_id[r.example_id]
            text = " ".join(ex.input_text.split())[:_INPUT_CHARS]
            blocks.append(f"Input: {text}\nCorrect answer: {ex.target}\nModel's answer: {r.output}")
        return fill(
            load_template("pmpo_rewrite.txt"),
            {
                "instruction": instruction or "(empty)",
                "parts": parts,
                "examples": "\n\n".join(blocks) or "(none)",
            },
        )


@dataclass(frozen=True)
class _Loss:
    loss: float
    result: EvaluationResult
