"""OPRO: Optimization by PROmpting (Yang et al., 2023, "Large Language Models as
Optimizers").

1. The seed is scored on a fixed dev subset (`eval_examples`, the same for every
   candidate, so scores are paired).
2. Each step builds one meta-prompt: the trajectory (the `max_history` best scored
   instructions with their scores as integers 0-100, sorted ascending so the best
   comes last) and `exemplars` random train inputs with their targets. The optimizer
   model samples `candidates_per_step` new instructions from it at `temperature`;
   each is scored on the subset and joins the trajectory.
3. After `steps` steps, the `final_k` best on the subset (the seed always among them)
   are scored on the whole dev split; the winner is the best there.

The search stops stepping early when the call budget left would not cover another
step and the final selection (at most a third of the task calls; a smaller budget
gets a smaller final selection), so a budget-bound run still ends with a measured
winner.
"""

from __future__ import annotations

import re

from pydantic import Field

from promptascent.data.example import Example
from promptascent.llm.types import CompletionRequest, Message
from promptascent.optimizers.base import OptimizerContext, load_template
from promptascent.optimizers.estimate import SearchEstimate
from promptascent.optimizers.options import SamplingOptions, ScreeningOptions, default
from promptascent.optimizers.parsing import parse_instruction
from promptascent.optimizers.registry import register
from promptascent.optimizers.screening import NoRoom, ScreenThenSelect
from promptascent.prompts.template import fill
from promptascent.search.pool import Candidate
from promptascent.search.splits import SUBSET

_EXEMPLAR_CHARS = 600  # a train input longer than this is cut in the meta-prompt


class OPROConfig(ScreeningOptions, SamplingOptions):
    steps: int = Field(
        10,
        ge=1,
        description="Optimization steps (the paper runs up to 200; the budget usually ends "
        "the search sooner).",
    )
    candidates_per_step: int = Field(
        8, ge=1, description="Instructions sampled from each step's meta-prompt."
    )
    max_history: int = Field(
        20, ge=1, description="Best scored instructions shown in the meta-prompt."
    )
    exemplars: int = Field(
        3, ge=0, description="Train inputs with their targets shown in each meta-prompt."
    )
    # The paper samples the optimizer at 1.0 for diverse instructions.
    temperature: float = default("temperature", 1.0, "paper: 1.0")


@register
class OPRO(ScreenThenSelect):
    name = "opro"
    Config = OPROConfig
    config: OPROConfig

    def estimate(self, train_size: int, dev_size: int, example_tokens: int) -> SearchEstimate:
        c = self.config
        proposals = c.steps * c.candidates_per_step
        subset = min(c.eval_examples, dev_size)
        return SearchEstimate(
            task_calls=subset * (1 + proposals) + c.final_k * dev_size,
            optimizer_calls=proposals,
            optimizer_prompt_tokens=80
            + c.max_history * (c.max_tokens + 6)
            + c.exemplars * (example_tokens + 6),
            optimizer_max_tokens=c.max_tokens,
        )

    def explore(self, ctx: OptimizerContext, subset: list[Example]) -> None:
        c = self.config
        template = load_template("opro_meta.txt")
        for step in range(1, c.steps + 1):
            # A budget too small for a whole step gets a smaller one, not none.
            per_step = next(
                (
                    n
                    for n in range(c.candidates_per_step, 0, -1)
                    if self.has_room(ctx, task=n * len(subset), optimizer=n)
                ),
                0,
            )
            if not per_step:
                raise NoRoom(
                    f"opro: stopped before step {step}; the call budget left is kept "
                    "for the final selection on dev"
                )
            history = list(reversed(ctx.pool.ranked(SUBSET)[: c.max_history]))
            exemplars = ctx.train.sample(c.exemplars, ctx.rng)
            history, meta_prompt = self._fit(ctx, template, history, exemplars)
            forbidden = tuple(x.prompt.instruction for x in history)
            parents = tuple(x.id for x in history)
            request_seed = ctx.rng.randrange(2**31)
            fresh: list[Candidate] = []
            for i in range(per_step):
                reply = self.ask(ctx, meta_prompt, sample_index=i, step=step, seed=request_seed)
                if reply is None:
                    continue
                parsed = parse_instruction(_unwrap_trajectory_echo(reply), forbidden=forbidden)
                if parsed.text is None:
                    self.reject(ctx, parsed.reason, step)
                    continue
                prompt = ctx.seed_prompt.with_instruction(parsed.text)
                if prompt.id in ctx.pool:
                    self.reject(ctx, "duplicate of an earlier candidate", step)
                    continue
                cand = self.add_candidate(ctx, prompt, parents=parents, operation="opro", step=step)
                if cand:
                    fresh.append(cand)
            for cand in fresh:
                self.evaluate(ctx, cand, subset, SUBSET)
            self.step_finished(ctx, step)

    def _fit(
        self,
        ctx: OptimizerContext,
        template: str,
        history: list[Candidate],
        exemplars: list[Example],
    ) -> tuple[list[Candidate], str]:
        """The meta-prompt, shortened until it fits the optimizer model's context with
        room for the reply: first fewer exemplars, then fewer (the worst) instructions.
        What still does not fit is sent anyway; the model error is counted."""
        limit = ctx.optimizer_model.context_length - self.config.max_tokens
        while True:
            text = fill(
                template,
                {"history": _format_history(history), "exemplars": _format_exemplars(exemplars)},
            )
            request = CompletionRequest(messages=(Message("user", text),))
            if ctx.optimizer_model.prompt_tokens(request) <= limit:
                return history, text
            if exemplars:
                exemplars = exemplars[:-1]
            elif len(history) > 1:
                history = history[1:]
            else:
                return history, text


def _format_history(history: list[Candidate]) -> str:
    """The trajectory as in the paper: text, then its score as an integer 0-100."""
    return "\n\n".join(
        f"text:\n{c.prompt.instruction}\nscore:\n{round(100 * (c.score(SUBSET) or 0.0))}"
        for c in history
    )


def _format_exemplars(exemplars: list[Example]) -> str:
    if not exemplars:
        return ""
    pairs = "\n\n".join(
        f"input:\n{_cut(ex.input_text)}\noutput:\n{ex.target or ''}" for ex in exemplars
    )
    return f"Some inputs of the task, each with its expected output.\n\n{pairs}\n\n"


def _cut(text: str) -> str:
    return text if len(text) <= _EXEMPLAR_CHARS else text[:_EXEMPLAR_CHARS] + " ..."


_ECHO = re.compile(r"^\s*text:\s*(.*?)(?:\n\s*score:.*)?$", re.IGNORECASE | re.DOTALL)


def _unwrap_trajectory_echo(reply: str) -> str:
    """A small model often answers in the trajectory's own format ("text: ... score:
    ..."): keep the text part. It also loops, repeating a line until the reply limit:
    keep each line once. Replies with a <prompt> tag are left to the parser."""
    seen: set[str] = set()
    lines = []
    for line in reply.splitlines():
        key = line.strip().casefold()
        if key and key in seen:
            continue
        seen.add(key)
        lines.append(line)
    reply = "\n".join(lines)
    if "<prompt>" in reply.lower():
        return reply
    m = _ECHO.match(reply)
    return m.group(1) if m else reply
