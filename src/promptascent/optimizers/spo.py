"""SPO: Self-supervised Prompt Optimization (Xiang et al., 2025, "Self-Supervised Prompt
Optimization"; MetaGPT's metagpt/ext/spo).

No labelled evaluation set: prompts are compared by a judge model reading their
outputs against the task's requirements. Each round:

1. `samples` train inputs are drawn (seeded; the same for both prompts of the round).
2. The current best prompt runs on them; the optimizer model reads the requirements,
   the best prompt and its outputs (with the samples' answers, where they have them,
   as references of the wanted format) and writes a modified prompt.
3. The new prompt runs on the same inputs.
4. The judge compares the two sets of outputs against the requirements, `votes`
   times with A/B swapped on every second vote; the new prompt replaces the best only
   on a strict majority (see metrics.judge.PairwiseJudge).

The winner is the last prompt that won its round (the seed if none did). Its label-
using scores, where the task has a test split, are measured by the runner afterwards,
for the report only.
"""

from __future__ import annotations

from pydantic import Field

from promptascent.data.example import Example
from promptascent.errors import ContextOverflow
from promptascent.events import StepFinished
from promptascent.metrics.judge import PairwiseJudge, Preference
from promptascent.optimizers.base import Optimizer, OptimizerContext, load_template
from promptascent.optimizers.estimate import SearchEstimate
from promptascent.optimizers.options import SamplingOptions, default
from promptascent.optimizers.registry import register
from promptascent.prompts.fit import fit_pieces, prompt_limit
from promptascent.prompts.prompt import Prompt
from promptascent.prompts.template import fill
from promptascent.search.pool import Candidate
from promptascent.search.splits import PAIRWISE

DEFAULT_REQUIREMENTS = "Answer each input correctly and helpfully."


class SPOConfig(SamplingOptions):
    rounds: int = Field(10, ge=1, description="Optimization rounds (the paper's default).")
    samples: int = Field(3, ge=1, description="Train inputs both prompts run on each round.")
    votes: int = Field(4, ge=1, description="Judge votes per round, A/B swapped every second.")
    temperature: float = default("temperature", 0.7, "MetaGPT's SPO optimizer setting")
    # The reply is a whole prompt, often with its analysis around it.
    max_tokens: int = Field(
        192, ge=16, description="Optimizer-model reply limit (a whole prompt, with analysis)."
    )
    judge_temperature: float = Field(0.3, ge=0.0, le=2.0, description="Judge temperature.")
    judge_max_tokens: int = Field(48, ge=4, description="Judge reply limit.")
    prompt_words: int | None = Field(
        None, ge=1, description="Ask for a prompt within this many words (SPO's `count`)."
    )
    consistent_wins: bool = Field(
        True,
        description=(
            "Not in the paper: the new prompt also needs a vote in each A/B order, so a "
            "judge that picks by position or at random rarely replaces the best."
        ),
    )


@register
class SPO(Optimizer):
    name = "spo"
    Config = SPOConfig
    config: SPOConfig
    needs_dev = False

    def __init__(self, config: SPOConfig | None = None) -> None:
        super().__init__(config)
        self._best_id = ""  # the last prompt that won its round (the seed until one does)
        self._outputs: dict[tuple[str, str], str] = {}

    def selection_split(self) -> str:
        return PAIRWISE

    def choose_winner(self, ctx: OptimizerContext, split: str) -> Candidate | None:
        """The last prompt that won its round: SPO has no scores to rank."""
        return ctx.pool.get(self._best_id or ctx.seed_prompt.id)

    def estimate(self, train_size: int, dev_size: int, example_tokens: int) -> SearchEstimate:
        """Prompt tokens assume outputs as long as an example."""
        c = self.config
        return SearchEstimate(
            task_calls=c.rounds * 2 * min(c.samples, max(1, train_size)),
            optimizer_calls=c.rounds,
            optimizer_prompt_tokens=80 + c.samples * (3 * example_tokens + 10),
            optimizer_max_tokens=c.max_tokens,
            judge_calls=c.rounds * c.votes,
            judge_prompt_tokens=60 + c.samples * (4 * example_tokens + 10),
            judge_max_tokens=c.judge_max_tokens,
        )

    def search(self, ctx: OptimizerContext) -> None:
        self._best_id = ctx.seed_prompt.id
        self._outputs = {}
        c = self.config
        judge = PairwiseJudge(
            ctx.judge_model or ctx.optimizer_model,
            stats=ctx.judge_stats,
            temperature=c.judge_temperature,
            max_tokens=c.judge_max_tokens,
        )
        requirements = ctx.requirements or ctx.task_description or DEFAULT_REQUIREMENTS
        template = load_template("spo_optimize.txt")
        for step in range(1, c.rounds + 1):
            # A whole round at most: both prompts on every sample, one proposal, every
            # vote; so no round is cut off mid-way.
            if not self.affords(ctx, task=2 * c.samples, optimizer=1, judge=c.votes):
                self.stop_early(ctx, "the budget left cannot pay for a whole round")
                return
            best = ctx.pool.get(self._best_id)
            samples = ctx.train.sample(c.samples, ctx.rng)
            seed = ctx.rng.randrange(2**31)
            best_outputs = self._outputs_of(ctx, best.prompt, samples)
            if best_outputs is None:
                self.reject(ctx, "the task model failed on the best prompt's samples", step)
                continue
            try:
                meta = self._meta_prompt(ctx, template, requirements, best, samples, best_outputs)
            except ContextOverflow as e:
                self.reject(ctx, f"meta-prompt: {e}", step)
                continue
            forbidden = (best.prompt.instruction,)
            text = self.propose(
                ctx, meta, sample_index=0, step=step, seed=seed, forbidden=forbidden
            )
            if text is None:
                continue
            verdict = ctx.constraints.apply(best.prompt.with_instruction(text))
            if verdict.prompt is None:
                self.reject(ctx, f"constraint: {verdict.reason}", step)
                continue
            prompt = verdict.prompt
            if prompt.id in ctx.pool:
                self.reject(ctx, "repeats an earlier candidate", step)
                continue
            outputs = self._outputs_of(ctx, prompt, samples)
            if outputs is None:
                note = f"round {step}: not judged: the task model failed on its samples"
                self.add_candidate(
                    ctx, prompt, parents=(best.id,), operation="spo", step=step, note=note
                )
                continue
            pref = judge.compare(
                requirements,
                [ex.input_text for ex in samples],
                best_outputs,
                outputs,
                [ex.target for ex in samples],
                votes=c.votes,
                seed=seed,
            )
            won = pref.winner == "B"
            outcome = "wins" if won else "loses"
            if won and c.consistent_wins and not _wins_both_orders(pref.verdicts):
                won, outcome = False, "loses: its votes came from one A/B order only"
            note = f"round {step}: {pref.describe()} ({outcome})"
            cand = self.add_candidate(
                ctx, prompt, parents=(best.id,), operation="spo", step=step, note=note
            )
            if cand is not None and won:
                self._best_id = cand.id
            ctx.emit(StepFinished(step, self._best_id, _share(pref, won)))

    def _outputs_of(
        self, ctx: OptimizerContext, prompt: Prompt, samples: list[Example]
    ) -> list[str] | None:
        """The task model's outputs of `prompt` on `samples` (each made once per run);
        None when a call failed: an error is not an output to judge."""
        missing = [ex for ex in samples if (prompt.id, ex.id) not in self._outputs]
        if missing:
            for r in ctx.evaluator.generate(prompt, missing).results:
                if r.error is not None:
                    return None
                self._outputs[prompt.id, r.example_id] = r.output
        return [self._outputs[prompt.id, ex.id] for ex in samples]

    def _meta_prompt(
        self,
        ctx: OptimizerContext,
        template: str,
        requirements: str,
        best: Candidate,
        samples: list[Example],
        outputs: list[str],
    ) -> str:
        n = len(samples)
        refs = [ex.target for ex in samples]
        words = f" in at most {self.config.prompt_words} words" if self.config.prompt_words else ""

        def render(p: list[str]) -> str:
            blocks = []
            for i in range(n):
                block = f"Input: {p[2 + i]}\nOutput: {p[2 + n + i]}"
                if refs[i]:
                    block += f"\nWanted output (reference): {p[2 + 2 * n + i]}"
                blocks.append(block)
            fields = {"requirements": p[0], "prompt": p[1], "words": words}
            return fill(template, {**fields, "outputs": "\n\n".join(blocks)})

        model = ctx.optimizer_model
        return fit_pieces(
            render,
            [
                requirements,
                best.prompt.instruction,
                *(ex.input_text for ex in samples),
                *outputs,
                *(r or "" for r in refs),
            ],
            limit=prompt_limit(model.context_length, self.config.max_tokens),
            count_tokens=model.backend.count_tokens,
        )


def _share(pref: Preference, won: bool) -> float:
    """The share of usable votes the best prompt got in this round (for progress)."""
    usable = pref.a + pref.b + pref.ties
    if not usable:
        return 0.0
    return (pref.b if won else pref.a) / usable


def _wins_both_orders(verdicts: tuple[str | None, ...]) -> bool:
    """Whether "B" (the new prompt) got a vote shown first (odd votes: A/B swapped)
    and one shown second (even votes): a position-consistent win."""
    return "B" in verdicts[0::2] and "B" in verdicts[1::2]
