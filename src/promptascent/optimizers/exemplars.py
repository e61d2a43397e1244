"""Exemplar selection: few-shot demonstrations for a fixed instruction (Wan et al.,
2024, "Teach Better or Show Smarter? On Instructions and Exemplars in Automatic
Prompt Optimization").

The instruction is the seed's, or (`instruction_from_run`) the best prompt of a
finished run, so demonstrations go on top of an optimized instruction. Then:

1. Random search (`strategy` "random" or "both"): `num_candidates` sets of `k` train
   examples, each shown with its target.
2. Bootstrapping (`strategy` "bootstrap" or "both", as DSPy's BootstrapFewShot): the
   base prompt runs on `bootstrap_examples` train examples; the model's own outputs
   that score at least `bootstrap_threshold` become demonstrations. `num_candidates`
   sets of `k` are drawn from them (filled up with labelled train examples when fewer
   than `k` are correct).
3. A set whose rendered prompt would take more than `max_context_fraction` of the task
   model's context is skipped (counted as rejected).
4. Selection as in APE: every set and the base on the same `eval_examples` dev
   examples; the `final_k` best plus the seed and the base on the whole dev split
   (a smaller final selection when the budget is small: Optimizer.select_final).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from promptascent.data.example import Example
from promptascent.errors import ConfigError, TemplateError
from promptascent.optimizers import demos as shots
from promptascent.optimizers.base import OptimizerContext
from promptascent.optimizers.estimate import SearchEstimate
from promptascent.optimizers.options import ScreeningOptions, default
from promptascent.optimizers.registry import register
from promptascent.optimizers.screening import NoRoom, ScreenThenSelect
from promptascent.prompts.prompt import Demo, Prompt
from promptascent.search.pool import Candidate
from promptascent.search.splits import BOOTSTRAP, SUBSET


class ExemplarsConfig(ScreeningOptions):
    k: int = Field(3, ge=1, description="Demonstrations per candidate (shots).")
    num_candidates: int = Field(8, ge=1, description="Demonstration sets tried per strategy.")
    strategy: Literal["random", "bootstrap", "both"] = Field(
        "both",
        description="random: train examples with their targets; bootstrap: the model's own "
        "correct outputs on train examples; both: each in turn.",
    )
    bootstrap_examples: int = Field(
        16, ge=1, description="Train examples the base prompt runs on to bootstrap demos."
    )
    bootstrap_threshold: float = Field(
        1.0, description="A train output becomes a demo at this score or above."
    )
    instruction_from_run: str | None = Field(
        None,
        description="A finished run's folder: its best prompt replaces the seed as the base "
        "the demonstrations go on.",
    )
    max_context_fraction: float = Field(
        0.5,
        gt=0.0,
        le=1.0,
        description="Skip demo sets whose rendered prompt takes more of the task model's "
        "context than this.",
    )
    # The base (the seed, or a run's best) is always a finalist too.
    final_k: int = default(
        "final_k",
        3,
        "the seed and the base come on top",
        description="Candidates scored on the whole dev split besides the seed and the base.",
    )

    @field_validator("instruction_from_run")
    @classmethod
    def _finished_run(cls, value: str | None) -> str | None:
        if value is not None:
            best_prompt_of_run(Path(value))  # fails now, before anything is spent
        return value


def best_prompt_of_run(run_dir: Path) -> Prompt:
    """The best prompt a finished run recorded; ValueError (a ConfigError at option
    validation) naming the folder otherwise."""
    from promptascent.store.run_store import RunStore

    try:
        store = RunStore.open_existing(run_dir)
    except ConfigError as e:
        raise ValueError(str(e)) from None
    try:
        result = store.get("result")
        if not result or not result.get("best_candidate"):
            raise ValueError(f"{run_dir}: the run recorded no result (not finished?)")
        return Prompt.from_dict(store.prompt(result["best_candidate"]))
    finally:
        store.close()


@register
class Exemplars(ScreenThenSelect):
    name = "exemplars"
    Config = ExemplarsConfig
    config: ExemplarsConfig
    _base_candidate: Candidate  # the prompt the demonstrations go on (`prepare`)

    def estimate(self, train_size: int, dev_size: int, example_tokens: int) -> SearchEstimate:
        c = self.config
        strategies = 2 if c.strategy == "both" else 1
        boot = min(c.bootstrap_examples, train_size) if c.strategy != "random" else 0
        subset = min(c.eval_examples, dev_size)
        return SearchEstimate(
            task_calls=boot
            + subset * (2 + strategies * c.num_candidates)
            + (c.final_k + 2) * dev_size,
            max_demos=c.k,
        )

    def prepare(self, ctx: OptimizerContext) -> None:
        self._base_candidate = self._base(ctx, ctx.pool.get(ctx.seed_prompt.id))

    def final_others(self) -> int:
        return self.config.final_k

    def kept(self, ctx: OptimizerContext) -> tuple[Candidate, ...]:
        return (self._base_candidate,)

    def planned_finalists(self, ctx: OptimizerContext) -> int:
        return self.config.final_k + 2  # with the seed and the base

    def explore(self, ctx: OptimizerContext, subset: list[Example]) -> None:
        c = self.config
        base = self._base_candidate
        self.evaluate(ctx, base, subset, SUBSET)
        # The prompt is measured on the longest subset input: what fits there fits all.
        probe = max(subset, key=lambda ex: len(ex.input_text))
        if c.strategy in ("random", "both"):
            sets = [shots.labelled(ctx.train.sample(c.k, ctx.rng)) for _ in range(c.num_candidates)]
            self._try(ctx, base, sets, "demos-random", 1, subset, probe)
        if c.strategy in ("bootstrap", "both"):
            step = 2 if c.strategy == "both" else 1
            sets = self._bootstrap_sets(ctx, base, step, len(subset))
            self._try(ctx, base, sets, "demos-bootstrap", step, subset, probe)

    def _base(self, ctx: OptimizerContext, seed: Candidate) -> Candidate:
        """The seed, or the best prompt of the run named by `instruction_from_run`."""
        path = self.config.instruction_from_run
        if path is None:
            return seed
        prompt = best_prompt_of_run(Path(path))
        try:
            example = next(iter(ctx.train or ctx.dev))
            prompt.render(example.fields, where=f"example {example.id}")
        except TemplateError as e:
            raise ConfigError(f"optimizer.instruction_from_run: {path}: {e}") from None
        if prompt.id in ctx.pool:
            return ctx.pool.get(prompt.id)
        cand = self.add_candidate(ctx, prompt, parents=(), operation="from-run", step=0)
        return cand if cand is not None else seed

    def _bootstrap_sets(
        self, ctx: OptimizerContext, base: Candidate, step: int, screening: int
    ) -> list[tuple[Demo, ...]]:
        """Demo sets from the base prompt's own correct outputs on train examples (none
        when the budget cannot pay for bootstrapping and one screening beside the final
        selection)."""
        c = self.config
        examples = ctx.train.sample(c.bootstrap_examples, ctx.rng)
        if not self.has_room(ctx, task=len(examples) + screening):
            self.stop_early(
                ctx,
                "exemplars: no bootstrapping; the call budget left is kept for the "
                "final selection on dev",
            )
            return []
        result = self.evaluate(ctx, base, examples, BOOTSTRAP)
        correct = [demo for _, demo in shots.bootstrapped(result, examples, c.bootstrap_threshold)]
        if not correct:
            self.reject(ctx, "bootstrap: no train output of the base prompt was correct", step)
            return []
        used = {r.example_id for r in result.results}
        labelled = [ex for ex in ctx.train if ex.id not in used]
        sets = []
        for _ in range(c.num_candidates):
            demos = ctx.rng.sample(correct, min(c.k, len(correct)))
            fill_up = ctx.rng.sample(labelled, min(c.k - len(demos), len(labelled)))
            sets.append((*demos, *shots.labelled(fill_up)))
        return sets

    def _try(
        self,
        ctx: OptimizerContext,
        base: Candidate,
        sets: list[tuple[Demo, ...]],
        operation: str,
        step: int,
        subset: list[Example],
        probe: Example,
    ) -> None:
        """Adds and scores each demo set that fits the context, while the budget leaves
        room for the final selection; NoRoom (after the step's report) when it stopped
        for lack of room."""
        limit = shots.context_limit(ctx.evaluator, self.config.max_context_fraction)
        stopped = False
        for demos in sets:
            prompt = base.prompt.with_demos(demos)
            if prompt.id in ctx.pool:
                continue  # the same set drawn again: nothing new to learn
            tokens = shots.prompt_tokens(ctx.evaluator, prompt, probe)
            if tokens > limit:
                self.reject(ctx, f"demo set skipped: {tokens} tokens > {limit} allowed", step)
                continue
            if not self.has_room(ctx, task=len(subset)):
                stopped = True
                break
            cand = self.add_candidate(
                ctx, prompt, parents=(base.id,), operation=operation, step=step
            )
            if cand:
                self.evaluate(ctx, cand, subset, SUBSET)
        self.step_finished(ctx, step)
        if stopped:
            raise NoRoom(
                f"exemplars: stopped in step {step}; the call budget left is kept "
                "for the final selection on dev"
            )
