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

The budget (not in the paper): a generation starts only if the budget left pays for
its race's first block and the final selection (at most a third of the task calls);
a race stops before a block the budget left cannot pay beside the final selection.
When not even the first generation fits, the initial population (as many prompts as
the budget can screen) is only screened on the first block, and the final selection
chooses among the best of it. A smaller budget gets a smaller final selection
(Optimizer.select_final).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from functools import partial

from pydantic import Field

from promptascent.data.example import Dataset, Example
from promptascent.evaluation.result import EvaluationResult, ExampleResult
from promptascent.events import StepFinished
from promptascent.optimizers.base import (
    Optimizer,
    OptimizerContext,
    OptimizerOutcome,
    load_template,
    scored_ids,
)
from promptascent.optimizers.estimate import SearchEstimate
from promptascent.optimizers.options import (
    OptimizerConfig,
    SamplingOptions,
    SelectionOptions,
    default,
)
from promptascent.optimizers.registry import register
from promptascent.prompts.answer_format import answer_format_line
from promptascent.prompts.prompt import Demo, Prompt
from promptascent.prompts.template import fill
from promptascent.search.objective import prompt_tokens
from promptascent.search.pareto import ParetoPoint, pareto_front
from promptascent.search.pool import Candidate
from promptascent.search.racing import race
from promptascent.search.splits import DEV, block, is_block


class CAPOConfig(SelectionOptions, SamplingOptions):
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
    init_demos: int = Field(
        5, ge=1, description="Train pairs shown when inducing an initial instruction."
    )
    # The seed always joins the survivors: final_k counts the survivors only.
    final_k: int = default(
        "final_k",
        3,
        "the seed comes on top",
        description="Best survivors scored on the whole dev split, with the seed.",
    )


@register
class CAPO(Optimizer):
    name = "capo"
    Config = CAPOConfig
    config: CAPOConfig
    # Every raced (or screened) candidate is scored on the first block first.
    screening_split = block(0)

    def __init__(self, config: OptimizerConfig | None = None) -> None:
        super().__init__(config)
        self._tokens: dict[str, int] = {}
        self._reference_tokens = 1
        self._blocks: list[tuple[Example, ...]] = []
        self._block_of: dict[str, int] = {}
        self._shots: list[Demo] = []
        self._task = ""
        self.front: list[ParetoPoint] = []

    def estimate(self, train_size: int, dev_size: int, example_tokens: int) -> SearchEstimate:
        c = self.config
        raced = min(dev_size, c.max_blocks * c.block_size)
        candidates = c.population_size + c.generations * c.crossovers_per_iter
        induce = c.init_demos * (example_tokens + 6)
        return SearchEstimate(
            task_calls=candidates * raced + (c.final_k + 1) * dev_size,
            optimizer_calls=c.population_size - 1 + 2 * c.generations * c.crossovers_per_iter,
            optimizer_prompt_tokens=140 + max(induce, 2 * c.max_tokens),
            optimizer_max_tokens=c.max_tokens,
            max_demos=c.upper_shots,
        )

    def choose_winner(self, ctx: OptimizerContext, split: str) -> Candidate | None:
        """The run's objective less CAPO's own length penalty: score - the task's
        length penalty - `length_penalty` * tokens / tokens of the longest initial
        prompt. (When nothing reached a final selection, e.g. the budget ended in a
        race, the split is the first block, which every raced candidate ran.)"""
        return ctx.pool.best(split, lambda prompt: self._penalty(ctx, prompt))

    def optimize(self, ctx: OptimizerContext) -> OptimizerOutcome:
        """As the base; then `front` holds the Pareto front on the selection split."""
        outcome = super().optimize(ctx)
        tokens = partial(self._prompt_tokens, ctx)
        self.front = capo_front(ctx.pool.all(), tokens, outcome.selection_split)
        return outcome

    def search(self, ctx: OptimizerContext) -> None:
        c = self.config
        self._tokens = {}
        self._blocks = _blocks(ctx.dev, c.block_size, ctx)
        self._block_of = {b[0].id: i for i, b in enumerate(self._blocks)}
        self._shots = [Demo(ex.input, ex.target) for ex in ctx.train if ex.target is not None]
        self._task = _task_text(ctx)
        seed = ctx.pool.get(ctx.seed_prompt.id)
        self._reference_tokens = max(1, self._prompt_tokens(ctx, seed.prompt))
        # Racing needs the whole initial population and the first offspring on the
        # first block beside the final selection; a smaller budget only screens as
        # much of the initial population as it can pay for.
        rest = len(ctx.dev) - (len(self._blocks[0]) if self._blocks else 0)
        racing = c.generations == 0 or self._generation_fits(
            ctx,
            unscored=c.population_size,
            final_cost=min(c.final_k + 1, c.population_size) * rest,
            optimizer=c.population_size - 1,
        )
        size = c.population_size - 1 if racing else self._screenable(ctx)
        population = [seed, *self._initial_population(ctx, seed, size)]
        self._reference_tokens = max(self._prompt_tokens(ctx, x.prompt) for x in population)
        if not racing:
            self.stop_early(
                ctx,
                "capo: stopped before generation 1; the call budget left only screens the "
                "initial population on the first dev block, beside the final selection",
            )
            population = self._screen(ctx, population)
        generations = c.generations if racing else 0
        for step in range(1, generations + 1):
            # Keep the final selection paid for: the race's first block (offspring and
            # any member not raced yet) and the finalists on the rest of dev.
            unscored = sum(block(0) not in x.evaluations for x in population)
            if not self._generation_fits(
                ctx, unscored=unscored, final_cost=self._final_cost(seed, population)
            ):
                self.stop_early(
                    ctx,
                    f"capo: stopped before generation {step}; the call budget left is kept "
                    "for the final selection on dev",
                )
                break
            offspring = self._offspring(ctx, population, step)
            population = self._race(ctx, [*population, *offspring], step)
        self._select(ctx, population[: c.final_k], step=c.generations + 1)

    def _generation_fits(
        self, ctx: OptimizerContext, *, unscored: int, final_cost: int, optimizer: int = 0
    ) -> bool:
        """Whether the budget left pays for a generation's offspring (and `optimizer`
        more optimizer calls), the first block of its race for them and the `unscored`
        candidates not raced yet, and the final selection: `final_cost` task calls, or
        the share the search keeps for it."""
        c = self.config
        first = len(self._blocks[0]) if self._blocks else 0
        return self.affords(
            ctx,
            task=(unscored + c.crossovers_per_iter) * first,
            optimizer=2 * c.crossovers_per_iter + optimizer,
            final=final_cost,
        )

    def _final_cost(self, seed: Candidate, population: list[Candidate]) -> int:
        """Task calls the final selection would take after the next race: the dev
        examples the seed and the current finalists were not scored on yet, beyond the
        first block (every raced candidate is scored on it)."""
        first = {ex.id for ex in self._blocks[0]} if self._blocks else set()
        finalists = {x.id: x for x in [seed, *population[: self.config.final_k]]}
        total = 0
        for cand in finalists.values():
            seen = first | {
                r.example_id
                for split, ev in cand.evaluations.items()
                if is_block(split)
                for r in ev.results
            }
            total += sum(len(b) for b in self._blocks) - len(seen)
        return total

    def _final_after(self, blocks: int) -> int:
        """What the final selection would take once the finalists have been scored on
        the first `blocks` blocks."""
        seen = sum(len(b) for b in self._blocks[:blocks])
        rest = sum(len(b) for b in self._blocks) - seen
        return (self.config.final_k + 1) * rest

    def _screenable(self, ctx: OptimizerContext) -> int:
        """How many initial prompts besides the seed the budget left can screen on the
        first block, beside the final selection."""
        c = self.config
        left = self.task_calls_left(ctx, final=self._final_after(1))
        if left is None or not self._blocks:
            return c.population_size - 1
        room = left // len(self._blocks[0]) - 1
        return max(0, min(c.population_size - 1, room))

    def _screen(self, ctx: OptimizerContext, population: list[Candidate]) -> list[Candidate]:
        """The initial population scored on the first block (the seed first) while the
        budget left pays for it beside the final selection: those scored, best
        objective first (ties keep the order)."""
        if not self._blocks:
            return population
        first = self._blocks[0]
        screened = []
        for cand in population:
            if not self.affords(ctx, task=len(first), final=self._final_after(1)):
                break
            self._block_scores(ctx, cand, first)
            screened.append(cand)
        penalty = {x.id: self._penalty(ctx, x.prompt) for x in screened}
        return sorted(screened, key=lambda x: -_finite_or_zero(self._seen_mean(x) - penalty[x.id]))

    # Steps

    def _initial_population(
        self, ctx: OptimizerContext, seed: Candidate, size: int
    ) -> list[Candidate]:
        """Up to `size` new prompts besides the seed (fewer when replies repeat)."""
        c = self.config
        induce, paraphrase = load_template("capo_induce.txt"), load_template("capo_mutate.txt")
        out: list[Candidate] = []
        for i in range(size):
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
            forbidden = (seed.prompt.instruction,)
            text = self.propose(ctx, meta, sample_index=i, step=0, forbidden=forbidden)
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
                child = self.propose(ctx, meta, sample_index=i, step=step, forbidden=(m, f))
            base = child or m
            meta = fill(mutate, {"task": self._task, "instruction": base})
            mutated = self.propose(ctx, meta, sample_index=i, step=step, forbidden=(base,))
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

        def score(cid: str, examples: Sequence[Example]) -> list[float | None]:
            return self._block_scores(ctx, by_id[cid], examples)

        def afford(alive: Sequence[str], k: int) -> bool:
            # the block for those still racing, and the final selection after it
            need = sum(
                sum(ex.id not in scored_ids(by_id[cid]) for ex in self._blocks[k]) for cid in alive
            )
            return self.affords(ctx, task=need, final=self._final_after(k + 1))

        result = race(
            list(by_id),
            self._blocks,
            score,
            survivors=self.config.population_size,
            alpha=self.config.alpha,
            max_blocks=self.config.max_blocks,
            afford=afford,
        )
        population = [by_id[i] for i in result.survivors]
        leader = population[0]
        ctx.emit(StepFinished(step, leader.id, _finite_or_zero(self._seen_mean(leader))))
        return population

    def _select(self, ctx: OptimizerContext, finalists: list[Candidate], step: int) -> None:
        """The seed and `finalists` in the final selection (the blocks in race order:
        what they were raced on comes first when it covers only part of dev)."""
        order = [ex for b in self._blocks for ex in b]
        self.select_final(ctx, finalists, others=len(finalists), screened=order)
        split = self.final_split or block(0)
        best = self.choose_winner(ctx, split)
        if best is not None:
            ctx.emit(StepFinished(step, best.id, best.score(split) or 0.0))

    def score_finalist(
        self, ctx: OptimizerContext, candidate: Candidate, examples: list[Example], split: str
    ) -> None:
        """The whole dev split is assembled from the blocks, as raced; part of it is
        scored as any split (results already measured are reused)."""
        if split == DEV:
            self._score_on_dev(ctx, candidate)
        else:
            self.evaluate(ctx, candidate, examples, split)

    # Scoring

    def _block_scores(
        self, ctx: OptimizerContext, cand: Candidate, examples: Sequence[Example]
    ) -> list[float | None]:
        """Per-example objective on one block (scored once per candidate and block)."""
        split = block(self._block_of[examples[0].id])
        result = self.evaluate(ctx, cand, list(examples), split)
        penalty = self._penalty(ctx, cand.prompt)
        values = (r.selection_value(result.select_by) for r in result.results)
        return [None if v is None else v - penalty for v in values]

    def _score_on_dev(self, ctx: OptimizerContext, cand: Candidate) -> None:
        """The whole dev split, assembled from every block; blocks already scored in
        races are reused, not paid for again."""
        if DEV in cand.evaluations:
            return
        results: list[ExampleResult] = []
        for i, examples in enumerate(self._blocks):
            results.extend(self.evaluate(ctx, cand, list(examples), block(i)).results)
        ev = EvaluationResult(cand.id, tuple(results), ctx.evaluator.select_by)
        ctx.pool.record(cand, DEV, ev)

    def _seen_mean(self, cand: Candidate) -> float:
        """Raw mean score over the blocks the candidate was scored on."""
        scores = [
            s
            for split, ev in cand.evaluations.items()
            if is_block(split)
            for s in ev.selection_scores
        ]
        return math.fsum(scores) / len(scores) if scores else math.nan

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

    def _add(
        self,
        ctx: OptimizerContext,
        prompt: Prompt,
        parents: tuple[str, ...],
        operation: str,
        step: int,
    ) -> Candidate | None:
        return self.add_candidate(
            ctx, prompt, parents=parents, operation=operation, step=step, count_duplicate=True
        )

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
