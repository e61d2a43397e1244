"""Random search: the floor every optimizer should beat.

In the spirit of Lu et al., 2024 ("Strings from the Library of Babel: Random Sampling
as a Strong Baseline for Prompt Optimisation"): candidates carry no insight into the
task, and any gain left after selecting among them on dev is what selection alone buys.

1. Separators: `separators` copies of the seed with a random short string after the
   input (where the paper puts its separators; `separator_position` may put it after
   the instruction instead): each string is 1 to `separator_tokens` pieces, every
   piece a word drawn from the train inputs or a run of 1-4 random characters, all
   drawn from the run's RNG.
2. Paraphrases: `paraphrases` rewordings of the seed by the optimizer model
   (`templates/random_paraphrase.txt`), with no feedback of any kind.
3. Selection as in APE: every candidate and the seed on the same `eval_examples` dev
   examples, then the `final_k` best (the seed always among them) on the whole dev
   split; the best there wins.
"""

from __future__ import annotations

import re
import string
from dataclasses import replace
from random import Random
from typing import Literal

from pydantic import Field

from promptascent.data.example import Example
from promptascent.optimizers.base import OptimizerContext, load_template
from promptascent.optimizers.estimate import SearchEstimate
from promptascent.optimizers.options import SamplingOptions, ScreeningOptions, default
from promptascent.optimizers.registry import register
from promptascent.optimizers.screening import ScreenThenSelect
from promptascent.prompts.prompt import Prompt
from promptascent.prompts.template import fill
from promptascent.search.pool import Candidate

# No braces (templates), quotes or backslashes: a separator must never change how the
# instruction is parsed as a template or exported.
_SEPARATOR_CHARS = string.ascii_letters + string.digits + "!#$%&*+-./:;<=>?@[]^_|~"
_WORD = re.compile(r"[A-Za-z]{2,12}")


class RandomConfig(ScreeningOptions, SamplingOptions):
    separators: int = Field(8, ge=0, description="Seed copies with a random separator.")
    separator_tokens: int = Field(
        4, ge=1, description="Most pieces (words or character runs) in one separator."
    )
    separator_position: Literal["after_input", "after_instruction"] = Field(
        "after_input",
        description="Where the separator goes: after the input, ending the user turn (as "
        "in the paper), or on a line after the instruction.",
    )
    paraphrases: int = Field(
        8, ge=0, description="Random paraphrases of the seed by the optimizer model."
    )
    # Paraphrases without feedback: the most varied sampling is the point.
    temperature: float = default("temperature", 1.0, "random paraphrases: as varied as OPRO's")


@register
class RandomSearch(ScreenThenSelect):
    name = "random"
    Config = RandomConfig
    config: RandomConfig

    def estimate(self, train_size: int, dev_size: int, example_tokens: int) -> SearchEstimate:
        c = self.config
        subset = min(c.eval_examples, dev_size)
        return SearchEstimate(
            task_calls=subset * (1 + c.separators + c.paraphrases) + c.final_k * dev_size,
            optimizer_calls=c.paraphrases,
            optimizer_prompt_tokens=40 + 2 * c.max_tokens,
            optimizer_max_tokens=c.max_tokens,
        )

    def explore(self, ctx: OptimizerContext, subset: list[Example]) -> None:
        c = self.config
        seed = ctx.pool.get(ctx.seed_prompt.id)
        vocabulary = sorted({w for ex in ctx.train for w in _WORD.findall(ex.input_text)})
        fresh: list[Candidate] = []
        for _ in range(c.separators):
            sep = random_separator(ctx.rng, vocabulary, c.separator_tokens)
            prompt = self._with_separator(ctx, sep)
            cand = self.add_candidate(
                ctx, prompt, parents=(seed.id,), operation="separator", step=1
            )
            if cand:
                fresh.append(cand)
        self.screen(ctx, fresh, subset, step=1, reason=_stopped(1))

        template = load_template("random_paraphrase.txt")
        fresh = []
        for i in range(c.paraphrases):
            if not self.has_room(ctx, task=len(subset), optimizer=1):
                break
            text = self.propose(
                ctx,
                fill(template, {"instruction": ctx.seed_prompt.instruction}),
                sample_index=i,
                step=2,
                forbidden=(ctx.seed_prompt.instruction,),
            )
            if not text:
                continue
            prompt = ctx.seed_prompt.with_instruction(text)
            if prompt.id in ctx.pool:
                self.reject(ctx, "duplicate of an earlier candidate", 2)
                continue
            cand = self.add_candidate(
                ctx, prompt, parents=(seed.id,), operation="paraphrase", step=2
            )
            if cand:
                fresh.append(cand)
        self.screen(ctx, fresh, subset, step=2, reason=_stopped(2))

    def _with_separator(self, ctx: OptimizerContext, sep: str) -> Prompt:
        """The seed with `sep` after the input (ending the user turn, as the paper puts
        separators at the end of the input) or after the instruction. A kept output
        format (a user constraint) leaves only the place after the instruction."""
        seed = ctx.seed_prompt
        if (
            self.config.separator_position == "after_input"
            and not ctx.constraints.keep_output_format
        ):
            fmt = seed.output_format
            return replace(seed, output_format=f"{fmt}\n{sep}" if fmt else sep, meta={})
        base = seed.instruction.rstrip()
        # raw: the seed's instruction is a template already, and `sep` has no braces
        return seed.with_instruction(f"{base}\n{sep}" if base else sep, raw=True)


def _stopped(step: int) -> str:
    return (
        f"random: stopped in step {step}; the call budget left is kept for the final "
        "selection on dev"
    )


def random_separator(rng: Random, vocabulary: list[str], max_pieces: int) -> str:
    """1 to `max_pieces` pieces, each a vocabulary word (half the time, when there is
    a vocabulary) or 1-4 random characters, joined by spaces."""
    pieces = []
    for _ in range(rng.randint(1, max_pieces)):
        if vocabulary and rng.random() < 0.5:
            pieces.append(rng.choice(vocabulary))
        else:
            pieces.append("".join(rng.choice(_SEPARATOR_CHARS) for _ in range(rng.randint(1, 4))))
    return " ".join(pieces)
