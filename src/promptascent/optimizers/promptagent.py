"""PromptAgent: strategic planning over error feedback with Monte Carlo tree search
(Wang et al., 2024, "PromptAgent: Strategic Planning with Language Models Enables
Expert-level Prompt Optimization"; reference code: XinyuanWangCS/PromptAgent).

The states of the search are prompts, its actions rewrites from error feedback. On
the screen-then-select scaffold (screening.py), a node's reward is its score on the
screening subset (the run's objective there). The tree search itself is
search/mcts.py; this module makes a node's children. Expanding a node takes
`expand_width` steps, each:

1. Errors: the node's prompt runs on the next `minibatch_size` train examples (a
   seeded shuffle, reshuffled each epoch); the examples it gets wrong are its errors
   (under likelihood scoring the least likely gold answer first). A prompt right on
   the whole minibatch gets no child from this step.
2. Feedback: the optimizer model reads the errors and says why the prompt fails on
   them (the "gradient"; ProTeGi's template and parsing, optimizers/feedback.py).
3. Rewrite: it reads the errors, that feedback and the prompts on the path from the
   root, and writes `num_new_prompts` new prompts (templates/promptagent_rewrite.txt);
   each is a child, scored on the subset for its reward (lineage: operation
   `expand`, the node as parent, the child's depth as step).

A malformed reply is a rejected proposal (counted, reported), never a crash. An
expansion that made no child is tried again (new minibatches, new samples), up to
`expand_tries` times for a node before it counts as terminal (search/mcts.py).
`iteration_num` iterations run, or fewer when the budget only pays for the final
selection or when no node is left to expand (the search says so: SearchStopped).
The finalists: the best node on the path with the highest mean reward
(PromptAgent's choice), the best node by reward, the best node on the path with the
highest mean Q, then the others by reward, `final_k - 1` of them with the seed.
"""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import Field

from promptascent.data.example import Example
from promptascent.events import SearchStopped
from promptascent.optimizers.base import OptimizerContext, load_template
from promptascent.optimizers.estimate import SearchEstimate
from promptascent.optimizers.feedback import (
    OUTPUT_CHARS,
    Error,
    failures,
    fit_errors,
    parse_prompt_replies,
    parse_prompt_reply,
    parse_reasons,
)
from promptascent.optimizers.options import SamplingOptions, ScreeningOptions, default
from promptascent.optimizers.registry import register
from promptascent.optimizers.screening import ScreenThenSelect
from promptascent.search.mcts import Node, Tree, best_node
from promptascent.search.minibatch import iter_minibatches
from promptascent.search.pool import Candidate
from promptascent.search.splits import SUBSET, expansion

# The subset is sized so that it takes at most this share of the task calls the
# search has (beside the final selection's reserve) per node scored on it: the root
# and several expansions must fit (at 100 task calls: about 8 examples).
REWARD_SHARE = 1 / 8

# Tokens of one shown prompt of the trajectory, for the estimate.
_PROMPT_TOKENS = 40


class PromptAgentConfig(ScreeningOptions, SamplingOptions):
    iteration_num: int = Field(
        12,
        ge=0,
        description=(
            "MCTS iterations at most (PromptAgent's MCTS: 12; its example config: 10); "
            "the budget may end the search sooner."
        ),
    )
    expand_width: int = Field(
        3,
        ge=1,
        description="Feedback-and-rewrite steps per expansion, a minibatch each (PromptAgent: 3).",
    )
    num_new_prompts: int = Field(
        1, ge=1, description="New prompts asked for per rewrite (PromptAgent: 1)."
    )
    depth_limit: int = Field(
        8,
        ge=1,
        description="Depth of the deepest node (PromptAgent's MCTS: 8; its example config: 5).",
    )
    expand_tries: int = Field(
        3,
        ge=1,
        description=(
            "Expansions of a node that made no child (every rewrite rejected, or no error) "
            "before it counts as terminal (PromptAgent retries without limit)."
        ),
    )
    min_depth: int = Field(
        2,
        ge=0,
        description=(
            "Early stop and the reward floor apply only to nodes deeper than this (PromptAgent: 2)."
        ),
    )
    w_exp: float = Field(2.5, ge=0.0, description="Exploration weight of UCT (PromptAgent: 2.5).")
    minibatch_size: int = Field(
        5,
        ge=1,
        description="Train examples a prompt runs on to find its errors (PromptAgent: 5).",
    )
    eval_examples: int = default(
        "eval_examples",
        20,
        "the shared default; at most an eighth of the search's task calls",
        description="Dev examples each node is scored on for its reward (the subset).",
    )
    temperature: float = default("temperature", 1.0, "PromptAgent's optimizer model: 1.0")
    max_tokens: int = default("max_tokens", 160, "feedback lists reasons; a rewrite is whole")


@register
class PromptAgent(ScreenThenSelect):
    name = "promptagent"
    Config = PromptAgentConfig
    config: PromptAgentConfig

    def __init__(self, config: PromptAgentConfig | None = None) -> None:
        super().__init__(config)
        self._subset_size: int | None = None
        self.tree: Tree | None = None  # the last search's tree
        self._expansions = 0  # expansion steps so far: each names its minibatch split

    # Planning.

    def estimate(self, train_size: int, dev_size: int, example_tokens: int) -> SearchEstimate:
        c = self.config
        subset = min(c.eval_examples, dev_size)
        batch = min(c.minibatch_size, train_size)
        # Each iteration expands at most one node per depth below the limit, or one
        # node twice when its first expansion made no child (then the path ends).
        steps = c.iteration_num * max(c.depth_limit, 2) * c.expand_width
        shown = min(example_tokens, 100) + OUTPUT_CHARS // 4 + 8
        return SearchEstimate(
            task_calls=subset + steps * (batch + c.num_new_prompts * subset) + c.final_k * dev_size,
            optimizer_calls=2 * steps,
            optimizer_prompt_tokens=(
                150 + c.minibatch_size * shown + c.depth_limit * _PROMPT_TOKENS + c.max_tokens
            ),
            optimizer_max_tokens=c.max_tokens,
        )

    def prepare(self, ctx: OptimizerContext) -> None:
        c = self.config
        self.tree = None
        self._expansions = 0
        self._subset_size = min(c.eval_examples, len(ctx.dev))
        left = ctx.guard.task_calls_left()
        if left is not None:
            search = left - self.final_reserve(c.final_k * len(ctx.dev))
            self._subset_size = max(1, min(self._subset_size, int(search * REWARD_SHARE)))

    def subset_size(self, ctx: OptimizerContext) -> int:
        """The reward subset: `eval_examples`, fewer on a small budget (REWARD_SHARE)."""
        return self.config.eval_examples if self._subset_size is None else self._subset_size

    # Search.

    def explore(self, ctx: OptimizerContext, subset: list[Example]) -> None:
        c = self.config
        seed = ctx.pool.get(ctx.seed_prompt.id)
        tree = Tree(
            seed.id,
            _reward(ctx, seed),
            w_exp=c.w_exp,
            depth_limit=c.depth_limit,
            min_depth=c.min_depth,
            expand_tries=c.expand_tries,
        )
        self.tree = tree
        batches = iter_minibatches(list(ctx.train), c.minibatch_size, ctx.rng, epochs=None)
        for iteration in range(1, c.iteration_num + 1):
            tree.iterate(lambda node: self._expand(ctx, tree, node, batches, subset))
            self.step_finished(ctx, iteration)
            if tree.exhausted() and iteration < c.iteration_num:
                ctx.emit(
                    SearchStopped(
                        f"no node left to expand after iteration {iteration} (each leaf "
                        "is at the depth limit, below the reward floor, or made no new "
                        f"prompt in {c.expand_tries} expansions)"
                    )
                )
                return

    def _expand(
        self,
        ctx: OptimizerContext,
        tree: Tree,
        node: Node,
        batches: Iterator[list[Example]],
        subset: list[Example],
    ) -> None:
        """`expand_width` feedback-and-rewrite steps from `node` (module docstring),
        each child scored on the subset and added to the tree."""
        c = self.config
        parent = ctx.pool.get(node.key)
        depth = node.depth + 1  # the children's
        for _ in range(c.expand_width):
            batch = next(batches, None)
            if not batch:
                return
            # The minibatch run, the feedback and the rewrite, and the children's
            # rewards: a child the budget could not score has no reward.
            self.need(ctx, task=len(batch) + c.num_new_prompts * len(subset), optimizer=2)
            self._expansions += 1
            result = self.evaluate(ctx, parent, batch, expansion(self._expansions))
            errors = failures(result, batch)
            if not errors:
                continue  # right on the whole minibatch: nothing to correct
            gradient = self._feedback(ctx, parent, errors, depth)
            if gradient is None:
                continue
            for child in self._rewrite(ctx, node, parent, errors, gradient, depth):
                self.evaluate(ctx, child, subset, SUBSET)
                tree.add_child(node, child.id, _reward(ctx, child))

    def _feedback(
        self, ctx: OptimizerContext, parent: Candidate, errors: list[Error], step: int
    ) -> str | None:
        """Why the prompt fails on `errors`, in the optimizer model's words (a list of
        reasons); None (counted) when the reply holds no usable reason."""
        c = self.config
        fields = {"prompt": parent.prompt.instruction, "count": "the reasons"}
        meta = fit_errors(
            ctx.optimizer_model, load_template("protegi_gradient.txt"), fields, errors, c.max_tokens
        )
        reply = self.ask(ctx, meta, sample_index=0, step=step)
        if reply is None:
            return None
        reasons = parse_reasons(reply, echo=meta)
        if not reasons:
            self.reject(ctx, "no usable reason", step)
            return None
        return reasons[0] if len(reasons) == 1 else "\n".join(f"- {r}" for r in reasons)

    def _rewrite(
        self,
        ctx: OptimizerContext,
        node: Node,
        parent: Candidate,
        errors: list[Error],
        gradient: str,
        step: int,
    ) -> list[Candidate]:
        """Up to `num_new_prompts` new candidates from one rewrite reply; each unusable
        prompt, or one the pool already has, is counted as rejected."""
        n = self.config.num_new_prompts
        count = "one new instruction" if n == 1 else f"{n} new instructions"
        fields = {
            "prompt": parent.prompt.instruction,
            "gradient": gradient,
            "trajectory": _trajectory(ctx, node),
            "count": count,
        }
        meta = fit_errors(
            ctx.optimizer_model,
            load_template("promptagent_rewrite.txt"),
            fields,
            errors,
            self.config.max_tokens,
        )
        reply = self.ask(ctx, meta, sample_index=0, step=step)
        if reply is None:
            return []
        forbidden = (parent.prompt.instruction,)
        if n == 1:
            parsed = [parse_prompt_reply(reply, forbidden=forbidden)]
        else:
            parsed = parse_prompt_replies(reply, forbidden=forbidden)[:n]
        out: list[Candidate] = []
        for p in parsed:
            if p.text is None:
                self.reject(ctx, p.reason, step)
                continue
            child = self.add_candidate(
                ctx,
                parent.prompt.with_instruction(p.text),
                parents=(parent.id,),
                operation="expand",
                step=step,
                note=gradient,
            )
            if child is None:
                self.reject(ctx, "duplicate of a candidate", step)
                continue
            out.append(child)
        return out

    # The finalists.

    def select_final(
        self,
        ctx: OptimizerContext,
        ranked: list[Candidate],
        *,
        others: int,
        screened: list[Example],
        keep: tuple[Candidate, ...] = (),
    ) -> list[Candidate]:
        """The scaffold's final selection, with the tree's picks first among the
        others: they are the last dropped when the budget makes the final smaller."""
        return super().select_final(
            ctx, self.finalist_order(ctx, ranked), others=others, screened=screened, keep=keep
        )

    def finalist_order(self, ctx: OptimizerContext, ranked: list[Candidate]) -> list[Candidate]:
        """The best node on the best reward path (PromptAgent's pick), the best by
        reward (`ranked[0]`), the best node on the best Q path, then the rest of
        `ranked`, each once."""
        tree = self.tree
        on_reward = best_node(tree.best_reward_path()) if tree is not None else None
        on_q = best_node(tree.best_q_path()) if tree is not None else None
        keys = [
            *(n.key for n in (on_reward,) if n is not None),
            *(c.id for c in ranked[:1]),
            *(n.key for n in (on_q,) if n is not None),
            *(c.id for c in ranked),
        ]
        return [ctx.pool.get(k) for k in dict.fromkeys(keys)]


def _reward(ctx: OptimizerContext, cand: Candidate) -> float:
    """The node's reward: the run's objective on the subset (what selection compares,
    less the task's length penalty)."""
    value = ctx.pool.objective(cand, SUBSET)
    return 0.0 if value is None else value


def _trajectory(ctx: OptimizerContext, node: Node) -> str:
    """The instructions from the root to `node`, numbered, as PromptAgent shows them."""
    chain: list[Node] = []
    at: Node | None = node
    while at is not None:
        chain.append(at)
        at = at.parent
    lines = [
        f"({i}) {ctx.pool.get(n.key).prompt.instruction}" for i, n in enumerate(reversed(chain))
    ]
    return "\n".join(lines)
