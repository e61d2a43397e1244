"""CAPO: Cost-Aware Prompt Optimization (Zehle, Schlager, Heiß and Feurer, 2025,
"CAPO: Cost-Aware Prompt Optimization", AutoML 2025; reference implementation
automl/promptolution, optimizers/capo.py).

An evolutionary search over instruction and few-shot examples:

1. Initial population: the seed prompt, plus `population_size - 1` prompts whose
   instructions are induced from train pairs or paraphrase the seed (alternately),
   each with 0 to `upper_shots` random train pairs as demos.
2. Each generation: `crossovers_per_iter` offspring. Two random parents; the
   optimizer model merges their instructions (crossover) and rephrases the result
   (mutation); the child's demos are half of the parents' pooled demos, then one is
   added, removed or none changed (a third of the time each), then shuffled. The
   meta-prompts carry the task description.
3. Racing: parents and offspring are scored on successive blocks of dev examples
   (the same for all); a candidate is dropped once `population_size` others are
   significantly better (one-sided paired t-test at `alpha`) on the examples seen
   so far; the race ends at `population_size` survivors or `max_blocks` blocks.
   Scores are penalized by length: objective = score - length_penalty * prompt
   tokens / tokens of the longest initial prompt.
4. Selection: the seed and the `final_k` best survivors are scored on the whole dev
   split (the blocks already seen are not paid for again); the best objective wins.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace

from pydantic import Field

from promptascent.data.example import Dataset, Example
from promptascent.evaluation.result import EvaluationResult, ExampleResult
from promptascent.events import CandidateEvaluated, StepFinished
from promptascent.optimizers.base import (
    DEV,
    Optimizer,
    OptimizerConfig,
    OptimizerContext,
    OptimizerOutcome,
    has_room,
    load_template,
)
from promptascent.optimizers.registry import register
from promptascent.prompts.answer_format import answer_format_line
from promptascent.prompts.prompt import Demo, Prompt
from promptascent.prompts.template import fill
from promptascent.search.objective import prompt_tokens
from promptascent.search.pareto import ParetoPoint, pareto_front
from promptascent.search.pool import Candidate
from promptascent.search.racing import race

BLOCK = "dev-block-{}"


class CAPOConfig(OptimizerConfig):
    population_size: int = Field(
        10, ge=2, description="Prompts kept after each race; also the initial population."
    )
    generations: int = Field(10, ge=0, description="Generations of crossover, mutation, racing.")
    crossovers_per_iter: int = Field(4, ge=1, description="Offspring made per generation.")
    upper_shots: int = Field(5, ge=0, description="Most few-shot examples in one prompt.")
    block_size: int = Field(30, ge=1, description="Dev examples per racing block.")
    max_blocks: int = Field(10, ge=1, description="Most blocks one race evaluates.")
    alpha: float = Field(
        0.2,
        gt=0.0,
        lt=0.5,
        description="Significance level of the one-sided paired t-test that drops candidates.",
    )
    length_penalty: float = Field(
        0.05,
        ge=0.0,
        description=(
            "Objective = score - length_penalty * prompt tokens / tokens of the longest "
            "initial prompt."
        ),
    )
    final_k: int = Field(
        3, ge=1, description="Best survivors scored on the whole dev split, with the seed."
    )
    init_demos: int = Field(
        5, ge=1, description="Train pairs shown when inducing an initial instruction."
    )
    temperature: float = Field(0.9, ge=0.0, le=2.0, description="Optimizer-model temperature.")
    max_tokens: int = Field(96, ge=8, description="Optimizer-model reply limit.")


@register
class CAPO(Optimizer):
    name = "capo"
    Config = CAPOConfig
    config: CAPOConfig

    def __init__(self, config: OptimizerConfig | None = None) -> None:
        super().__init__(config)
        self._tokens: dict[str, int] = {}
        self._reference_tokens = 1
        self._blocks: list[tuple[Example, ...]] = []
        self._block_of: dict[str, int] = {}
        self._shots: list[Demo] = []
        self._task = ""
        self.front: list[ParetoPoint] = []

    def estimate(self, train_size: int, dev_size: int, example_tokens: int) -> dict[str, int]:
        c = self.config
        raced = min(dev_size, c.max_blocks * c.block_size)
        candidates = c.population_size + c.generations * c.crossovers_per_iter
        induce = c.init_demos * (example_tokens + 6)
        return {
            "task": candidates * raced + (c.final_k + 1) * dev_size,
            "optimizer": c.population_size - 1 + 2 * c.generations * c.crossovers_per_iter,
            "optimizer_prompt_tokens": 140 + max(induce, 2 * c.max_tokens),
            "optimizer_max_tokens": c.max_tokens,
        }

    def optimize(self, ctx: OptimizerContext) -> OptimizerOutcome:
        """As the base, but the winner is the best objective (score minus length
        penalty) on the dev split, not the best raw score."""
        outcome = super().optimize(ctx)
        self.front = capo_front(ctx.pool.all(), lambda p: self._prompt_tokens(ctx, p))
        winner = self._winner(ctx, DEV)
        if winner is None and self._blocks:
            # Nothing reached the whole dev split (the budget ended in a race): the
            # first block, which every raced candidate was scored on, decides.
            split = BLOCK.format(0)
            winner = self._winner(ctx, split)
            if winner is not None:
                outcome = replace(outcome, selection_split=split)
        if winner is not None and winner is not outcome.best:
            outcome = replace(outcome, best=winner)
        return outcome

    def search(self, ctx: OptimizerContext) -> None:
        c = self.config
        self._tokens = {}
        self._blocks = _blocks(ctx.dev, c.block_size, ctx)
        self._block_of = {block[0].id: i for i, block in enumerate(self._blocks)}
        self._shots = [Demo(ex.input, ex.target) for ex in ctx.train if ex.target is not None]
        self._task = _task_text(ctx)
        seed = ctx.pool.get(ctx.seed_prompt.id)
        self._reference_tokens = max(1, self._prompt_tokens(ctx, seed.prompt))
        population = [seed, *self._initial_population(ctx, seed)]
        self._reference_tokens = max(self._prompt_tokens(ctx, x.prompt) for x in population)
        for step in range(1, c.generations + 1):
            # Keep the final selection paid for: offspring screened on the first block
            # at least, and the finalists scored on the rest of dev.
            need = c.crossovers_per_iter * len(self._blocks[0]) if self._blocks else 0
            if not has_room(
                ctx,
                task=need + self._final_cost(seed, population),
                optimizer=2 * c.crossovers_per_iter,
            ):
                self.stop_early(
                    ctx,
                    f"capo: stopped before generation {step}; the call budget left is kept "
                    "for the final selection on dev",
                )
                break
            offspring = self._offspring(ctx, population, step)
            population = self._race(ctx, [*population, *offspring], step)
        self._select(ctx, seed, population[: c.final_k], step=c.generations + 1)

    def _final_cost(self, seed: Candidate, population: list[Candidate]) -> int:
        """Task calls the final selection would take now: the dev examples the seed and
        the current finalists were not scored on yet."""
        finalists = {x.id: x for x in [seed, *population[: self.config.final_k]]}
        total = 0
        for cand in finalists.values():
            seen = {
                r.example_id
                for split, ev in cand.evaluations.items()
                if split.startswith("dev-block-")
                for r in ev.results
            }
            total += sum(len(b) for b in self._blocks) - len(seen)
        return total

    # Steps

    def _initial_population(self, ctx: OptimizerContext, seed: Candidate) -> list[Candidate]:
        c = self.config
        induce, paraphrase = load_template("capo_induce.txt"), load_template("capo_mutate.txt")
        out: list[Candidate] = []
        for i in range(c.population_size - 1):
            parents: tuple[str, ...]
            if i % 2 == 0 and self._shots:
                demos = ctx.rng.sample(self._shots, min(c.init_demos, len(self._shots)))
                meta = fill(induce, {"task": self._task, "demos": _format_demos(demos)})
                operation, parents = "induce", ()
            else:
                meta = fill(
                    paraphrase, {"task": self._task, "instruction": seed.prompt.instruction}
                )
                operation, parents = "paraphrase", (seed.id,)
            text = self._propose(ctx, meta, i, step=0, forbidden=(seed.prompt.instruction,))
            shots = tuple(self._random_shots(ctx, ctx.rng.randint(0, c.upper_shots), ()))
            if text is None:  # fall back to a variant in the demos only
                prompt, operation, parents = seed.prompt.with_demos(shots), "shots", (seed.id,)
            else:
                prompt = ctx.seed_prompt.with_instruction(text).with_demos(shots)
            cand = self._add(ctx, prompt, parents, operation, step=0)
            if cand is not None:
                out.append(cand)
        return out

    def _offspring(
        self, ctx: OptimizerContext, population: list[Candidate], step: int
    ) -> list[Candidate]:
        c = self.config
        crossover, mutate = load_template("capo_crossover.txt"), load_template("capo_mutate.txt")
        out: list[Candidate] = []
        for i in range(c.crossovers_per_iter):
            if len(population) >= 2:
                mother, father = ctx.rng.sample(population, 2)
            else:
                mother = father = population[0]
            m, f = mother.prompt.instruction, father.prompt.instruction
            child = None
            if mother is not father:
                meta = fill(crossover, {"task": self._task, "mother": m, "father": f})
                child = self._propose(ctx, meta, i, step=step, forbidden=(m, f))
            base = child or m
            meta = fill(mutate, {"task": self._task, "instruction": base})
            mutated = self._propose(ctx, meta, i, step=step, forbidden=(base,))
            shots = self._mutate_shots(ctx, self._cross_shots(ctx, mother, father))
            text = mutated or child
            if text is None:  # both replies unusable: the mother with the new demos
                prompt = mother.prompt.with_demos(shots)
            else:
                prompt = ctx.seed_prompt.with_instruction(text).with_demos(shots)
            operation = "+".join(
                op for op, done in (("crossover", child), ("mutate", mutated)) if done
            )
            parents = tuple(dict.fromkeys((mother.id, father.id)))
            cand = self._add(ctx, prompt, parents, operation or "shots", step=step)
            if cand is not None:
                out.append(cand)
        return out

    def _race(
        self, ctx: OptimizerContext, candidates: list[Candidate], step: int
    ) -> list[Candidate]:
        """The survivors of a race over the dev blocks, best first."""
        by_id = {x.id: x for x in candidates}

        def score(cid: str, block: Sequence[Example]) -> list[float | None]:
            return self._block_scores(ctx, by_id[cid], block)

        result = race(
            list(by_id),
            self._blocks,
            score,
            survivors=self.config.population_size,
            alpha=self.config.alpha,
            max_blocks=self.config.max_blocks,
        )
        population = [by_id[i] for i in result.survivors]
        leader = population[0]
        ctx.emit(StepFinished(step, leader.id, _finite_or_zero(self._seen_mean(leader))))
        return population

    def _select(
        self, ctx: OptimizerContext, seed: Candidate, finalists: list[Candidate], step: int
    ) -> None:
        # The seed first: if the budget ends mid-way, the seed is the fallback winner.
        for cand in [seed, *(x for x in finalists if x is not seed)]:
            self._score_on_dev(ctx, cand)
        best = self._winner(ctx)
        if best is not None:
            ctx.emit(StepFinished(step, best.id, best.score(DEV) or 0.0))

    # Scoring

    def _block_scores(
        self, ctx: OptimizerContext, cand: Candidate, block: Sequence[Example]
    ) -> list[float | None]:
        """Per-example objective on one block (scored once per candidate and block)."""
        split = BLOCK.format(self._block_of[block[0].id])
        result = self.evaluate(ctx, cand, list(block), split)
        penalty = self._penalty(ctx, cand.prompt)
        values = (r.selection_value(result.select_by) for r in result.results)
        return [None if v is None else v - penalty for v in values]

    def _score_on_dev(self, ctx: OptimizerContext, cand: Candidate) -> None:
        """The whole dev split, assembled from every block; blocks already scored in
        races are reused, not paid for again."""
        if DEV in cand.evaluations:
            return
        results: list[ExampleResult] = []
        for i, block in enumerate(self._blocks):
            results.extend(self.evaluate(ctx, cand, list(block), BLOCK.format(i)).results)
        ev = EvaluationResult(cand.id, tuple(results), ctx.evaluator.select_by)
        cand.evaluations[DEV] = ev
        ctx.emit(CandidateEvaluated(cand.id, DEV, ev.mean, ev.n, ev.unparsed, ev.errors))

    def _seen_mean(self, cand: Candidate) -> float:
        """Raw mean score over the blocks the candidate was scored on."""
        scores = [
            s
            for split, ev in cand.evaluations.items()
            if split.startswith("dev-block-")
            for s in ev.selection_scores
        ]
        return math.fsum(scores) / len(scores) if scores else math.nan

    def _winner(self, ctx: OptimizerContext, split: str = DEV) -> Candidate | None:
        """The best objective on `split`; ties go to the earlier candidate."""
        best: Candidate | None = None
        best_value = -math.inf
        for cand in ctx.pool.all():
            score = cand.score(split)
            if score is None:
                continue
            value = score - self._penalty(ctx, cand.prompt)
            if value > best_value:
                best, best_value = cand, value
        return best

    def _penalty(self, ctx: OptimizerContext, prompt: Prompt) -> float:
        tokens = self._prompt_tokens(ctx, prompt)
        return self.config.length_penalty * tokens / self._reference_tokens

    def _prompt_tokens(self, ctx: OptimizerContext, prompt: Prompt) -> int:
        """Tokens of the prompt without an input, by the task model's tokenizer (exact
        for the embedded model, a byte upper bound over HTTP)."""
        if prompt.id not in self._tokens:
            self._tokens[prompt.id] = prompt_tokens(ctx.evaluator.task_model, prompt)
        return self._tokens[prompt.id]

    # Operators

    def _propose(
        self,
        ctx: OptimizerContext,
        meta_prompt: str,
        sample_index: int,
        *,
        step: int,
        forbidden: tuple[str, ...],
    ) -> str | None:
        return self.propose(
            ctx,
            meta_prompt,
            temperature=self.config.temperature,
            max_tokens=self.config.max_tokens,
            sample_index=sample_index,
            step=step,
            seed=ctx.rng.randrange(2**31),
            forbidden=forbidden,
        )

    def _add(
        self,
        ctx: OptimizerContext,
        prompt: Prompt,
        parents: tuple[str, ...],
        operation: str,
        step: int,
    ) -> Candidate | None:
        cand = self.add_candidate(ctx, prompt, parents=parents, operation=operation, step=step)
        if cand is None:
            self.reject(ctx, "duplicate candidate", step)
        return cand

    def _random_shots(self, ctx: OptimizerContext, k: int, exclude: Sequence[Demo]) -> list[Demo]:
        available = [d for d in self._shots if d not in exclude]
        return ctx.rng.sample(available, min(k, len(available)))

    def _cross_shots(
        self, ctx: OptimizerContext, mother: Candidate, father: Candidate
    ) -> list[Demo]:
        """Half of the parents' demos pooled (as the reference implementation)."""
        pooled: list[Demo] = []
        for d in (*mother.prompt.demos, *father.prompt.demos):
            if d not in pooled:
                pooled.append(d)
        k = (len(mother.prompt.demos) + len(father.prompt.demos)) // 2
        return ctx.rng.sample(pooled, min(k, len(pooled)))

    def _mutate_shots(self, ctx: OptimizerContext, shots: list[Demo]) -> tuple[Demo, ...]:
        """Adds one train pair, removes one, or neither (a third each), then shuffles."""
        p = ctx.rng.random()
        out = list(shots)
        if p < 1 / 3 and len(out) < self.config.upper_shots:
            out += self._random_shots(ctx, 1, out)
        elif 1 / 3 <= p < 2 / 3 and out:
            out.pop(ctx.rng.randrange(len(out)))
        ctx.rng.shuffle(out)
        return tuple(out)


def capo_front(
    candidates: Iterable[Candidate], tokens: Callable[[Prompt], int], split: str = DEV
) -> list[ParetoPoint]:
    """The Pareto front of (score on `split`, prompt tokens) over the candidates scored
    on it, in pool order."""
    points = []
    for cand in candidates:
        score = cand.score(split)
        if score is not None:
            points.append(ParetoPoint(cand.id, score, float(tokens(cand.prompt))))
    return pareto_front(points)


def _blocks(dev: Dataset, size: int, ctx: OptimizerContext) -> list[tuple[Example, ...]]:
    """The dev split shuffled once and cut into blocks of `size` (the last may be short)."""
    order = dev.sample(len(dev), ctx.rng)
    return [tuple(order[i : i + size]) for i in range(0, len(order), size)]


def _task_text(ctx: OptimizerContext) -> str:
    """What the meta-prompts say the task is: its description (else the seed
    instruction), with the allowed answers when the task has choices."""
    text = ctx.task_description.strip() or ctx.seed_prompt.instruction.strip()
    line = answer_format_line(list(ctx.train))
    return f"{text}\n{line}" if line else text


def _format_demos(demos: list[Demo]) -> str:
    return "\n\n".join(f"Input: {_input_text(d)}\nOutput: {d.output}" for d in demos)


def _input_text(demo: Demo) -> str:
    if isinstance(demo.input, str):
        return demo.input
    return "\n".join(f"{k}: {v}" for k, v in demo.input.items())


def _finite_or_zero(x: float) -> float:
    return x if math.isfinite(x) else 0.0
