"""PromptWizard: critique and synthesis of instructions and examples (Agarwal, Singh,
Sharma, Nambi, Ganu, Jain, Kumar and Rajmohan, 2024, "PromptWizard: Task-Aware Prompt
Optimization Framework"; reference code: microsoft/PromptWizard, techniques/
critique_n_refine).

On the screen-then-select scaffold (screening.py). The **seen set** is
`seen_set_size` train examples drawn once; the instruction is tried and the examples
are chosen there.

Stage 1, the instruction (`mutate_refine_iterations` iterations, from the seed):

1. Mutation: `mutation_rounds` times, the optimizer model writes `style_variation`
   versions of the current instruction, each mixing in a thinking style (a seeded
   sample of `style_variation` from the paper's list, templates/promptwizard_styles.txt).
2. Trial (PromptWizard's score): the current instruction and each mutant answer the
   iteration's minibatches of `questions_batch_size` seen examples in turn, stopping
   at the first minibatch with a wrong answer or after `min_correct_count` right
   ones (at most `max_eval_batches`); the score is the share of minibatches right. A
   candidate **passes** when it got `min_correct_count` minibatches right.
3. Critique and refine: the optimizer model criticises the best against its failures
   (or, when it had none, says how to do better on what it got right), and writes a
   refined instruction from the critique, which is tried too. The better of the two
   is the next iteration's instruction.
4. Screening: the iteration's best and every candidate that passed are scored on the
   dev subset (the scaffold's screening), where the final selection takes them from.

Stage 2, the examples, from the best on the subset so far:

5. Selection: the instruction runs on the seen set in chunks until it has got
   `few_shot_count` examples wrong (PromptWizard's negative examples); those, filled
   up with ones it got right, become demonstrations (labels as the data gives them;
   an input already met is skipped).
6. `refine_task_eg_iterations` times, at a seeded coin toss as the reference: either
   the instruction is critiqued with the examples and refined (demonstrations kept),
   or the examples are critiqued and the optimizer model synthesises
   `few_shot_count` new ones, labelled by it (`synthesize_examples`; a malformed one
   is dropped and counted).
7. Reasoning (`generate_reasoning`): each demonstration gets a short chain of thought
   before its answer ("...\\nAnswer: yes"), kept only where the task's metric still
   reads the right answer from it.
8. Persona (`generate_expert_identity`): an expert identity as the system message.

Each of 5-8 is a candidate scored on the subset; the next builds on it when it scores
at least as well as the one before. Lineage operations: `mutate`, `refine`,
`examples`, `persona`. The scaffold's final selection then picks the winner among the
seed and the best on the subset.

The budget: every step asks first whether the budget pays for it beside the final
selection (`ScreenThenSelect.need`); a trial also keeps room to screen its candidate,
and stage 1 keeps a reserve for stage 2 (its scan's first chunk and two screenings,
at most a quarter of the search), so a small budget still tries examples. The subset
is `eval_examples`, at most a tenth of the search's task calls (SUBSET_SHARE).
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass

from pydantic import Field

from promptascent.data.example import Example
from promptascent.errors import MetricError
from promptascent.evaluation.result import ExampleResult
from promptascent.llm.types import CompletionRequest, Message
from promptascent.metrics.judge import RubricJudge
from promptascent.optimizers.base import OptimizerContext, load_template
from promptascent.optimizers.estimate import SearchEstimate
from promptascent.optimizers.options import SamplingOptions, ScreeningOptions, default
from promptascent.optimizers.parsing import Parsed
from promptascent.optimizers.promptwizard_replies import (
    SyntheticExample,
    format_examples,
    parse_critique,
    parse_examples,
    parse_persona,
    parse_reasoning,
    parse_variations,
)
from promptascent.optimizers.registry import register
from promptascent.optimizers.screening import NoRoom, ScreenThenSelect
from promptascent.prompts.prompt import Demo, Prompt
from promptascent.prompts.template import fill
from promptascent.search.minibatch import iter_minibatches
from promptascent.search.pool import Candidate
from promptascent.search.splits import SUBSET, batch_trial, example_scan

# The subset is sized so that it takes at most this share of the task calls the
# search has (beside the final selection's reserve) per candidate screened: the seed
# and the candidates of both stages must fit (at 100 task calls: about 6 examples).
SUBSET_SHARE = 1 / 10
# Examples shown to a critique when no demonstrations are wanted (few_shot_count 0).
CRITIQUE_EXAMPLES = 3
# Reply limits of the short answers: a reasoning chain, a persona.
REASON_TOKENS = 96
PERSONA_TOKENS = 128


def thinking_styles() -> list[str]:
    """The thinking styles of the paper and the reference's prompt_pool.yaml."""
    text = load_template("promptwizard_styles.txt")
    return [line.strip() for line in text.splitlines() if line.strip()]


class PromptWizardConfig(ScreeningOptions, SamplingOptions):
    mutate_refine_iterations: int = Field(
        3, ge=0, description="Iterations of mutation, scoring and refinement (reference: 3)."
    )
    mutation_rounds: int = Field(
        3, ge=1, description="Mutation calls per iteration (reference config: 3)."
    )
    style_variation: int = Field(
        5, ge=1, description="Thinking styles sampled, and versions asked, per call (reference: 5)."
    )
    questions_batch_size: int = Field(
        1, ge=1, description="Seen examples per trial minibatch (reference: 1)."
    )
    min_correct_count: int = Field(
        3, ge=1, description="Minibatches a candidate must get right to pass (reference: 3)."
    )
    max_eval_batches: int = Field(
        6, ge=1, description="Trial minibatches at most per candidate (reference: 6)."
    )
    refine_instruction: bool = Field(
        True, description="Critique and refine the best instruction (reference: true)."
    )
    seen_set_size: int = Field(
        25, ge=1, description="Train examples the search tries and picks examples from (25)."
    )
    few_shot_count: int = Field(
        5, ge=0, description="Demonstrations in the prompt (reference: 5; 0: zero-shot)."
    )
    refine_task_eg_iterations: int = Field(
        3, ge=0, description="Iterations refining instruction or examples (reference: 3)."
    )
    synthesize_examples: bool = Field(
        True, description="Synthesise examples from a critique (reference demos: use_examples)."
    )
    generate_reasoning: bool = Field(
        True, description="Add a chain of thought to each demonstration (reference: true)."
    )
    generate_expert_identity: bool = Field(
        True, description="Add an expert persona as the system message (reference: true)."
    )
    eval_examples: int = default(
        "eval_examples",
        20,
        "at most a tenth of the search's task calls",
        description="Dev examples every screened candidate is scored on (the subset).",
    )
    max_tokens: int = default(
        "max_tokens", 320, "a reply holds style_variation instructions or few_shot_count examples"
    )


@dataclass(frozen=True)
class Shot:
    """A demonstration with the labelled example it shows (to check its answer)."""

    example: Example
    demo: Demo


Trace = tuple[Example, ExampleResult]


@dataclass(frozen=True)
class Trial:
    """A candidate's trial: minibatches asked and right, what it got wrong and right."""

    candidate: Candidate
    right: int
    asked: int
    failures: tuple[Trace, ...]
    successes: tuple[Trace, ...]
    loss: float  # mean likelihood loss over the trial (0 when generating)

    @property
    def score(self) -> float:
        """PromptWizard's score: the share of minibatches answered all right."""
        return self.right / self.asked if self.asked else 0.0


def rank(trials: list[Trial]) -> list[Trial]:
    """Best first: the higher score, then the lower loss, then the longer instruction
    (the reference's default tie rule, `resolve_tie_criteria="max"`), then the earlier."""
    return sorted(trials, key=lambda t: (-t.score, t.loss, -len(t.candidate.prompt.instruction)))


@register
class PromptWizard(ScreenThenSelect):
    name = "promptwizard"
    Config = PromptWizardConfig
    config: PromptWizardConfig

    def __init__(self, config: PromptWizardConfig | None = None) -> None:
        super().__init__(config)
        self._subset_size: int | None = None
        self._reserve = 0  # task calls stage 1 leaves for stage 2
        self._seen: list[Example] = []
        self._shots: dict[str, tuple[Shot, ...]] = {}
        self._failures: list[Trace] = []  # the examples stage's scan
        self._successes: list[Trace] = []
        self._step = 0

    # Planning.

    def estimate(self, train_size: int, dev_size: int, example_tokens: int) -> SearchEstimate:
        c = self.config
        subset = min(c.eval_examples, dev_size)
        seen = min(c.seen_set_size, train_size)
        trial_calls = min(c.min_correct_count, c.max_eval_batches) * c.questions_batch_size
        per_iteration = 2 + c.mutation_rounds * c.style_variation  # base, mutants, refined
        stage2 = 3 + c.refine_task_eg_iterations  # examples, refinements, reasoning, persona
        return SearchEstimate(
            task_calls=subset
            + c.mutate_refine_iterations * per_iteration * (trial_calls + subset)
            + seen
            + stage2 * subset
            + c.final_k * dev_size,
            optimizer_calls=c.mutate_refine_iterations * (c.mutation_rounds + 2)
            + 2 * c.refine_task_eg_iterations
            + c.few_shot_count
            + 1,
            optimizer_prompt_tokens=300 + max(c.few_shot_count, 3) * (example_tokens + 20),
            optimizer_max_tokens=c.max_tokens,
            max_demos=c.few_shot_count,
        )

    def prepare(self, ctx: OptimizerContext) -> None:
        c = self.config
        self._shots, self._failures, self._successes, self._step = {}, [], [], 0
        self._seen = ctx.train.sample(c.seen_set_size, ctx.rng)
        size = min(c.eval_examples, len(ctx.dev))
        left = ctx.guard.task_calls_left()
        search = None if left is None else left - self.final_reserve(c.final_k * len(ctx.dev))
        if search is not None:
            size = max(1, min(size, int(search * SUBSET_SHARE)))
        self._subset_size = size
        # Stage 1 leaves stage 2 its scan's first chunk and two screenings, so that a
        # small budget still tries examples; but at most a quarter of the search.
        planned = (
            (1 if c.few_shot_count else 0)
            + c.refine_task_eg_iterations
            + int(c.generate_reasoning and c.few_shot_count > 0)
            + int(c.generate_expert_identity)
        )
        scan = min(c.few_shot_count or CRITIQUE_EXAMPLES, len(self._seen))
        self._reserve = scan + size * min(2, planned)
        if search is not None:
            self._reserve = min(self._reserve, max(0, (search - size) // 4))

    def subset_size(self, ctx: OptimizerContext) -> int:
        """`eval_examples`, fewer on a small budget (SUBSET_SHARE)."""
        return self.config.eval_examples if self._subset_size is None else self._subset_size

    # Search.

    def explore(self, ctx: OptimizerContext, subset: list[Example]) -> None:
        try:
            self._instruction_stage(ctx, subset)
        except NoRoom:
            self.stop_early(
                ctx,
                "promptwizard: the instruction stage ended early; the budget left is kept "
                "for the examples stage and the final selection on dev",
            )
        self._examples_stage(ctx, subset)

    def _next_step(self) -> int:
        self._step += 1
        return self._step

    def _need_in_stage1(self, ctx: OptimizerContext, *, task: int, optimizer: int = 0) -> None:
        """The budget question of stage 1: stage 2's reserve is kept too."""
        self.need(ctx, task=task + self._reserve, optimizer=optimizer)

    # Stage 1: the instruction.

    def _instruction_stage(self, ctx: OptimizerContext, subset: list[Example]) -> None:
        c = self.config
        if not self._seen:
            return
        per_trial = min(c.min_correct_count, c.max_eval_batches)
        batches_of = iter_minibatches(self._seen, c.questions_batch_size, ctx.rng, epochs=None)
        base = ctx.pool.get(ctx.seed_prompt.id)
        for _ in range(c.mutate_refine_iterations):
            step = self._next_step()
            batches = list(itertools.islice(batches_of, per_trial))
            trials: list[Trial] = []
            stopped: NoRoom | None = None
            try:
                trials.append(self._trial(ctx, base, batches, step))
                for r in range(c.mutation_rounds):
                    self._mutate(ctx, base, batches, step, r, trials)
                if c.refine_instruction:
                    self._refine_trial(ctx, rank(trials)[0], batches, step, trials)
            except NoRoom as stop:
                # What was tried is still screened: each trial kept room for that.
                stopped = stop
            if trials:
                ranked = rank(trials)
                base = ranked[0].candidate
                passed = [t for t in ranked if t.right >= c.min_correct_count]
                self._screen_trials(ctx, [ranked[0], *passed], subset)
            self.step_finished(ctx, step)
            if stopped is not None:
                raise stopped

    def _trial(
        self, ctx: OptimizerContext, cand: Candidate, batches: list[list[Example]], step: int
    ) -> Trial:
        """PromptWizard's score of `cand` on the iteration's minibatches (module
        docstring, step 2). A minibatch with a failed call is not right; the failed
        call is no failure to criticise."""
        c = self.config
        # Room for the trial and for screening its candidate, should it be the best.
        self._need_in_stage1(ctx, task=sum(len(b) for b in batches) + self.subset_size(ctx))
        right = asked = 0
        failures: list[Trace] = []
        successes: list[Trace] = []
        losses: list[float] = []
        for k, batch in enumerate(batches):
            if right >= c.min_correct_count or asked >= c.max_eval_batches:
                break
            result = self.evaluate(ctx, cand, batch, batch_trial(step, k))
            asked += 1
            losses += result.losses
            traces = list(zip(batch, result.results, strict=True))
            failures = [(ex, r) for ex, r in traces if r.score is not None and r.score < 1.0]
            if failures or any(r.score is None for _, r in traces):
                break
            right += 1
            successes += traces
        loss = sum(losses) / len(losses) if losses else 0.0
        return Trial(cand, right, asked, tuple(failures), tuple(successes), loss)

    def _mutate(
        self,
        ctx: OptimizerContext,
        base: Candidate,
        batches: list[list[Example]],
        step: int,
        sample_index: int,
        trials: list[Trial],
    ) -> None:
        """One mutation call: `style_variation` versions of `base`, each tried (its
        trial appended to `trials`)."""
        c = self.config
        self._need_in_stage1(
            ctx, task=sum(len(b) for b in batches) + self.subset_size(ctx), optimizer=1
        )
        styles = thinking_styles()
        styles = ctx.rng.sample(styles, min(c.style_variation, len(styles)))
        meta = fill(
            load_template("promptwizard_mutate.txt"),
            {
                "task": _task_line(ctx),
                "prompt": base.prompt.instruction,
                "styles": "\n".join(f"- {s}" for s in styles),
                "count": str(c.style_variation),
            },
        )
        reply = self.ask(ctx, meta, sample_index=sample_index, step=step)
        if reply is None:
            return
        for parsed in parse_variations(reply, forbidden=(base.prompt.instruction,))[
            : c.style_variation
        ]:
            if parsed.text is None:
                self.reject(ctx, parsed.reason, step)
                continue
            prompt = base.prompt.with_instruction(parsed.text)
            cand = self._add(ctx, prompt, base, "mutate", step)
            if cand is not None:
                trials.append(self._trial(ctx, cand, batches, step))

    def _refine_trial(
        self,
        ctx: OptimizerContext,
        top: Trial,
        batches: list[list[Example]],
        step: int,
        trials: list[Trial],
    ) -> None:
        """Critique `top` against its failures (or its successes, when it had none),
        refine it, and try the refined instruction (its trial appended to `trials`)."""
        traces = top.failures or top.successes
        if not traces:
            return
        task = sum(len(b) for b in batches) + self.subset_size(ctx)
        self._need_in_stage1(ctx, task=task, optimizer=2)
        shown: list[tuple[Example, ExampleResult | None]] = list(traces)
        cand = self._critique_and_refine(ctx, top.candidate, shown, not top.failures, step)
        if cand is not None:
            trials.append(self._trial(ctx, cand, batches, step))

    def _screen_trials(
        self, ctx: OptimizerContext, trials: list[Trial], subset: list[Example]
    ) -> None:
        """Scores each candidate of `trials` not yet screened on the subset."""
        for t in trials:
            if SUBSET not in t.candidate.evaluations:
                self._need_in_stage1(ctx, task=len(subset))
                self.evaluate(ctx, t.candidate, subset, SUBSET)

    def _critique_and_refine(
        self,
        ctx: OptimizerContext,
        parent: Candidate,
        examples: list[tuple[Example, ExampleResult | None]],
        right: bool,
        step: int,
    ) -> Candidate | None:
        """The optimizer model's critique of `parent`'s instruction on `examples` (ones
        it got wrong, or with `right` ones it got right), then an instruction refined
        from it (two calls; a malformed reply is a rejected proposal)."""
        fields = {"prompt": parent.prompt.instruction, "task": _task_line(ctx)}
        name = "promptwizard_critique_right.txt" if right else "promptwizard_critique.txt"
        meta = self._fit(ctx, load_template(name), fields, examples)
        reply = self.ask(ctx, meta, sample_index=0, step=step)
        if reply is None:
            return None
        critique = parse_critique(reply)
        if critique.text is None:
            self.reject(ctx, critique.reason, step)
            return None
        template = load_template("promptwizard_refine.txt")
        meta = self._fit(ctx, template, {**fields, "critique": critique.text}, examples)
        forbidden = (parent.prompt.instruction,)
        text = self.propose(
            ctx,
            meta,
            sample_index=1,
            step=step,
            parse=lambda r: _first_valid(parse_variations(r, forbidden=forbidden)),
        )
        if text is None:
            return None
        prompt = parent.prompt.with_instruction(text)
        return self._add(ctx, prompt, parent, "refine", step, note=critique.text)

    # Stage 2: the examples.

    def _examples_stage(self, ctx: OptimizerContext, subset: list[Example]) -> None:
        c = self.config
        if not self._seen:
            return
        best = ctx.pool.best(SUBSET) or ctx.pool.get(ctx.seed_prompt.id)
        current = best
        step = self._next_step()
        shots = self._select_shots(ctx, best, subset)
        if shots:
            demos = tuple(s.demo for s in shots)
            failed = {ex.id for ex, _ in self._failures}
            wrong = sum(1 for s in shots if s.example.id in failed)
            note = f"{wrong} examples the instruction got wrong, {len(shots) - wrong} right"
            cand = self._add(ctx, best.prompt.with_demos(demos), best, "examples", step, note=note)
            current = self._keep_better(ctx, current, cand, shots, subset)
        self.step_finished(ctx, step)
        for _ in range(c.refine_task_eg_iterations):
            step = self._next_step()
            shots = self._shots.get(current.id, ())
            # The reference tosses a coin between refining the instruction and
            # synthesising examples.
            synthesise = ctx.rng.random() < 0.5
            if synthesise and c.synthesize_examples and shots and self._can_synthesise():
                cand, new = self._synthesise(ctx, current, shots, len(subset), step)
            else:
                cand, new = self._refine_with_examples(ctx, current, len(subset), step), shots
            current = self._keep_better(ctx, current, cand, new, subset)
            self.step_finished(ctx, step)
        if c.generate_reasoning and self._shots.get(current.id):
            step = self._next_step()
            cand, new = self._reason(ctx, current, len(subset), step)
            current = self._keep_better(ctx, current, cand, new, subset)
            self.step_finished(ctx, step)
        if c.generate_expert_identity:
            step = self._next_step()
            cand = self._persona(ctx, current, len(subset), step)
            self._keep_better(ctx, current, cand, self._shots.get(current.id, ()), subset)
            self.step_finished(ctx, step)

    def _select_shots(
        self, ctx: OptimizerContext, best: Candidate, subset: list[Example]
    ) -> tuple[Shot, ...]:
        """Runs `best` on the seen set in chunks until it got `few_shot_count` examples
        wrong (CRITIQUE_EXAMPLES when no demonstrations are wanted), or the budget
        only pays for screening beside the final selection; returns those, filled up
        with ones it got right, in the order scanned, as demonstrations."""
        c = self.config
        if not c.few_shot_count and not c.refine_task_eg_iterations:
            return ()  # nothing would use what the scan finds
        want = c.few_shot_count or CRITIQUE_EXAMPLES
        # Examples with the same input as one found before teach nothing new.
        inputs: set[str] = set()
        for k, start in enumerate(range(0, len(self._seen), want)):
            if len(self._failures) >= want:
                break
            chunk = self._seen[start : start + want]
            if k and not self.has_room(ctx, task=len(chunk) + len(subset)):
                break  # the budget ends the scan: what it found is used
            self.need(ctx, task=len(chunk) + len(subset))
            result = self.evaluate(ctx, best, chunk, example_scan(k))
            for ex, r in zip(chunk, result.results, strict=True):
                if r.score is None or ex.input_text in inputs:
                    continue
                inputs.add(ex.input_text)
                (self._successes if r.score >= 1.0 else self._failures).append((ex, r))
        if not c.few_shot_count:
            return ()
        chosen = {ex.id for ex, _ in self._failures[:want]}
        chosen |= {ex.id for ex, _ in self._successes[: want - len(chosen)]}
        return tuple(
            Shot(ex, Demo(ex.input, ex.target or "")) for ex in self._seen if ex.id in chosen
        )

    def _refine_with_examples(
        self, ctx: OptimizerContext, current: Candidate, screening: int, step: int
    ) -> Candidate | None:
        """The instruction critiqued with the examples the stage's scan found wrong
        (or right, when none was wrong) and refined; demonstrations and system kept."""
        self.need(ctx, task=screening, optimizer=2)
        want = self.config.few_shot_count or CRITIQUE_EXAMPLES
        traces = self._failures[:want] or self._successes[:want]
        if not traces:
            return None
        # The outputs were the stage's first instruction's: shown without them.
        examples: list[tuple[Example, ExampleResult | None]] = [(ex, None) for ex, _ in traces]
        return self._critique_and_refine(ctx, current, examples, not self._failures, step)

    def _can_synthesise(self) -> bool:
        """Synthetic examples are plain text with one set of choices (or none): a task
        with named input fields, or with choices that differ between examples, gets
        no synthetic examples."""
        return all(isinstance(ex.input, str) for ex in self._seen) and (
            len({ex.choices for ex in self._seen}) == 1
        )

    def _synthesise(
        self,
        ctx: OptimizerContext,
        current: Candidate,
        shots: tuple[Shot, ...],
        screening: int,
        step: int,
    ) -> tuple[Candidate | None, tuple[Shot, ...]]:
        """A critique of the demonstrations, then `few_shot_count` new examples written
        and labelled by the optimizer model; a malformed one is dropped and counted."""
        c = self.config
        self.need(ctx, task=screening, optimizer=2)
        choices = self._seen[0].choices
        fields = {
            "task": _task_line(ctx),
            "prompt": current.prompt.instruction,
            "examples": format_examples([(s.example, None) for s in shots]),
            "count": str(c.few_shot_count),
        }
        reply = self.ask(
            ctx,
            fill(load_template("promptwizard_examples_critique.txt"), fields),
            sample_index=0,
            step=step,
        )
        if reply is None:
            return None, ()
        critique = parse_critique(reply)
        if critique.text is None:
            self.reject(ctx, critique.reason, step)
            return None, ()
        sample = ctx.rng.choice(self._seen)
        answers = f" Each answer is one of: {', '.join(choices)}." if choices else ""
        meta = fill(
            load_template("promptwizard_synthesize.txt"),
            {
                **fields,
                "critique": critique.text,
                "answers": answers,
                "question": " ".join(sample.input_text.split()),
                "answer": sample.target or "",
            },
        )
        reply = self.ask(ctx, meta, sample_index=1, step=step)
        if reply is None:
            return None, ()
        new: list[Shot] = []
        for item in parse_examples(reply, choices=choices):
            if isinstance(item, Parsed):
                self.reject(ctx, item.reason, step)
            elif len(new) < c.few_shot_count:
                new.append(self._synthetic_shot(item, choices, step, len(new)))
        if not new:
            return None, ()
        demos = tuple(s.demo for s in new)
        note = f"synthetic examples from the critique: {critique.text}"
        cand = self._add(
            ctx, current.prompt.with_demos(demos), current, "examples", step, note=note
        )
        return cand, tuple(new)

    @staticmethod
    def _synthetic_shot(
        item: SyntheticExample, choices: tuple[str, ...] | None, step: int, i: int
    ) -> Shot:
        ex = Example(f"synthetic-{step}-{i}", item.question, target=item.answer, choices=choices)
        return Shot(ex, Demo(item.question, item.answer))

    def _reason(
        self, ctx: OptimizerContext, current: Candidate, screening: int, step: int
    ) -> tuple[Candidate | None, tuple[Shot, ...]]:
        """Each demonstration's output becomes a short chain of thought, then
        "Answer: <answer>", where the task's metric still reads the right answer from
        it; otherwise it stays as it was (counted as rejected)."""
        shots = self._shots.get(current.id, ())
        self.need(ctx, task=screening, optimizer=len(shots))
        out: list[Shot] = []
        for i, shot in enumerate(shots):
            answer = shot.example.target or ""
            meta = fill(
                load_template("promptwizard_reason.txt"),
                {
                    "task": _task_line(ctx),
                    "prompt": current.prompt.instruction,
                    "question": " ".join(shot.example.input_text.split()),
                    "answer": answer,
                },
            )
            reply = self.ask(ctx, meta, sample_index=i, step=step, max_tokens=REASON_TOKENS)
            parsed = parse_reasoning(reply) if reply is not None else Parsed(None)
            if parsed.text is None:
                if reply is not None:
                    self.reject(ctx, parsed.reason, step)
                out.append(shot)
                continue
            output = f"{parsed.text}\nAnswer: {answer}"
            if not self._reads_answer(ctx, output, shot.example):
                self.reject(ctx, "reasoning: the task's metric no longer reads the answer", step)
                out.append(shot)
                continue
            out.append(Shot(shot.example, Demo(shot.demo.input, output)))
        if all(new is old for new, old in zip(out, shots, strict=True)):
            return None, shots
        demos = tuple(s.demo for s in out)
        cand = self._add(
            ctx, current.prompt.with_demos(demos), current, "examples", step, note="reasoning"
        )
        return cand, tuple(out)

    @staticmethod
    def _reads_answer(ctx: OptimizerContext, output: str, example: Example) -> bool:
        """Whether the task's metric scores `output` as right for `example`. A judge
        reads whole outputs (and asking it would spend judge calls): not checked."""
        metric = ctx.evaluator.metric
        if isinstance(metric, RubricJudge):
            return True
        try:
            return metric.score(output, example).value >= 1.0
        except MetricError:
            return False

    def _persona(
        self, ctx: OptimizerContext, current: Candidate, screening: int, step: int
    ) -> Candidate | None:
        """An expert identity for the task (or, without a task description, for the
        instruction) as the system message."""
        self.need(ctx, task=screening, optimizer=1)
        what = ctx.task_description.strip() or current.prompt.instruction
        meta = fill(load_template("promptwizard_expert.txt"), {"task": what})
        reply = self.ask(ctx, meta, sample_index=0, step=step, max_tokens=PERSONA_TOKENS)
        if reply is None:
            return None
        parsed = parse_persona(reply)
        if parsed.text is None:
            self.reject(ctx, parsed.reason, step)
            return None
        prompt = dataclasses.replace(current.prompt, system=parsed.text, meta={})
        return self._add(ctx, prompt, current, "persona", step)

    def _keep_better(
        self,
        ctx: OptimizerContext,
        current: Candidate,
        cand: Candidate | None,
        shots: tuple[Shot, ...],
        subset: list[Example],
    ) -> Candidate:
        """Screens `cand` (with its demonstrations `shots`) on the subset; it is the
        next step's base when its objective there is at least `current`'s (the
        reference always moves on; here a worse step is not built on)."""
        if cand is None:
            return current
        self._shots.setdefault(cand.id, shots)
        self.need(ctx, task=len(subset))
        self.evaluate(ctx, cand, subset, SUBSET)
        new, old = ctx.pool.objective(cand, SUBSET), ctx.pool.objective(current, SUBSET)
        return cand if old is None or (new is not None and new >= old) else current

    # Helpers.

    def _add(
        self,
        ctx: OptimizerContext,
        prompt: Prompt,
        parent: Candidate,
        operation: str,
        step: int,
        note: str = "",
    ) -> Candidate | None:
        """A new candidate from `parent`; None (counted once) when the pool has it or
        the constraints refuse it."""
        before = self.rejected
        cand = self.add_candidate(
            ctx, prompt, parents=(parent.id,), operation=operation, step=step, note=note
        )
        if cand is None and self.rejected == before:
            self.reject(ctx, "duplicate of a candidate", step)
        return cand

    def _fit(
        self,
        ctx: OptimizerContext,
        template: str,
        fields: dict[str, str],
        examples: list[tuple[Example, ExampleResult | None]],
    ) -> str:
        """The template filled with as many of `examples` as fit the optimizer model's
        context with room for the reply (at least one)."""
        model = ctx.optimizer_model
        text = ""
        for k in range(len(examples), 0, -1):
            text = fill(template, {**fields, "examples": format_examples(examples[:k])})
            request = CompletionRequest(messages=(Message("user", text),))
            if model.prompt_tokens(request) + self.config.max_tokens <= model.context_length:
                break
        return text


def _first_valid(parsed: list[Parsed]) -> Parsed:
    """The first item read as an instruction, else the first reason to drop one."""
    return next((p for p in parsed if p.text is not None), parsed[0] if parsed else Parsed(None))


def _task_line(ctx: OptimizerContext) -> str:
    text = ctx.task_description.strip()
    return f"The task: {text}\n" if text else ""
