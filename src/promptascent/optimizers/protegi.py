"""ProTeGi / APO: Prompt Optimization with Textual Gradients (Pryzant et al., 2023,
"Automatic Prompt Optimization with 'Gradient Descent' and Beam Search"; reference
code: microsoft/LMOps, prompt_optimization).

Each round, for every prompt in the beam:

1. Errors: run it on a minibatch of train; the examples it gets wrong are its errors.
2. Gradients: `num_gradients` times, the optimizer model reads a sample of
   `errors_per_gradient` errors and says why the prompt fails on them (a
   natural-language "gradient"; templates/protegi_gradient.txt).
3. Edits: for each gradient, `edits_per_gradient` prompts edited to fix it
   (templates/protegi_edit.txt).
4. Monte Carlo: `mc_samples` paraphrases of each edited prompt
   (templates/protegi_paraphrase.txt). At most `max_expansion` new candidates per
   beam prompt.

Then the beam and the new candidates are arms of a best-arm identification bandit
(search/bandits.py: UCB, UCB-E or successive rejects) over minibatches of dev with
`bandit_pulls` task calls; the `beam_size` best form the next beam. After `rounds`
rounds the beam and the seed are scored on the whole dev split; the best there wins
(a smaller final selection when the budget is small: Optimizer.select_final).
The errors' formatting and the tolerant reading of reasons and edited prompts are
optimizers/feedback.py (shared with PromptAgent).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from pydantic import Field

from promptascent.data.example import Example
from promptascent.events import StepFinished
from promptascent.optimizers.base import Optimizer, OptimizerContext, load_template
from promptascent.optimizers.estimate import SearchEstimate
from promptascent.optimizers.feedback import (
    OUTPUT_CHARS,
    Error,
    failures,
    fit_errors,
    norm,
    parse_prompt_reply,
    parse_reasons,
)
from promptascent.optimizers.options import SamplingOptions, default
from promptascent.optimizers.registry import register
from promptascent.prompts.template import fill
from promptascent.search.bandits import make_selector
from promptascent.search.minibatch import minibatches, sample_minibatch
from promptascent.search.pool import Candidate
from promptascent.search.splits import batch, is_batch, train_round


class ProTeGiConfig(SamplingOptions):
    rounds: int = Field(3, ge=0, description="Rounds of expansion and selection (paper: 6).")
    beam_size: int = Field(4, ge=1, description="Prompts kept by each selection (paper: 4).")
    minibatch_size: int = Field(
        16, ge=1, description="Train examples a beam prompt runs on to find errors (paper: 64)."
    )
    num_gradients: int = Field(
        2,
        ge=1,
        description="Gradients (critiques) per beam prompt, at most one call each (paper: 4).",
    )
    errors_per_gradient: int = Field(4, ge=1, description="Errors shown per gradient (paper: 4).")
    edits_per_gradient: int = Field(1, ge=1, description="Edited prompts per gradient (paper: 1).")
    mc_samples: int = Field(
        1, ge=0, description="Monte Carlo paraphrases per edited prompt (paper: 2)."
    )
    max_expansion: int = Field(
        8, ge=1, description="New candidates per beam prompt at most (paper: 8)."
    )
    selector: Literal["ucb", "ucb-e", "successive-rejects"] = Field(
        "ucb", description="Bandit that selects the beam on dev minibatches (paper: UCB)."
    )
    exploration: float = Field(
        1.0, ge=0.0, description="Exploration constant c of UCB and UCB-E (reference code: 1.0)."
    )
    bandit_batch: int = Field(
        4, ge=1, description="Dev examples per bandit pull (reference code: 32)."
    )
    bandit_pulls: int = Field(
        128,
        ge=1,
        description=(
            "Task calls per selection (dev examples scored by the bandit; reference code: "
            "2048); raised to one minibatch per candidate when smaller."
        ),
    )
    reserve_final: bool = Field(
        True,
        description=(
            "Not in the paper: start a round only if the budget left pays for it and for "
            "scoring the beam and the seed on the whole dev split, or a third of the task "
            "calls if less (a budget too small for that still gets one round, with a "
            "smaller bandit if need be; then only its best prompt and the seed are scored)."
        ),
    )
    temperature: float = default("temperature", 0.7, "reference code: 0.7")
    # A gradient reply lists reasons; an edit rewrites the whole prompt.
    max_tokens: int = default("max_tokens", 128, "a gradient lists several reasons")


@register
class ProTeGi(Optimizer):
    name = "protegi"
    Config = ProTeGiConfig
    config: ProTeGiConfig
    # No split every candidate is screened on (arms are pulled on as many minibatches
    # as the bandit chooses): without a final selection, the seed is returned.
    screening_split = None

    # Planning.

    def _successors(self) -> int:
        c = self.config
        return min(c.max_expansion, c.num_gradients * c.edits_per_gradient * (1 + c.mc_samples))

    def _round_cost(
        self,
        parents: int,
        train_size: int,
        dev_size: int,
        beam: int | None = None,
        keep: int | None = None,
    ) -> tuple[int, int, int]:
        """Upper bounds of one round that expands `parents` of the `beam` prompts (all
        of them when None) and keeps `keep` arms (default `beam_size`): task calls,
        optimizer calls, and the beam size after it."""
        c = self.config
        arms = (parents if beam is None else beam) + parents * self._successors()
        task = parents * min(c.minibatch_size, train_size)
        if arms > (c.beam_size if keep is None else keep) and dev_size:
            task += self._bandit_budget(arms, dev_size)
        edits = c.num_gradients * c.edits_per_gradient
        optimizer = parents * (c.num_gradients + edits + edits * c.mc_samples)
        return task, optimizer, min(c.beam_size, arms)

    def _bandit_budget(self, arms: int, dev_size: int) -> int:
        first = min(self.config.bandit_batch, dev_size)
        return min(max(self.config.bandit_pulls, arms * first), arms * dev_size)

    def estimate(self, train_size: int, dev_size: int, example_tokens: int) -> SearchEstimate:
        c = self.config
        task = optimizer = 0
        beam = 1
        for _ in range(c.rounds):
            t, o, beam = self._round_cost(beam, train_size, dev_size)
            task, optimizer = task + t, optimizer + o
        final = (beam + 1 if c.rounds else 1) * dev_size
        shown = min(example_tokens, 100) + OUTPUT_CHARS // 4 + 8
        return SearchEstimate(
            task_calls=task + final,
            optimizer_calls=optimizer,
            optimizer_prompt_tokens=150 + c.errors_per_gradient * shown,
            optimizer_max_tokens=c.max_tokens,
        )

    def _parents_affordable(
        self, ctx: OptimizerContext, beam: int, scored: int
    ) -> tuple[int, str | None]:
        """How many of the `beam` prompts the next round can expand (best first) with
        the budget left for it and the final scoring (of the seed and up to `scored`
        beam prompts); 0 and why when not even one."""
        reason = None
        for parents in range(beam, 0, -1):
            reason = self._over_budget(ctx, parents, beam, scored)
            if reason is None:
                return parents, None
        return 0, reason

    def _over_budget(
        self, ctx: OptimizerContext, parents: int, beam: int, scored: int
    ) -> str | None:
        """Why a round expanding `parents` of `beam` prompts cannot be paid for together
        with the final scoring of the seed and up to `scored` beam prompts."""
        task, optimizer, after = self._round_cost(
            parents, len(ctx.train), len(ctx.dev), beam, self._keep(scored)
        )
        final = (min(after, scored) + 1) * len(ctx.dev)
        short = self.shortfall(ctx, task=task, optimizer=optimizer, final=final)
        if short is None:
            return None
        return (
            f"{short.limit} left ({short.left:g}) cannot pay for a round and the final "
            f"scoring ({short.need})"
        )

    def _keep(self, scored: int) -> int:
        """Arms a selection keeps: the beam; when only `scored` beam prompts reach the
        final selection, those and the seed, so that the bandit ranks the arms for it
        even if they would all fit in the beam."""
        return min(self.config.beam_size, scored + 1)

    def _small_bandit(self, ctx: OptimizerContext) -> int | None:
        """Task calls for the bandit of a first round that expands only the seed when
        even its full bandit does not fit beside the final selection (of the seed and
        one prompt): what is left beside the train minibatch and the final, if that
        still pulls every arm once; None otherwise."""
        c = self.config
        dev, train = len(ctx.dev), len(ctx.train)
        arms = 1 + self._successors()
        _, optimizer, _ = self._round_cost(1, train, dev, 1)
        minibatch = min(c.minibatch_size, train)
        left = self.task_calls_left(ctx, optimizer=optimizer, final=2 * dev)
        if left is None or not dev:
            return None
        pulls = min(self._bandit_budget(arms, dev), left - minibatch)
        if pulls < arms * min(c.bandit_batch, dev):
            return None
        if not self.affords(ctx, task=minibatch + pulls, optimizer=optimizer, final=2 * dev):
            return None
        return pulls

    # Search.

    def search(self, ctx: OptimizerContext) -> None:
        c = self.config
        seed = ctx.pool.get(ctx.seed_prompt.id)
        # Fixed for the run: a candidate kept in the beam reuses its minibatch scores.
        batches = minibatches(list(ctx.dev), c.bandit_batch, ctx.rng)
        beam = [seed]
        scored = c.beam_size  # beam prompts scored on the whole dev split at the end
        for round_ in range(1, c.rounds + 1):
            parents, pulls = len(beam), None
            if c.reserve_final:
                # A small budget expands fewer beam prompts rather than none.
                parents, reason = self._parents_affordable(ctx, len(beam), scored)
                # Too small for a round and the full final scoring: one round, and then
                # only its best prompt and the seed are scored, beats no search; with a
                # smaller bandit if even its own does not fit. (Again in a later round
                # while the beam is the seed alone: nothing better was found yet.)
                first = reason is not None and len(beam) == 1 and beam[0] is seed
                if first and self._parents_affordable(ctx, 1, 1)[1] is None:
                    parents, reason, scored = 1, None, 1
                if first and reason is not None:
                    pulls = self._small_bandit(ctx)
                    if pulls is not None:
                        parents, reason, scored = 1, None, 1
                if reason is not None:
                    self.stop_early(ctx, f"round {round_} not started: {reason}")
                    break
            train = sample_minibatch(list(ctx.train), c.minibatch_size, ctx.rng)
            fresh: list[Candidate] = []
            for parent in beam[:parents]:
                fresh += self._expand(ctx, parent, train, round_)
            keep = self._keep(scored)
            beam = self._select(ctx, [*beam, *fresh], batches, keep=keep, pulls=pulls)
            ctx.emit(StepFinished(round_, beam[0].id, _batch_mean(beam[0])))
        # The minibatches in the order the bandit pulls them: what the beam was
        # screened on comes first in a final selection on part of dev.
        screened = [ex for b in batches for ex in b]
        self.select_final(ctx, beam, others=scored, screened=screened)

    def _expand(
        self, ctx: OptimizerContext, parent: Candidate, train: list[Example], step: int
    ) -> list[Candidate]:
        """New candidates from `parent`'s errors on `train`: edits along each gradient,
        then paraphrases of each edit."""
        c = self.config
        result = self.evaluate(ctx, parent, train, train_round(step))
        errors = failures(result, train)
        if not errors:
            return []  # right on the whole minibatch: nothing to correct
        instruction = parent.prompt.instruction
        out: list[Candidate] = []
        for gradient, group in self._gradients(ctx, instruction, errors, step):
            for j in range(c.edits_per_gradient):
                if len(out) >= c.max_expansion:
                    return out
                meta = fit_errors(
                    ctx.optimizer_model,
                    load_template("protegi_edit.txt"),
                    {"prompt": instruction, "gradient": gradient},
                    group,
                    reply_tokens=c.max_tokens,
                )
                edit = self._new(ctx, meta, j, step, (instruction,), parent, "edit", note=gradient)
                if edit is None:
                    continue
                out.append(edit)
                for m in range(c.mc_samples):
                    if len(out) >= c.max_expansion:
                        return out
                    meta = fill(
                        load_template("protegi_paraphrase.txt"),
                        {"prompt": edit.prompt.instruction},
                    )
                    forbidden = (edit.prompt.instruction, instruction)
                    paraphrase = self._new(ctx, meta, m, step, forbidden, edit, "paraphrase")
                    if paraphrase is not None:
                        out.append(paraphrase)
        return out

    def _gradients(
        self, ctx: OptimizerContext, instruction: str, errors: list[Error], step: int
    ) -> list[tuple[str, list[Error]]]:
        """Up to `num_gradients` distinct reasons, each with the errors it was given;
        one call per error sample, each asking for the reasons still missing."""
        c = self.config
        template = load_template("protegi_gradient.txt")
        out: list[tuple[str, list[Error]]] = []
        seen: set[str] = set()
        for i in range(c.num_gradients):
            need = c.num_gradients - len(out)
            if need <= 0:
                break
            group = sample_minibatch(errors, c.errors_per_gradient, ctx.rng)
            count = "one reason" if need == 1 else f"{need} reasons"
            fields = {"prompt": instruction, "count": count}
            meta = fit_errors(ctx.optimizer_model, template, fields, group, c.max_tokens)
            reply = self.ask(ctx, meta, sample_index=i, step=step)
            if reply is None:
                continue
            reasons = [r for r in parse_reasons(reply, echo=meta) if norm(r) not in seen]
            if not reasons:
                self.reject(ctx, "no usable reason", step)
                continue
            for reason in reasons[:need]:
                seen.add(norm(reason))
                out.append((reason, group))
        return out

    def _new(
        self,
        ctx: OptimizerContext,
        meta: str,
        sample_index: int,
        step: int,
        forbidden: tuple[str, ...],
        parent: Candidate,
        operation: str,
        note: str = "",
    ) -> Candidate | None:
        """One candidate from one optimizer reply; None (counted) when the reply is
        unusable or gives a prompt the pool already has. `note`: the critique it answers."""
        text = self.propose(
            ctx,
            meta,
            sample_index=sample_index,
            step=step,
            parse=lambda reply: parse_prompt_reply(reply, forbidden=forbidden),
        )
        if text is None:
            return None
        cand = self.add_candidate(
            ctx,
            parent.prompt.with_instruction(text),
            parents=(parent.id,),
            operation=operation,
            step=step,
            note=note,
        )
        if cand is None:
            self.reject(ctx, "duplicate of a candidate", step)
        return cand

    def _select(
        self,
        ctx: OptimizerContext,
        arms: list[Candidate],
        batches: list[list[Example]],
        *,
        keep: int,
        pulls: int | None = None,
    ) -> list[Candidate]:
        """The next beam: the `keep` best arms by the bandit on dev minibatches, with
        `pulls` task calls (default: `bandit_pulls`, see `_bandit_budget`)."""
        c = self.config
        if len(arms) <= keep or not batches:
            return arms[:keep]
        by_id = {cand.id: cand for cand in arms}
        names = {tuple(ex.id for ex in b): batch(k) for k, b in enumerate(batches)}

        def pull(arm: str, examples: Sequence[Example]) -> list[float]:
            split = names[tuple(ex.id for ex in examples)]
            return self.evaluate(ctx, by_id[arm], list(examples), split).selection_scores

        selection = make_selector(c.selector, c.exploration).select(
            list(by_id),
            pull,
            batches,
            budget=min(
                self._bandit_budget(len(arms), len(ctx.dev)),
                pulls if pulls is not None else len(arms) * len(ctx.dev),
            ),
            keep=keep,
            rng=ctx.rng,
        )
        return [by_id[a] for a in selection.selected]


# Helpers.


def _batch_mean(cand: Candidate) -> float:
    """The candidate's mean over every dev minibatch it was scored on (0.0 if none)."""
    scores = [
        s for split, ev in cand.evaluations.items() if is_batch(split) for s in ev.selection_scores
    ]
    return sum(scores) / len(scores) if scores else 0.0
