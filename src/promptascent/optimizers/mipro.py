"""MIPROv2: instructions and demonstrations under Bayesian search (Opsahl-Ong et al.,
2024, "Optimizing Instructions and Demonstrations for Multi-Stage Language Model
Programs"; reference code: DSPy's `teleprompt/mipro_optimizer_v2.py`,
`propose/grounded_proposer.py`, `propose/dataset_summary_generator.py`).

On the screen-then-select scaffold (screening.py), the screening subset is MIPRO's
validation set: the seed is scored on it first. Then:

1. **Demonstration sets** (DSPy's `create_n_fewshot_demo_sets`): the seed runs on
   `bootstrap_examples` train examples; its correct outputs are the bootstrapped
   demos (optimizers/demos.py, as DSPy's BootstrapFewShot). Set 0 is the seed's own
   demos (none, usually: zero-shot), set 1 `max_labeled_demos` labelled train
   examples, set 2 the first `max_bootstrapped_demos` bootstrapped demos in train
   order, each further set a seeded draw of 1 to `max_bootstrapped_demos` of them;
   sets 2 on are filled up with labelled examples to `max_labeled_demos`.
2. **Grounded instruction proposals** (DSPy's GroundedProposer): the optimizer model
   summarises `view_data_batch_size` train examples (a failed summary is left out);
   then each of `num_candidates` proposals sees the summary, the task description,
   the seed's instruction, up to 3 bootstrapped demos (from demo set k, then the
   sets after it) and a tip drawn from DSPy's list. Malformed replies are rejected
   proposals. The instructions are the seed's and the proposals.
3. **Bayesian search** over (instruction, demo set) with Optuna's TPE sampler (seeded,
   multivariate, in memory; the seed's subset score is its first observation). Each
   trial scores the combination Optuna asks for on a seeded minibatch of
   `minibatch_size` subset examples and tells Optuna the mean. Every
   `minibatch_full_eval_steps` trials, and when the search ends, the combination with
   the best mean minibatch score not yet fully evaluated is scored on the whole subset
   (what DSPy's full evaluation is; Optuna is told that score too).

Trials run while the budget pays for one and a closing full evaluation beside the
final selection (at most `num_trials`); then the seed and the best on the subset go
to the final selection on dev.
"""

from __future__ import annotations

import math
import random
import re
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import Field

from promptascent.data.example import Example
from promptascent.llm.types import CompletionRequest, Message
from promptascent.optimizers import demos as shots
from promptascent.optimizers.base import OptimizerContext, load_template
from promptascent.optimizers.estimate import SearchEstimate
from promptascent.optimizers.options import SamplingOptions, ScreeningOptions, default
from promptascent.optimizers.parsing import Parsed, clean, extract_tagged
from promptascent.optimizers.registry import register
from promptascent.optimizers.screening import NoRoom, ScreenThenSelect
from promptascent.prompts.prompt import Demo, Prompt
from promptascent.prompts.template import fill
from promptascent.search.minibatch import sample_minibatch
from promptascent.search.pool import Candidate
from promptascent.search.splits import BOOTSTRAP, SUBSET, tpe_trial

if TYPE_CHECKING:
    import optuna

# DSPy's proposal tips (grounded_proposer.TIPS), one drawn per proposal; "none" adds
# no tip.
TIPS = {
    "none": "",
    "creative": "Don't be afraid to be creative when creating the new instruction!",
    "simple": "Keep the instruction clear and concise.",
    "description": "Make sure your instruction is very informative and descriptive.",
    "high_stakes": (
        "The instruction should include a high stakes scenario in which the LM must solve the task!"
    ),
    "persona": (
        'Include a persona that is relevant to the task in the instruction (ie. "You are a ...")'
    ),
}
DEMOS_IN_PROPOSAL = 3  # DSPy's BOOTSTRAPPED_FEWSHOT_EXAMPLES_IN_CONTEXT
SUMMARY_CHARS = 600  # a longer summary is cut: it is context for a proposal, not a prompt
_INPUT_CHARS = 300
_OUTPUT_CHARS = 120


class MIPROConfig(ScreeningOptions, SamplingOptions):
    num_candidates: int | None = Field(
        None,
        ge=1,
        description=(
            "Instructions proposed besides the seed's; None: 3 with demonstrations, 6 "
            "without (DSPy auto='light': n/2 and n, n = 6)."
        ),
    )
    num_demo_sets: int = Field(
        6,
        ge=1,
        description=(
            "Demonstration sets searched over, set 0 (the seed's own demos) among them "
            "(DSPy auto='light': 6)."
        ),
    )
    max_bootstrapped_demos: int = Field(
        4, ge=0, description="Bootstrapped demos per set at most (DSPy MIPROv2: 4)."
    )
    max_labeled_demos: int = Field(
        4,
        ge=0,
        description=(
            "Demos per set at most, labelled ones filling up after the bootstrapped "
            "(DSPy MIPROv2: 4). Both 0: instructions only, as DSPy's zero-shot mode."
        ),
    )
    bootstrap_examples: int = Field(
        16,
        ge=1,
        description=(
            "Train examples the seed runs on to bootstrap demos (ours, as `exemplars`: "
            "DSPy walks the train set until each set has its demos)."
        ),
    )
    bootstrap_threshold: float = Field(
        1.0, description="An output becomes a demo at this score or above (DSPy: the metric)."
    )
    view_data_batch_size: int = Field(
        10, ge=1, description="Train examples the data summary is written from (DSPy: 10)."
    )
    num_trials: int = Field(
        100,
        ge=0,
        description=(
            "Trials at most; the budget usually ends the search first (DSPy auto='light' "
            "runs 10; here the budget in task calls decides, at most 100 as gepa's "
            "max_iterations)."
        ),
    )
    minibatch_size: int = Field(
        5,
        ge=1,
        description=(
            "Subset examples a trial scores a combination on (DSPy: 35 of a 100-example "
            "validation set; here a quarter of the 20-example subset)."
        ),
    )
    minibatch_full_eval_steps: int = Field(
        5,
        ge=1,
        description="Trials between full evaluations of the best combination (DSPy: 5).",
    )
    max_context_fraction: float = Field(
        0.5,
        gt=0.0,
        le=1.0,
        description=(
            "Skip demo sets whose rendered prompt takes more of the task model's "
            "context than this (as `exemplars`)."
        ),
    )
    eval_examples: int = default(
        "eval_examples",
        20,
        "DSPy auto='light': 100, more than our budgets pay for",
        description="Dev examples every full evaluation is on (MIPRO's validation set).",
    )
    temperature: float = default("temperature", 1.0, "DSPy's init_temperature: 1.0")
    max_tokens: int = default("max_tokens", 160, "a new instruction is written whole")


@dataclass(frozen=True)
class DemoSet:
    """A demonstration set: the model's own outputs first (`bootstrapped` of them),
    then labelled train examples."""

    demos: tuple[Demo, ...]
    bootstrapped: int = 0


Combination = tuple[int, int]  # (instruction index, demo set index)


@register
class MIPRO(ScreenThenSelect):
    name = "mipro"
    Config = MIPROConfig
    config: MIPROConfig

    def __init__(self, config: MIPROConfig | None = None) -> None:
        super().__init__(config)
        self._combos: dict[Combination, Candidate | None] = {}

    @property
    def zero_shot(self) -> bool:
        c = self.config
        return c.max_bootstrapped_demos == 0 and c.max_labeled_demos == 0

    def num_instructions(self) -> int:
        """Instructions proposed besides the seed's (`num_candidates`, module doc)."""
        n = self.config.num_candidates
        return n if n is not None else (6 if self.zero_shot else 3)

    # Planning.

    def estimate(self, train_size: int, dev_size: int, example_tokens: int) -> SearchEstimate:
        c = self.config
        subset = min(c.eval_examples, dev_size)
        batch = min(c.minibatch_size, subset)
        full = c.num_trials // c.minibatch_full_eval_steps + 1
        summary = 120 + min(c.view_data_batch_size, train_size) * (example_tokens + 10)
        proposal = 200 + DEMOS_IN_PROPOSAL * (example_tokens + 10) + 120
        return SearchEstimate(
            task_calls=subset
            + min(c.bootstrap_examples, train_size)
            + c.num_trials * batch
            + full * subset
            + c.final_k * dev_size,
            optimizer_calls=1 + self.num_instructions(),
            optimizer_prompt_tokens=max(summary, proposal),
            optimizer_max_tokens=c.max_tokens,
            max_demos=max(c.max_bootstrapped_demos, c.max_labeled_demos),
        )

    # Search.

    def explore(self, ctx: OptimizerContext, subset: list[Example]) -> None:
        self._combos = {}
        seed = ctx.pool.get(ctx.seed_prompt.id)
        self._combos[(0, 0)] = seed
        all_sets = self._demo_sets(ctx, seed, subset)
        sets = all_sets[:1] if self.zero_shot else all_sets
        instructions = [seed.prompt.instruction, *self._propose(ctx, all_sets)]
        self._search(ctx, subset, instructions, sets)

    # 1. Demonstration sets.

    def _demo_sets(
        self, ctx: OptimizerContext, seed: Candidate, subset: list[Example]
    ) -> list[DemoSet]:
        """The demo sets (module doc), those that do not fit the context dropped. In
        zero-shot mode they are built for the proposals only (3 bootstrapped demos, no
        labelled ones, as DSPy)."""
        c = self.config
        boot, labels = c.max_bootstrapped_demos, c.max_labeled_demos
        if self.zero_shot:
            boot, labels = DEMOS_IN_PROPOSAL, 0
        correct: list[tuple[Example, Demo]] = []
        examples = ctx.train.sample(c.bootstrap_examples, ctx.rng) if boot else []
        # Bootstrapping is skipped when the budget cannot pay for it and one trial.
        if examples and self.has_room(ctx, task=len(examples) + len(subset)):
            result = self.evaluate(ctx, seed, examples, BOOTSTRAP)
            correct = shots.bootstrapped(result, examples, c.bootstrap_threshold)
            order = {ex.id: i for i, ex in enumerate(ctx.train)}
            correct.sort(key=lambda pair: order.get(pair[0].id, 0))
        sets = build_demo_sets(
            seed.prompt.demos,
            list(ctx.train),
            correct,
            num_sets=c.num_demo_sets,
            max_bootstrapped=boot,
            max_labeled=labels,
            rng=ctx.rng,
        )
        if self.zero_shot:
            return sets
        probe = max(subset, key=lambda ex: len(ex.input_text))
        limit = shots.context_limit(ctx.evaluator, c.max_context_fraction)
        kept = sets[:1]
        for s in sets[1:]:
            tokens = shots.prompt_tokens(ctx.evaluator, seed.prompt.with_demos(s.demos), probe)
            if tokens > limit:
                self.reject(ctx, f"demo set skipped: {tokens} tokens > {limit} allowed", 0)
            else:
                kept.append(s)
        return kept

    # 2. Grounded instruction proposals.

    def _propose(self, ctx: OptimizerContext, sets: list[DemoSet]) -> list[str]:
        """New instructions, distinct from the seed's and from each other. The data
        summary is asked for only when the budget pays for it and one proposal."""
        seed_text = ctx.seed_prompt.instruction
        n = self.num_instructions()
        summary = self._summary(ctx) if self.has_room(ctx, optimizer=2) else None
        found: list[str] = []
        for k in range(1, n + 1):
            if not self.has_room(ctx, optimizer=1):
                break
            tip = TIPS[ctx.rng.choice(list(TIPS))]
            meta = self._proposal_prompt(ctx, summary, shown_demos(sets, k % len(sets)), tip)
            text = self.propose(ctx, meta, sample_index=k, step=0, forbidden=(seed_text,))
            if text is None:
                continue
            if text in found:
                self.reject(ctx, "duplicate of a proposal", 0)
                continue
            found.append(text)
        return found

    def _summary(self, ctx: OptimizerContext) -> str | None:
        """The optimizer model's summary of some train examples; None (counted as a
        rejected reply) when the reply holds none."""
        examples = list(ctx.train)[: self.config.view_data_batch_size]
        if not examples:
            return None
        template = load_template("mipro_summary.txt")
        text = ""
        for k in range(len(examples), 0, -1):
            text = fill(template, {"examples": format_examples(examples[:k])})
            if self._fits(ctx, text):
                break
        reply = self.ask(ctx, text, sample_index=0, step=0)
        if reply is None:
            return None
        parsed = parse_summary(reply)
        if parsed.text is None:
            self.reject(ctx, f"data summary: {parsed.reason}", 0)
        return parsed.text

    def _proposal_prompt(
        self, ctx: OptimizerContext, summary: str | None, demos: list[Demo], tip: str
    ) -> str:
        """The proposal meta-prompt, demos dropped from the end until it fits the
        optimizer model's context with room for the reply."""
        task = ctx.task_description.strip()
        fields = {
            "summary": f"Dataset description: {summary}\n" if summary else "",
            "task": f"The task: {task}\n" if task else "",
            "prompt": ctx.seed_prompt.instruction,
            "tip": f"Tip: {tip}\n" if tip else "",
        }
        template = load_template("mipro_propose.txt")
        text = ""
        for k in range(len(demos), -1, -1):
            shown = f"Example inputs and outputs:\n\n{format_demos(demos[:k])}\n" if k else ""
            text = fill(template, {**fields, "demos": shown})
            if self._fits(ctx, text):
                break
        return text

    def _fits(self, ctx: OptimizerContext, text: str) -> bool:
        model = ctx.optimizer_model
        request = CompletionRequest(messages=(Message("user", text),))
        return model.prompt_tokens(request) + self.config.max_tokens <= model.context_length

    # 3. Bayesian search.

    def _search(
        self,
        ctx: OptimizerContext,
        subset: list[Example],
        instructions: list[str],
        sets: list[DemoSet],
    ) -> None:
        c = self.config
        seed = ctx.pool.get(ctx.seed_prompt.id)
        search = TrialSearch(len(instructions), len(sets), ctx.rng.randrange(2**31))
        seed_value = seed.evaluations[SUBSET].selection_mean
        search.observe((0, 0), seed_value)
        done: set[Combination] = {(0, 0)}  # combinations scored on the whole subset
        means: dict[Combination, list[float]] = {}
        batch_size = min(c.minibatch_size, len(subset))
        since_full = 0
        for t in range(1, c.num_trials + 1):
            # The trial and a closing full evaluation of a combination already scored
            # on a minibatch: at most the subset's size in task calls.
            if not self.has_room(ctx, task=len(subset)):
                self._full_evaluation(ctx, subset, means, done, search)
                raise NoRoom
            asked = search.ask()
            combo = search.combination(asked)
            cand = self._candidate(ctx, combo, instructions, sets, t)
            if cand is None:
                search.fail(asked)
                continue
            batch = sample_minibatch(subset, batch_size, ctx.rng)
            value = self.evaluate(ctx, cand, batch, tpe_trial(t)).selection_mean
            if math.isnan(value):  # every call failed: not a score
                search.fail(asked)
            else:
                search.tell(asked, value)
                means.setdefault(combo, []).append(value)
            since_full += 1
            if since_full == c.minibatch_full_eval_steps:
                since_full = 0
                if not self._full_evaluation(ctx, subset, means, done, search):
                    raise NoRoom
            self.step_finished(ctx, t)
        if since_full:
            self._full_evaluation(ctx, subset, means, done, search)

    def _full_evaluation(
        self,
        ctx: OptimizerContext,
        subset: list[Example],
        means: dict[Combination, list[float]],
        done: set[Combination],
        search: TrialSearch,
    ) -> bool:
        """Scores the combination with the best mean minibatch score not yet fully
        evaluated on the whole subset (DSPy's full evaluation), and tells Optuna;
        False when the budget cannot pay for it beside the final selection."""
        combo = best_mean(means, done)
        if combo is None:
            return True
        cand = self._combos[combo]
        assert cand is not None  # only scored combinations have means
        known = {r.example_id for ev in cand.evaluations.values() for r in ev.scored}
        if not self.has_room(ctx, task=sum(ex.id not in known for ex in subset)):
            return False
        done.add(combo)
        value = self.evaluate(ctx, cand, subset, SUBSET).selection_mean
        if not math.isnan(value):
            search.observe(combo, value)
        return True

    def _candidate(
        self,
        ctx: OptimizerContext,
        combo: Combination,
        instructions: list[str],
        sets: list[DemoSet],
        t: int,
    ) -> Candidate | None:
        """The pool's candidate of a combination, added on first use; None when the
        user's constraints reject it (counted once)."""
        if combo in self._combos:
            return self._combos[combo]
        i, j = combo
        seed = ctx.seed_prompt
        prompt = seed if i == 0 else seed.with_instruction(instructions[i])
        if j:
            prompt = prompt.with_demos(sets[j].demos)
        cand = self._existing(ctx, prompt) or self.add_candidate(
            ctx,
            prompt,
            parents=(seed.id,),
            operation="trial",
            step=t,
            note=f"instruction {i}, demo set {j}",
        )
        cand = cand or self._existing(ctx, prompt)
        self._combos[combo] = cand
        return cand

    @staticmethod
    def _existing(ctx: OptimizerContext, prompt: Prompt) -> Candidate | None:
        """The pool's candidate for `prompt` as the constraints leave it, if any."""
        kept = ctx.constraints.apply(prompt).prompt
        return ctx.pool.get(kept.id) if kept is not None and kept.id in ctx.pool else None


class TrialSearch:
    """Optuna's TPE sampler over (instruction, demo set), asked and told trial by trial:
    seeded and multivariate as DSPy's, in memory, its logging silenced. The same seed
    and the same observed values give the same trials."""

    def __init__(self, instructions: int, demo_sets: int, seed: int) -> None:
        import optuna
        from optuna.distributions import CategoricalDistribution

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self._optuna = optuna
        self.distributions: dict[str, Any] = {
            "instruction": CategoricalDistribution(list(range(instructions)))
        }
        if demo_sets > 1:
            self.distributions["demos"] = CategoricalDistribution(list(range(demo_sets)))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # multivariate TPE is "experimental"
            sampler = optuna.samplers.TPESampler(seed=seed, multivariate=True)
            self.study = optuna.create_study(direction="maximize", sampler=sampler)

    def ask(self) -> optuna.trial.Trial:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return self.study.ask(self.distributions)

    @staticmethod
    def combination(asked: optuna.trial.Trial) -> Combination:
        return (int(asked.params["instruction"]), int(asked.params.get("demos", 0)))

    def tell(self, asked: optuna.trial.Trial, value: float) -> None:
        self.study.tell(asked, value)

    def fail(self, asked: optuna.trial.Trial) -> None:
        self.study.tell(asked, state=self._optuna.trial.TrialState.FAIL)

    def observe(self, combo: Combination, value: float) -> None:
        """Adds a finished trial (the seed's score, a full evaluation), as DSPy does."""
        params: dict[str, Any] = {"instruction": combo[0]}
        if "demos" in self.distributions:
            params["demos"] = combo[1]
        self.study.add_trial(
            self._optuna.trial.create_trial(
                params=params, distributions=self.distributions, value=value
            )
        )


# The parts of the algorithm, as functions.


def build_demo_sets(
    seed_demos: tuple[Demo, ...],
    train: list[Example],
    correct: list[tuple[Example, Demo]],
    *,
    num_sets: int,
    max_bootstrapped: int,
    max_labeled: int,
    rng: random.Random,
) -> list[DemoSet]:
    """`num_sets` demo sets as DSPy's create_n_fewshot_demo_sets makes them: the seed's
    own demos; `max_labeled` labelled examples; the first `max_bootstrapped` of
    `correct` (bootstrapped demos, in train order); then seeded draws of 1 to
    `max_bootstrapped` of them. Bootstrapped sets are filled up to `max_labeled` with
    labelled examples not bootstrapped. Sets equal to an earlier one are dropped."""
    used = {ex.id for ex, _ in correct}
    rest = [ex for ex in train if ex.id not in used]
    demos = [d for _, d in correct]
    sets = [DemoSet(seed_demos)]
    if max_labeled:
        sets.append(DemoSet(shots.labelled(rng.sample(train, min(max_labeled, len(train))))))
    draws = 0
    while len(sets) < num_sets and draws < 3 * num_sets:  # few demos: few distinct sets
        if draws == 0:
            boot = demos[:max_bootstrapped]  # DSPy's unshuffled set
        else:
            size = rng.randint(1, max_bootstrapped) if max_bootstrapped else 0
            boot = rng.sample(demos, min(size, len(demos)))
        draws += 1
        fill_up = rng.sample(rest, min(max(0, max_labeled - len(boot)), len(rest)))
        drawn = DemoSet((*boot, *shots.labelled(fill_up)), len(boot))
        if drawn.demos and drawn not in sets:
            sets.append(drawn)
    return sets


def shown_demos(sets: list[DemoSet], j: int, k: int = DEMOS_IN_PROPOSAL) -> list[Demo]:
    """Up to `k` bootstrapped demos for a proposal made with demo set `j`: from set `j`,
    then the sets after it, then those before (DSPy's gather_examples_from_sets); none
    for set 0, as DSPy."""
    if j == 0:
        return []
    out: list[Demo] = []
    for s in [*sets[j:], *sets[:j]]:
        for demo in s.demos[: s.bootstrapped]:
            if len(out) == k:
                return out
            out.append(demo)
    return out


def best_mean(means: dict[Combination, list[float]], done: set[Combination]) -> Combination | None:
    """The combination with the highest mean minibatch score not in `done` (the
    first one tried at a tie), None if every one is (DSPy's
    get_program_with_highest_avg_score)."""
    best: Combination | None = None
    best_value = -math.inf
    for combo, values in means.items():
        value = sum(values) / len(values)
        if combo not in done and value > best_value:
            best, best_value = combo, value
    return best


def parse_summary(reply: str) -> Parsed:
    """The data summary in a reply: the text inside <summary> (closed or not), else
    the reply without chatter; cut at SUMMARY_CHARS. Empty, too short, or holding
    template tags: rejected."""
    raw = extract_tagged(reply, "summary")
    text = clean(raw if raw is not None else reply)
    if not text:
        return Parsed(None, "empty")
    if len(text) < 8:
        return Parsed(None, "too short")
    if re.search(r"</?[a-z_]+>", text, re.IGNORECASE):
        return Parsed(None, "contains template tags")
    return Parsed(_clip(text, SUMMARY_CHARS))


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."


def _demo_input(demo: Demo) -> str:
    if isinstance(demo.input, str):
        return demo.input
    return "; ".join(f"{k}: {v}" for k, v in demo.input.items())


def format_examples(examples: list[Example]) -> str:
    """Train examples as the data summary prompt shows them (input and answer)."""
    return "\n\n".join(
        f"Input: {_clip(ex.input_text, _INPUT_CHARS)}\n"
        f"Answer: {_clip(' / '.join(ex.targets), _OUTPUT_CHARS) or '(not given)'}"
        for ex in examples
    )


def format_demos(demos: list[Demo]) -> str:
    """Demonstrations as a proposal shows them."""
    return "\n\n".join(
        f"Input: {_clip(_demo_input(d), _INPUT_CHARS)}\nOutput: {_clip(d.output, _OUTPUT_CHARS)}"
        for d in demos
    )
