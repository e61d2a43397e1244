"""Monte Carlo tree search over prompts, as PromptAgent plans (Wang et al., 2024;
reference code: XinyuanWangCS/PromptAgent, src/prompt_optim_agent/search_algo/mcts.py,
itself adapted from llm-reasoners).

A node is a prompt (its candidate id) with its reward; its children are the prompts
rewritten from it. The tree only counts and chooses: the caller's `expand` makes the
children (and pays for them) and gives each its reward. One iteration:

1. Selection: from the root, the child with the highest UCT, until a node without
   children or a terminal one.
2. Expansion: that node's children are made (unless it is terminal).
3. Simulation: from it, the child with the highest reward is taken, expanded in turn,
   and so on, until a terminal node, a node without children after its expansion, or
   an early stop (a reward above every reward simulated so far, deeper than
   `min_depth`).
4. Back-propagation: each node of the path gets, as one more cumulative reward, the
   sum of the rewards from it to the end of the path; its Q is their mean.

Terminal: at `depth_limit`; or deeper than `min_depth` with a reward below the mean of
the root's and the parent's; or a node whose `expand_tries` expansions made no child.
A node whose expansion made no child (every proposal rejected, or no error to learn
from) ends its iteration's path and is expanded again when a later selection or
simulation reaches it, as in the reference, which retries without limit; here at most
`expand_tries` times in all. `exhausted` says when no iteration can expand anything.

Pure: no model, no budget. Exceptions from `expand` (the caller's budget stop) end the
iteration; its path so far stays in `paths`, without back-propagation.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(eq=False)
class Node:
    """A prompt in the tree: `key` (the candidate id), its `reward`, its place, and
    the cumulative rewards back-propagated through it (one per iteration)."""

    key: str
    reward: float
    parent: Node | None = field(default=None, repr=False)
    children: list[Node] = field(default_factory=list)
    cum_rewards: list[float] = field(default_factory=list)
    terminal: bool = False
    expansions: int = 0  # the expansions run on it (more than one: they made no child)

    @property
    def depth(self) -> int:
        return 0 if self.parent is None else self.parent.depth + 1

    @property
    def visits(self) -> int:
        """Iterations back-propagated through the node (N in UCT)."""
        return len(self.cum_rewards)

    @property
    def q(self) -> float:
        """The mean cumulative reward; the node's own reward before any."""
        if not self.cum_rewards:
            return self.reward
        return sum(self.cum_rewards) / len(self.cum_rewards)


Expand = Callable[["Node"], None]


class Tree:
    """The search tree from a root prompt; `w_exp` weighs exploration in UCT,
    `depth_limit`, `min_depth` and `expand_tries` as in the module docstring."""

    def __init__(
        self,
        root_key: str,
        root_reward: float,
        *,
        w_exp: float,
        depth_limit: int,
        min_depth: int,
        expand_tries: int = 1,
    ) -> None:
        if expand_tries < 1:
            raise ValueError(f"expand_tries must be at least 1, not {expand_tries}")
        self.root = Node(root_key, root_reward)
        self.w_exp = w_exp
        self.depth_limit = depth_limit
        self.min_depth = min_depth
        self.expand_tries = expand_tries
        # The highest reward simulated so far (PromptAgent's mcts_threshold), and the
        # root's reward, the floor of the terminal rule (its min_threshold).
        self.threshold = root_reward
        self.floor = root_reward
        self.nodes: list[Node] = [self.root]
        self.paths: list[list[Node]] = []  # each iteration's path, in order

    # The rules.

    def uct(self, node: Node) -> float:
        """Q + w_exp * sqrt(ln(N(parent) + 1) / max(1, N(node))): the reference's
        form, where an unvisited node's Q is its reward."""
        parent_visits = 0 if node.parent is None else node.parent.visits
        return node.q + self.w_exp * math.sqrt(math.log(parent_visits + 1) / max(1, node.visits))

    def at_depth_limit(self, node: Node) -> bool:
        return node.depth >= self.depth_limit

    def below_floor(self, node: Node) -> bool:
        """Deeper than `min_depth` and rewarded below the mean of the root's reward and
        the parent's."""
        parent = self.floor if node.parent is None else (self.floor + node.parent.reward) / 2
        return node.reward < parent and node.depth > self.min_depth

    def is_terminal(self, node: Node) -> bool:
        return node.terminal or self.at_depth_limit(node) or self.below_floor(node)

    def early_stop(self, node: Node) -> bool:
        """A reward above every one simulated so far, deeper than `min_depth`."""
        return node.reward > self.threshold and node.depth > self.min_depth

    # Growing the tree.

    def add_child(self, parent: Node, key: str, reward: float) -> Node:
        """A new child of `parent` (made by the caller's `expand`)."""
        child = Node(key, reward, parent)
        child.terminal = self.is_terminal(child)
        parent.children.append(child)
        self.nodes.append(child)
        return child

    def expand(self, node: Node, expand: Expand) -> None:
        """`expand(node)` unless the node is terminal (then it is marked so) or has
        children; a node left without children after its `expand_tries`-th expansion
        is terminal."""
        if self.is_terminal(node):
            node.terminal = True
            return
        if node.children:
            return
        node.expansions += 1
        expand(node)
        if not node.children and node.expansions >= self.expand_tries:
            node.terminal = True

    def exhausted(self) -> bool:
        """Whether no iteration can expand anything: every node a selection can reach
        (through non-terminal nodes with children) is terminal or has children."""
        stack = [self.root]
        while stack:
            node = stack.pop()
            if self.is_terminal(node):
                continue
            if not node.children:
                return False
            stack.extend(node.children)
        return True

    # One iteration.

    def select(self, path: list[Node]) -> None:
        """Appends to `path` the root and, while the last node has children and is
        not terminal, its child with the highest UCT (the first at a tie)."""
        node = self.root
        while True:
            path.append(node)
            if not node.children or self.is_terminal(node):
                return
            node = max(node.children, key=self.uct)

    def simulate(self, path: list[Node], expand: Expand) -> None:
        """From the last node of `path`: stop early, or at a terminal node; else expand
        it if it has no children (a second time in the iteration for the node the
        iteration expanded, as the reference does), and go on to its child with the
        highest reward (the first at a tie). A node still without children ends the
        path (terminal once out of tries)."""
        node = path[-1]
        while True:
            if self.early_stop(node):
                node.terminal = self.is_terminal(node)
                self.threshold = max(self.threshold, node.reward)
                return
            self.threshold = max(self.threshold, node.reward)
            if self.is_terminal(node):
                return
            if not node.children:
                self.expand(node, expand)
            if not node.children:
                return
            node = max(node.children, key=lambda child: child.reward)
            path.append(node)

    def back_propagate(self, path: list[Node]) -> list[float]:
        """Adds to each node of `path` the sum of the rewards from it to the end of the
        path; returns those sums, root first."""
        sums: list[float] = []
        total = 0.0
        for node in reversed(path):
            total += node.reward
            node.cum_rewards.append(total)
            sums.append(total)
        return sums[::-1]

    def iterate(self, expand: Expand) -> list[Node]:
        """Selection, expansion, simulation, back-propagation; returns the path (also
        kept in `paths` from the start, so a path cut short by an exception is there)."""
        path: list[Node] = []
        self.paths.append(path)
        self.select(path)
        if not self.at_depth_limit(path[-1]):
            self.expand(path[-1], expand)
            self.simulate(path, expand)
        self.back_propagate(path)
        return path

    # The output.

    def best_reward_path(self) -> list[Node]:
        """The path with the highest mean reward (the first at a tie); [] if none."""
        return _best(self.paths, lambda p: sum(n.reward for n in p) / len(p))

    def best_q_path(self) -> list[Node]:
        """The path with the highest mean Q (the first at a tie); [] if none."""
        return _best(self.paths, lambda p: sum(n.q for n in p) / len(p))


def best_node(path: list[Node]) -> Node | None:
    """The node with the highest reward on `path` (the shallowest at a tie): the node
    PromptAgent returns, from the best reward path."""
    return max(path, key=lambda n: n.reward) if path else None


def _best(paths: list[list[Node]], value: Callable[[list[Node]], float]) -> list[Node]:
    scored = [p for p in paths if p]
    return max(scored, key=value) if scored else []
