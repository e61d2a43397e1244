"""APE: Automatic Prompt Engineer (Zhou et al., 2023, "Large Language Models Are
Human-Level Prompt Engineers").

1. Induction: the optimizer model reads a few train input-output pairs and writes
   the instruction that produced them; `num_candidates` samples.
2. Scoring: every candidate and the seed run on the same dev subset.
3. Iterative resampling (the paper's "iterative APE"): variations of the top
   candidates, scored the same way, for `rounds` rounds.
4. Selection: the `final_k` best (the seed always among them) are scored on the
   whole dev split; the winner is the best there. The search keeps the budget for
   this step, at most a third of the task calls; a smaller budget gets a smaller
   final selection (Optimizer.select_final).
"""

from __future__ import annotations

from dataclasses import replace

from pydantic import Field

from promptascent.data.example import Example
from promptascent.optimizers.base import OptimizerContext, load_template
from promptascent.optimizers.estimate import SearchEstimate
from promptascent.optimizers.options import SamplingOptions, ScreeningOptions
from promptascent.optimizers.registry import register
from promptascent.optimizers.screening import ScreenThenSelect
from promptascent.prompts.answer_format import answer_format_line
from promptascent.prompts.template import fill
from promptascent.search.pool import Candidate
from promptascent.search.splits import SUBSET


class APEConfig(ScreeningOptions, SamplingOptions):
    num_candidates: int = Field(8, ge=1, description="Instructions induced from demos.")
    demos_per_induction: int = Field(5, ge=1, description="Train pairs shown per induction.")
    rounds: int = Field(1, ge=0, description="Rounds of iterative resampling.")
    top_k: int = Field(3, ge=1, description="Candidates resampled each round.")
    samples_per_candidate: int = Field(2, ge=1, description="Variations per resampled candidate.")
    format_candidates: bool = Field(
        True,
        description=(
            "Not in the paper: for multiple-choice tasks, also try the seed and the best "
            "induced instructions with a line naming the allowed answers. Small models "
            "gain most from being told to name one (see docs/optimizers.md)."
        ),
    )


@register
class APE(ScreenThenSelect):
    name = "ape"
    Config = APEConfig
    config: APEConfig

    def estimate(self, train_size: int, dev_size: int, example_tokens: int) -> SearchEstimate:
        c = self.config
        proposals = c.num_candidates + c.rounds * c.top_k * c.samples_per_candidate
        variants = c.top_k if c.format_candidates else 0
        subset = min(c.eval_examples, dev_size)
        return SearchEstimate(
            task_calls=subset * (1 + proposals + variants) + c.final_k * dev_size,
            optimizer_calls=proposals,
            optimizer_prompt_tokens=60 + c.demos_per_induction * (example_tokens + 6),
            optimizer_max_tokens=c.max_tokens,
        )

    def planned_finalists(self, ctx: OptimizerContext) -> int:
        """The finalists the next step could produce: the budget kept grows with them."""
        return min(self.config.final_k, len(ctx.pool.ranked(SUBSET)) + 1)

    def explore(self, ctx: OptimizerContext, subset: list[Example]) -> None:
        """Induction, format variants and resampling rounds, all scored on the subset."""
        c = self.config
        seed = ctx.pool.get(ctx.seed_prompt.id)
        if c.format_candidates:  # the cheapest, likeliest gain first: the seed + format
            self.screen(ctx, self._format_variants(ctx, [seed]), subset, step=1)
        induce = load_template("ape_induce.txt")
        fresh: list[Candidate] = []
        for i in range(c.num_candidates):
            self.need(ctx, optimizer=1)
            demos = ctx.train.sample(c.demos_per_induction, ctx.rng)
            meta = fill(induce, {"demos": _format_demos(demos)})
            forbidden = (ctx.seed_prompt.instruction,)
            text = self.propose(ctx, meta, sample_index=i, step=1, forbidden=forbidden)
            if text:
                cand = self.add_candidate(
                    ctx, ctx.seed_prompt.with_instruction(text), operation="induce", step=1
                )
                if cand:
                    fresh.append(cand)
        self.screen(ctx, fresh, subset, step=1)
        if c.format_candidates:
            induced = [x for x in ctx.pool.ranked(SUBSET) if x.operation == "induce"]
            self.screen(ctx, self._format_variants(ctx, induced[: c.top_k - 1]), subset, step=1)

        resample = load_template("ape_resample.txt")
        for round_ in range(c.rounds):
            step = 2 + round_
            fresh = []
            for parent in ctx.pool.ranked(SUBSET)[: c.top_k]:
                for j in range(c.samples_per_candidate):
                    self.need(ctx, optimizer=1)
                    text = self.propose(
                        ctx,
                        fill(resample, {"instruction": parent.prompt.instruction}),
                        sample_index=j,
                        step=step,
                        forbidden=(parent.prompt.instruction,),
                    )
                    if text:
                        cand = self.add_candidate(
                            ctx,
                            parent.prompt.with_instruction(text),
                            parents=(parent.id,),
                            operation="resample",
                            step=step,
                        )
                        if cand:
                            fresh.append(cand)
            self.screen(ctx, fresh, subset, step=step)

    def _format_variants(self, ctx: OptimizerContext, parents: list[Candidate]) -> list[Candidate]:
        line = answer_format_line(list(ctx.train))
        out: list[Candidate] = []
        if line is None:
            return out
        for parent in parents:
            if parent.prompt.output_format:
                continue
            variant = self.add_candidate(
                ctx,
                replace(parent.prompt, output_format=line),
                parents=(parent.id,),
                operation="format",
                step=1,
            )
            if variant:
                out.append(variant)
        return out


def _format_demos(demos: list[Example]) -> str:
    return "\n\n".join(f"Input: {ex.input_text}\nOutput: {ex.target}" for ex in demos)
