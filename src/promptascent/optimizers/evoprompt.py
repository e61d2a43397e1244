"""EvoPrompt (Guo et al., 2024, "Connecting Large Language Models with Evolutionary
Algorithms Yields Powerful Prompt Optimizers"): a population of prompts evolved with
the optimizer model as the variation operator.

Both variants share these steps:

1. Initial population: the seed plus up to `population_size - 1` new prompts, written
   by the optimizer model as paraphrases of the seed and/or instructions induced
   from train pairs (`init`), at most `init_samples` calls. Each member's fitness is
   its score on the same `eval_examples` dev examples.
2. `generations` generations of the variant's evolution step:
   - evoprompt-ga: `population_size` children, each from two parents drawn by
     roulette wheel (or tournament), crossed over and mutated in one meta-prompt;
     the best `population_size` of parents and children survive.
   - evoprompt-de: for each member, the model finds the differing parts of two
     other members, mutates them, merges them into the best member and crosses the
     result with the member; the child replaces the member if it scores higher.
3. Selection: the `final_k` best on the subset, the seed always among them, are
   scored on the whole dev split; the winner is the best there (the seed wins ties).
   The search stops before a new prompt whose screening would eat into the budget
   kept for this step (at most a third of the task calls; a smaller budget gets a
   smaller final selection: Optimizer.select_final).
"""

from __future__ import annotations

import re
from abc import abstractmethod
from collections.abc import Iterator
from typing import ClassVar, Literal

from pydantic import Field

from promptascent.data.example import Example
from promptascent.events import StepFinished
from promptascent.optimizers.base import OptimizerContext, load_template
from promptascent.optimizers.estimate import SearchEstimate
from promptascent.optimizers.options import SamplingOptions, ScreeningOptions, default
from promptascent.optimizers.parsing import TEMPLATE_MARKUP, Parsed, parse_instruction
from promptascent.optimizers.registry import register
from promptascent.optimizers.screening import ScreenThenSelect
from promptascent.prompts.prompt import Prompt
from promptascent.prompts.template import fill
from promptascent.search.pool import Candidate
from promptascent.search.population import (
    drop_duplicates,
    fitness_value,
    keep_best,
    roulette_select,
    text_key,
    tournament_select,
)
from promptascent.search.splits import SUBSET

TEMPLATES = {
    "paraphrase": "evoprompt_paraphrase.txt",
    "induce": "evoprompt_induce.txt",
    "ga": "evoprompt_ga.txt",
    "de": "evoprompt_de.txt",
}


class EvoPromptConfig(ScreeningOptions, SamplingOptions):
    """Options both variants share."""

    population_size: int = Field(
        6, ge=2, description="Prompts in the population, the seed included (paper: 10)."
    )
    generations: int = Field(3, ge=0, description="Generations of evolution (paper: 10).")
    init: Literal["mixed", "paraphrase", "induce"] = Field(
        "mixed",
        description=(
            "How the initial population is written: paraphrases of the seed, "
            "instructions induced from train pairs (APE-style), or both in turn."
        ),
    )
    init_samples: int = Field(
        10,
        ge=0,
        description=(
            "Most optimizer-model calls spent on the initial population; it stops as "
            "soon as the population is full."
        ),
    )
    demos_per_induction: int = Field(4, ge=1, description="Train pairs shown per induction.")
    temperature: float = default("temperature", 0.5, "paper: 0.5")
    # One reply holds the crossover and the mutation (GA).
    max_tokens: int = default("max_tokens", 128, "the GA reply walks two steps")


class EvoPromptGAConfig(EvoPromptConfig):
    selection: Literal["roulette", "tournament", "random"] = Field(
        "roulette",
        description=(
            "How the two parents of a child are drawn: roulette wheel by fitness "
            "(paper), tournaments of two, or uniformly."
        ),
    )


class EvoPromptDEConfig(EvoPromptConfig):
    donor: Literal["best", "random"] = Field(
        "best",
        description=(
            "Prompt 3 of the DE meta-prompt, into which the mutated differences are "
            "merged: the current best member (paper) or a random other member."
        ),
    )
    max_tokens: int = default("max_tokens", 192, "the DE reply walks four steps")


class _EvoPrompt(ScreenThenSelect):
    """The shared search; subclasses implement one generation (`evolve`)."""

    config: EvoPromptConfig
    # Rough meta-prompt size for --dry-run: template plus the prompts it holds.
    meta_prompt_tokens: ClassVar[int]

    def __init__(self, config: EvoPromptConfig | None = None) -> None:
        super().__init__(config)
        self._seen: set[str] = set()  # text keys of every candidate, to drop near-duplicates
        self._templates: dict[str, str] = {}
        self._echoes: dict[str, tuple[str, ...]] = {}

    def estimate(self, train_size: int, dev_size: int, example_tokens: int) -> SearchEstimate:
        c = self.config
        subset = min(c.eval_examples, dev_size)
        children = c.generations * c.population_size
        members = min(c.init_samples, c.population_size - 1)
        induce_tokens = 60 + c.demos_per_induction * (example_tokens + 6)
        return SearchEstimate(
            task_calls=subset * (1 + members + children) + c.final_k * dev_size,
            optimizer_calls=c.init_samples + children,
            optimizer_prompt_tokens=max(self.meta_prompt_tokens, induce_tokens),
            optimizer_max_tokens=c.max_tokens,
        )

    def explore(self, ctx: OptimizerContext, subset: list[Example]) -> None:
        self._templates = {kind: load_template(name) for kind, name in TEMPLATES.items()}
        self._echoes = {kind: echo_keys(t) for kind, t in self._templates.items()}
        seed = ctx.pool.get(ctx.seed_prompt.id)
        self._seen = {text_key(seed.prompt.instruction)}
        population = self._initial_population(ctx, seed, subset)
        self._step_finished(ctx, 0, population)
        for generation in range(1, self.config.generations + 1):
            population = self.evolve(ctx, population, subset, generation)
            self._step_finished(ctx, generation, population)

    @abstractmethod
    def evolve(
        self,
        ctx: OptimizerContext,
        population: list[Candidate],
        subset: list[Example],
        generation: int,
    ) -> list[Candidate]:
        """One generation: proposes and scores children, returns the next population."""

    def _initial_population(
        self, ctx: OptimizerContext, seed: Candidate, subset: list[Example]
    ) -> list[Candidate]:
        c = self.config
        population = [seed]
        for i in range(c.init_samples):
            if len(population) >= c.population_size:
                break
            kind = c.init if c.init != "mixed" else ("paraphrase", "induce")[i % 2]
            if kind == "paraphrase":
                meta = fill(self._templates[kind], {"instruction": seed.prompt.instruction})
                parents: tuple[Candidate, ...] = (seed,)
            else:
                demos = ctx.train.sample(c.demos_per_induction, ctx.rng)
                meta = fill(self._templates[kind], {"demos": format_demos(demos)})
                parents = ()
            child = self._offspring(
                ctx,
                kind,
                meta,
                base=seed.prompt,
                parents=parents,
                forbidden=(seed.prompt.instruction,),
                step=0,
                sample_index=i,
                subset=subset,
            )
            if child is not None:
                population.append(child)
        return population

    def _offspring(
        self,
        ctx: OptimizerContext,
        kind: str,
        meta_prompt: str,
        *,
        base: Prompt,
        parents: tuple[Candidate, ...],
        forbidden: tuple[str, ...],
        step: int,
        sample_index: int,
        subset: list[Example],
    ) -> Candidate | None:
        """Asks for one new prompt with the `kind` meta-prompt, adds it (with `base`'s
        system, demos and format) and scores it on the subset. None, counted as a
        rejected reply, when the reply is unusable or repeats a known candidate.
        Raises NoRoom, before asking, when the budget left could not screen the new
        prompt beside the final selection."""
        self.need(
            ctx,
            task=len(subset),
            optimizer=1,
            reason=f"{self.name}: stopped in step {step}; the call budget left is kept "
            "for the final selection on dev",
        )
        text = self.propose(
            ctx,
            meta_prompt,
            sample_index=sample_index,
            step=step,
            parse=lambda reply: read_offspring(
                reply, forbidden=forbidden, echoes=self._echoes[kind]
            ),
        )
        if text is None:
            return None
        key = text_key(text)
        if key in self._seen:
            self.reject(ctx, "duplicate of an earlier candidate", step)
            return None
        cand = self.add_candidate(
            ctx,
            base.with_instruction(text),
            parents=tuple(drop_duplicates(p.id for p in parents)),
            operation=kind,
            step=step,
        )
        if cand is None:
            self.reject(ctx, "not added to the pool", step)
            return None
        self._seen.add(key)
        self.evaluate(ctx, cand, subset, SUBSET)
        return cand

    def _step_finished(self, ctx: OptimizerContext, step: int, population: list[Candidate]) -> None:
        best = keep_best(population, 1, fitness)[0]
        ctx.emit(StepFinished(step, best.id, fitness_value(best.score(SUBSET))))


@register
class EvoPromptGA(_EvoPrompt):
    """EvoPrompt with a genetic algorithm: roulette-selected parents, crossover and
    mutation by the optimizer model, elitist survival."""

    name = "evoprompt-ga"
    Config = EvoPromptGAConfig
    config: EvoPromptGAConfig
    meta_prompt_tokens = 60 + 2 * 60

    def evolve(
        self,
        ctx: OptimizerContext,
        population: list[Candidate],
        subset: list[Example],
        generation: int,
    ) -> list[Candidate]:
        c = self.config
        scores = [fitness(m) for m in population]
        children: list[Candidate] = []
        for i in range(c.population_size):
            first, second = self._parents(scores, ctx)
            a, b = population[first], population[second]
            meta = fill(
                self._templates["ga"],
                {"prompt1": a.prompt.instruction, "prompt2": b.prompt.instruction},
            )
            child = self._offspring(
                ctx,
                "ga",
                meta,
                base=a.prompt,
                parents=(a, b),
                forbidden=(a.prompt.instruction, b.prompt.instruction),
                step=generation,
                sample_index=i,
                subset=subset,
            )
            if child is not None:
                children.append(child)
        survivors = drop_duplicates([*population, *children], key=lambda m: m.id)
        return keep_best(survivors, c.population_size, fitness)

    def _parents(self, scores: list[float | None], ctx: OptimizerContext) -> tuple[int, int]:
        if len(scores) < 2:  # the seed alone: crossing it with itself is a mutation
            return 0, 0
        mode = self.config.selection
        if mode == "roulette":
            first, second = roulette_select(scores, 2, ctx.rng)
        elif mode == "tournament":
            first, second = tournament_select(scores, 2, ctx.rng)
        else:
            first, second = ctx.rng.sample(range(len(scores)), 2)
        return first, second


@register
class EvoPromptDE(_EvoPrompt):
    """EvoPrompt with differential evolution: mutate the differences of two members,
    merge them into the best, cross over with the member; keep the child if better."""

    name = "evoprompt-de"
    Config = EvoPromptDEConfig
    config: EvoPromptDEConfig
    meta_prompt_tokens = 110 + 4 * 60

    def evolve(
        self,
        ctx: OptimizerContext,
        population: list[Candidate],
        subset: list[Example],
        generation: int,
    ) -> list[Candidate]:
        best = keep_best(population, 1, fitness)[0]
        # Members are replaced after the generation (the paper's new_pop): the
        # differences are always drawn from this generation's population.
        following = list(population)
        for j, member in enumerate(population):
            others = [m for m in population if m.id != member.id]
            picks = ctx.rng.sample(others, min(3, len(others)))
            while len(picks) < 3:  # a population too small for three distinct others
                picks.append(picks[-1] if picks else member)
            a, b, donor = picks
            if self.config.donor == "best":
                donor = best
            meta = fill(
                self._templates["de"],
                {
                    "prompt0": member.prompt.instruction,
                    "prompt1": a.prompt.instruction,
                    "prompt2": b.prompt.instruction,
                    "prompt3": donor.prompt.instruction,
                },
            )
            involved = (member, a, b, donor)
            child = self._offspring(
                ctx,
                "de",
                meta,
                base=member.prompt,
                parents=involved,
                forbidden=tuple(m.prompt.instruction for m in involved),
                step=generation,
                sample_index=j,
                subset=subset,
            )
            if child is None or fitness_value(fitness(child)) <= fitness_value(fitness(member)):
                continue
            following[j] = child
            if fitness_value(fitness(child)) > fitness_value(fitness(best)):
                best = child
        return following


def fitness(candidate: Candidate) -> float | None:
    """A member's fitness: its mean score on the dev subset (None if never measured)."""
    return candidate.score(SUBSET)


# Reading a child from a reply. Small models rarely close the <prompt> tag, echo the
# meta-prompt's steps, or label their answer ("2. Mutated prompt: ..."): try the tagged
# text, then labelled lines, then the whole reply, and take the first usable one.

_TAGGED = re.compile(r"<prompt>(.*?)(</prompt>|(?=<prompt>)|$)", re.IGNORECASE | re.DOTALL)
_LABELLED = re.compile(
    r"^[ \t]*(?:\d+[.)][ \t]*)?[*_]*(?:the[ \t]+)?"
    r"(?:(?:final|new|mutated|crossover|combined|improved|better|resulting)[ \t]+)?"
    r"(?:prompt|instruction)s?(?:[ \t]*\d+)?(?:[ \t]+(?:is|was))?[*_]*[ \t]*:[*_]*[ \t]*"
    r"(?P<text>\S.*)$",
    re.IGNORECASE | re.MULTILINE,
)


def read_offspring(reply: str, *, forbidden: tuple[str, ...], echoes: tuple[str, ...]) -> Parsed:
    """The new prompt in an optimizer-model reply, or why there is none. `forbidden`
    are the parents (a repeat is no child); `echoes` are text keys of the
    meta-prompt's own sentences (see `echo_keys`): a reply holding one is rejected."""
    first: Parsed | None = None
    for text in _offspring_texts(reply):
        parsed = parse_instruction(text, forbidden=forbidden)
        if parsed.text is not None and _echoes(parsed.text, echoes):
            parsed = Parsed(None, "echoes the meta-prompt")
        if parsed.text is not None:
            return parsed
        first = first or parsed
    return first or Parsed(None, "empty")


def _offspring_texts(reply: str) -> Iterator[str]:
    """Readings of a reply, most trusted first: tagged segments (the last first, as in
    the reference code), labelled lines (the last first); the reply itself only when
    it has neither (else it is the label, or the tag, around a rejected reading)."""
    readings = []
    for m in _TAGGED.finditer(reply):
        text = m.group(1).strip()
        if not m.group(2):  # unclosed: the instruction ends at the first blank line
            text = text.split("\n\n", 1)[0]
        readings.append(text)
    readings.reverse()
    readings += [m.group("text") for m in reversed(list(_LABELLED.finditer(reply)))]
    if not readings:
        yield reply
    for text in readings:
        yield f"<prompt>{text}</prompt>"


def echo_keys(template: str) -> tuple[str, ...]:
    """Text keys of a meta-prompt's own sentences (its placeholders and tags removed),
    those of four words or more: a reply that repeats one is an echo, not a prompt."""
    keys = []
    for line in template.splitlines():
        for sentence in re.split(r"(?<=[.:?!])\s+", TEMPLATE_MARKUP.sub(" ", line)):
            key = text_key(re.sub(r"^\s*\d+[.)]", "", sentence))
            if len(key.split()) >= 4:
                keys.append(key)
    return tuple(drop_duplicates(keys))


def _echoes(text: str, echoes: tuple[str, ...]) -> bool:
    padded = f" {text_key(text)} "
    return any(f" {e} " in padded for e in echoes)


def format_demos(demos: list[Example]) -> str:
    return "\n\n".join(f"Input: {ex.input_text}\nOutput: {ex.target}" for ex in demos)
