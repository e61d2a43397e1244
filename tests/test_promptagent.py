"""PromptAgent on scripted models: it finds the hidden key instruction within budget,
by generation and by likelihood; the rewrite shows the errors, the feedback and the
path of prompts from the root; lineage is parent, `expand` and depth; malformed
replies are rejected proposals, never a crash; the same seed gives the same run; no
budget is exceeded; a killed run resumes to the same result. The tree search
(search/mcts.py) as unit tests on hand-made trees, with exact numbers. One
end-to-end run on the embedded model."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from scripted import (
    KEY,
    PET_KEY,
    PET_SEED,
    pet_proposals,
    pet_proposer,
    pet_settings,
    stored_candidates,
    stored_events,
    write_animal_task,
    write_pet_task,
)
from test_pmpo import pet_loglik

from promptascent import RunSettings, optimize
from promptascent.errors import ConfigError
from promptascent.llm.embedded import EmbeddedLLM
from promptascent.llm.scripted import ScriptedLLM
from promptascent.llm.types import CompletionRequest
from promptascent.optimizers import registry
from promptascent.optimizers.feedback import parse_prompt_replies
from promptascent.optimizers.promptagent import PromptAgent
from promptascent.prompts.prompt import Prompt
from promptascent.search.mcts import Node, Tree, best_node
from promptascent.search.pool import Candidate, CandidatePool

REPO = Path(__file__).resolve().parents[1]
GRADIENT = "could have gotten these examples wrong"  # in the feedback request only


def lineage(run_dir: Path) -> list[tuple[Any, ...]]:
    return [
        (c["id"], tuple(c["parents"]), c["operation"], c["step"])
        for c in stored_candidates(run_dir)
    ]


# Whole searches on the pet task.


def test_promptagent_finds_the_key_by_expansion_within_budget(tmp_path: Path) -> None:
    task = write_pet_task(tmp_path / "task")
    result = optimize(
        task,
        optimizer="promptagent",
        budget={"task_calls": 300},
        settings=pet_settings(tmp_path),
    )
    assert result.best.prompt.instruction == PET_KEY
    assert result.best.operation == "expand" and result.best.parents == (result.seed.id,)
    assert result.best.step == 1  # the depth: a child of the root
    assert result.search_usage["task"]["calls"] <= 300
    assert result.test_best is not None and result.test_best.mean == 1.0
    row = next(c for c in stored_candidates(result.run_dir) if c["id"] == result.best.id)
    assert row["scores"]["dev-subset"]["mean"] == 1.0 and row["scores"]["dev"]["n"] == 63


def test_each_nodes_lineage_is_its_parent_expand_and_its_depth(tmp_path: Path) -> None:
    task = write_pet_task(tmp_path / "task")
    result = optimize(
        task, optimizer="promptagent", budget={"task_calls": 600}, settings=pet_settings(tmp_path)
    )
    rows = {c["id"]: c for c in stored_candidates(result.run_dir)}
    children = [c for c in rows.values() if c["id"] != result.seed.id]
    assert len(children) >= 10
    for c in children:
        assert c["operation"] == "expand" and len(c["parents"]) == 1
        assert c["step"] == rows[c["parents"][0]]["step"] + 1
    # the tree went deeper than the root's children (the simulation goes on from the
    # best child) but never past the depth limit (8)
    assert 2 <= max(c["step"] for c in children) <= 8


def test_the_rewrite_shows_the_errors_the_feedback_and_the_path_from_the_root(
    tmp_path: Path,
) -> None:
    task = write_pet_task(tmp_path / "task")
    proposer = pet_proposer()
    optimize(
        task,
        optimizer="promptagent",
        budget={"task_calls": 600},
        settings=pet_settings(tmp_path, proposer),
    )
    texts = [r.messages[-1].content for r in proposer.requests]
    feedback, rewrite = texts[0], texts[1]
    # ProTeGi's feedback request, on every error of the minibatch (PromptAgent: 5)
    assert GRADIENT in feedback and f'"{PET_SEED}"' in feedback
    assert feedback.count("Input: ") == 5 and "Model output: maybe" in feedback
    # the rewrite: the errors, the reasons given, and the prompts from the root
    assert GRADIENT not in rewrite and rewrite.count("Input: ") == 5
    assert "- It does not say which animals are pets.\n- It names no answer." in rewrite
    assert f"(0) {PET_SEED}" in rewrite and "(1) " not in rewrite
    deeper = next(t for t in texts if "(2) " in t)
    path = [line for line in deeper.splitlines() if line[:1] == "("]
    assert path[0] == f"(0) {PET_SEED}" and len(path) == 3


def test_promptagent_by_likelihood_finds_the_key(tmp_path: Path) -> None:
    task = write_pet_task(tmp_path / "task")
    task.write_text(task.read_text().replace("evaluation: {", "evaluation: {scoring: likelihood, "))
    scorer = ScriptedLLM(lambda r: "unused", loglik_fn=pet_loglik)
    proposer = pet_proposer()
    result = optimize(
        task,
        optimizer="promptagent",
        budget={"task_calls": 200},
        settings=pet_settings(tmp_path, proposer, scorer),
    )
    assert result.search_usage["task"]["calls"] <= 200
    assert result.best.prompt.instruction == PET_KEY


def test_several_new_prompts_come_from_one_rewrite_reply(tmp_path: Path) -> None:
    def respond(request: CompletionRequest) -> str:
        if GRADIENT in request.messages[-1].content:
            return "<START>It names no answer.<END>"
        assert "write 3 new instructions" in request.messages[-1].content
        return (
            f"<prompt>Answer about animal {request.seed}.</prompt>\n"
            f"<prompt>{PET_KEY}</prompt>\n<prompt>Hi</prompt>\n<prompt>Extra one.</prompt>"
        )

    task = write_pet_task(tmp_path / "task")
    result = optimize(
        task,
        optimizer="promptagent",
        options={"num_new_prompts": 3, "iteration_num": 1, "expand_width": 1},
        settings=pet_settings(tmp_path, ScriptedLLM(respond, model_id="three")),
    )
    assert result.best.prompt.instruction == PET_KEY
    # one feedback and one rewrite: two children, "Hi" rejected, the fourth not read
    assert result.search_usage["optimizer"]["calls"] == 2
    assert len(stored_candidates(result.run_dir)) == 3 and result.rejected_replies == 1


def test_malformed_replies_are_rejected_proposals_and_never_crash(tmp_path: Path) -> None:
    replies = [
        "",
        "<prompt></prompt>",
        "<prompt>Hi</prompt>",  # too short
        f"<prompt>{PET_SEED}</prompt>",  # repeats the parent
        "abcdefghijklmnopqrstuvwxyz " * 600,  # cut at 160 words: still too long
        "<prompt>Use <prompt> tags to answer.</prompt>",
    ]

    def respond(request: CompletionRequest) -> str:
        if GRADIENT in request.messages[-1].content:
            return "<START>It names no answer.<END>"
        return replies[request.seed % len(replies)]

    task = write_pet_task(tmp_path / "task")
    result = optimize(
        task,
        optimizer="promptagent",
        options={"iteration_num": 4},
        settings=pet_settings(tmp_path, ScriptedLLM(respond, model_id="junk")),
    )
    assert result.status == "finished"
    assert result.best.id == result.seed.id and len(stored_candidates(result.run_dir)) == 1
    # the root is expanded twice in iteration 1 and once in iteration 2 (expand_tries
    # 3), 3 feedback-and-rewrite steps each, every rewrite rejected; then it is
    # terminal, nothing is left to expand, and the search says so instead of running
    # the 2 iterations left for nothing
    assert result.search_usage["optimizer"]["calls"] == 3 * 3 * 2
    assert result.rejected_replies == 3 * 3
    [stop] = stored_events(result.run_dir, "SearchStopped")
    assert "no node left to expand after iteration 2" in stop["reason"]
    reasons = {e["reason"] for e in stored_events(result.run_dir, "ReplyRejected")}
    assert reasons <= {
        "empty",
        "too short",
        "too long",
        "repeats the parent",
        "contains template tags",
    }


def test_feedback_without_a_usable_reason_is_rejected_without_a_rewrite(tmp_path: Path) -> None:
    def respond(request: CompletionRequest) -> str:
        assert GRADIENT in request.messages[-1].content, "no rewrite without feedback"
        return "<START>ok<END>" if request.seed % 2 else ""

    task = write_pet_task(tmp_path / "task")
    result = optimize(
        task,
        optimizer="promptagent",
        options={"iteration_num": 2},
        settings=pet_settings(tmp_path, ScriptedLLM(respond, model_id="mute")),
    )
    assert result.status == "finished" and result.best.id == result.seed.id
    # 3 expansions of the root (expand_tries) of 3 steps, each a rejected feedback
    assert result.search_usage["optimizer"]["calls"] == 9 == result.rejected_replies
    reasons = [e["reason"] for e in stored_events(result.run_dir, "ReplyRejected")]
    assert set(reasons) == {"no usable reason"}


def test_an_expansion_that_made_no_child_is_tried_again(tmp_path: Path) -> None:
    """The first expansion's rewrites all repeat the parent (rejected); the root is
    expanded again in the same iteration and the key is found. Before retries, the
    root was terminal after one empty expansion and the search returned the seed."""
    proposals = pet_proposals()
    rewrites = iter(range(10**6))

    def respond(request: CompletionRequest) -> str:
        if GRADIENT not in request.messages[-1].content and next(rewrites) < 3:
            return f"<prompt>{PET_SEED}</prompt>"
        return proposals(request)

    task = write_pet_task(tmp_path / "task")
    result = optimize(
        task,
        optimizer="promptagent",
        options={"iteration_num": 1},
        budget={"task_calls": 300},
        settings=pet_settings(tmp_path, ScriptedLLM(respond, model_id="slow-start")),
    )
    assert result.rejected_replies == 3
    assert result.best.prompt.instruction == PET_KEY and result.best.step == 1
    assert stored_events(result.run_dir, "SearchStopped") == []


def test_same_seed_same_run(tmp_path: Path) -> None:
    task = write_pet_task(tmp_path / "task")
    budget = {"task_calls": 600}
    first = optimize(
        task, optimizer="promptagent", budget=budget, settings=pet_settings(tmp_path / "a")
    )
    second = optimize(
        task, optimizer="promptagent", budget=budget, settings=pet_settings(tmp_path / "b")
    )
    assert len(lineage(first.run_dir)) >= 10
    assert lineage(first.run_dir) == lineage(second.run_dir)
    assert first.to_dict()["test"] == second.to_dict()["test"]
    assert first.search_usage["task"]["calls"] == second.search_usage["task"]["calls"]


@pytest.mark.parametrize(
    "budget",
    [
        {"task_calls": 40},
        {"task_calls": 100},
        {"task_calls": 250},
        {"optimizer_calls": 1},
        {"optimizer_calls": 3, "task_calls": 500},
    ],
)
def test_no_budget_is_ever_exceeded(tmp_path: Path, budget: dict[str, int]) -> None:
    task = write_pet_task(tmp_path / "task")
    result = optimize(
        task,
        optimizer="promptagent",
        options={"num_new_prompts": 2},
        budget=budget,
        settings=pet_settings(tmp_path),
    )
    assert result.status in ("finished", "budget")
    if "task_calls" in budget:
        assert result.search_usage["task"]["calls"] <= budget["task_calls"]
    if "optimizer_calls" in budget:
        assert result.search_usage["optimizer"]["calls"] <= budget["optimizer_calls"]


def test_at_100_task_calls_the_reward_subset_is_sized_to_the_budget(tmp_path: Path) -> None:
    task = write_pet_task(tmp_path / "task")
    result = optimize(
        task,
        optimizer="promptagent",
        budget={"task_calls": 100},
        settings=pet_settings(tmp_path),
    )
    # 100 calls, a third kept for the final: an eighth of the 67 left is 8 examples
    rows = stored_candidates(result.run_dir)
    assert {c["scores"]["dev-subset"]["n"] for c in rows if "dev-subset" in c["scores"]} == {8}
    assert result.best.prompt.instruction == PET_KEY


def test_promptagent_under_k_fold_selection_and_constraints_finds_the_key(
    tmp_path: Path,
) -> None:
    task = write_pet_task(tmp_path / "task")
    text = task.read_text().replace("evaluation: {", "evaluation: {folds: 2, ")
    task.write_text(text + "constraints: {max_prompt_tokens: 40}\n")
    result = optimize(
        task, optimizer="promptagent", budget={"task_calls": 300}, settings=pet_settings(tmp_path)
    )
    assert result.selection_split == "cv"
    assert result.search_usage["task"]["calls"] <= 300
    assert result.best.prompt.instruction == PET_KEY


def test_a_prompt_that_breaks_the_constraints_is_no_node(tmp_path: Path) -> None:
    """A rewrite over the prompt token limit is rejected (counted) and never scored."""
    long = " ".join(["word"] * 80)
    proposals = pet_proposals()

    def respond(request: CompletionRequest) -> str:
        if GRADIENT not in request.messages[-1].content and request.seed % 2:
            return f"<prompt>{long}</prompt>"
        return proposals(request)

    task = write_pet_task(tmp_path / "task")
    task.write_text(task.read_text() + "constraints: {max_prompt_tokens: 40}\n")
    result = optimize(
        task,
        optimizer="promptagent",
        budget={"task_calls": 300},
        settings=pet_settings(tmp_path, ScriptedLLM(respond, model_id="long")),
    )
    rows = stored_candidates(result.run_dir)
    assert all(long not in c["prompt"]["instruction"] for c in rows)
    reasons = [e["reason"] for e in stored_events(result.run_dir, "ReplyRejected")]
    assert any(r.startswith("constraint:") for r in reasons)
    assert result.best.prompt.instruction == PET_KEY


# Options.


def test_promptagent_is_registered_with_the_defaults_of_promptagent() -> None:
    c = registry.create("promptagent").config
    assert "promptagent" in registry.names()
    assert (c.iteration_num, c.expand_width, c.depth_limit, c.min_depth) == (12, 3, 8, 2)
    assert (c.w_exp, c.num_new_prompts, c.minibatch_size, c.temperature) == (2.5, 1, 5, 1.0)


@pytest.mark.parametrize(
    "option",
    [
        {"bogus": 1},
        {"expand_width": 0},
        {"depth_limit": 0},
        {"w_exp": -1},
        {"iteration_num": "many"},
    ],
)
def test_bad_options_are_config_errors(tmp_path: Path, option: dict[str, Any]) -> None:
    task = write_animal_task(tmp_path / "task")
    with pytest.raises(ConfigError) as e:
        optimize(task, optimizer="promptagent", options=option, settings=pet_settings(tmp_path))
    assert next(iter(option)) in str(e.value)


def test_the_estimate_bounds_every_iteration_at_the_depth_limit() -> None:
    opt = registry.create(
        "promptagent",
        {"iteration_num": 2, "depth_limit": 3, "expand_width": 2, "eval_examples": 10},
    )
    est = opt.estimate(train_size=30, dev_size=40, example_tokens=20)
    steps = 2 * 3 * 2  # iterations x expansions per iteration x steps per expansion
    assert est.optimizer_calls == 2 * steps
    assert est.task_calls == 10 + steps * (5 + 10) + 3 * 40
    # at depth limit 1, a node without a child is expanded twice in its iteration
    opt = registry.create("promptagent", {"iteration_num": 2, "depth_limit": 1})
    assert opt.estimate(30, 40, 20).optimizer_calls == 2 * (2 * 2 * 3)


# The tree search, on hand-made trees.


def tree(root: float = 0.5, **kw: Any) -> Tree:
    return Tree("root", root, **{"w_exp": 2.5, "depth_limit": 8, "min_depth": 2, **kw})


def test_back_propagation_adds_the_sum_of_the_rewards_from_each_node_to_the_path_end() -> None:
    t = tree(0.5)
    a = t.add_child(t.root, "a", 0.6)
    b = t.add_child(t.root, "b", 0.4)
    c = t.add_child(a, "c", 0.8)
    assert t.back_propagate([t.root, a, c]) == pytest.approx([1.9, 1.4, 0.8])
    assert t.back_propagate([t.root, b]) == pytest.approx([0.9, 0.4])
    assert t.root.cum_rewards == pytest.approx([1.9, 0.9]) and t.root.q == pytest.approx(1.4)
    assert (a.q, b.q, c.q) == pytest.approx((1.4, 0.4, 0.8))
    assert (t.root.visits, a.visits, b.visits, c.visits) == (2, 1, 1, 1)


def test_uct_is_q_plus_w_exp_times_the_root_of_log_parent_visits_over_visits() -> None:
    t = tree(0.5)
    a = t.add_child(t.root, "a", 0.6)
    b = t.add_child(t.root, "b", 0.4)
    c = t.add_child(a, "c", 0.8)
    t.back_propagate([t.root, a, c])
    t.back_propagate([t.root, b])
    d = t.add_child(b, "d", 0.3)  # never visited: its Q is its reward
    assert t.uct(a) == pytest.approx(4.0203676849205126)  # 1.4 + 2.5 sqrt(ln 3 / 1)
    assert t.uct(b) == pytest.approx(3.0203676849205126)
    assert t.uct(d) == pytest.approx(2.381386527894244)  # 0.3 + 2.5 sqrt(ln 2 / 1)
    assert t.uct(t.root) == pytest.approx(1.4)  # no parent: ln 1 = 0
    path: list[Node] = []
    t.select(path)
    assert [n.key for n in path] == ["root", "a", "c"]


@pytest.mark.parametrize(("w_exp", "chosen"), [(0.0, "a"), (2.5, "b")])
def test_exploration_weight_decides_between_a_known_good_and_a_rarely_tried_child(
    w_exp: float, chosen: str
) -> None:
    t = tree(0.0, w_exp=w_exp)
    a = t.add_child(t.root, "a", 0.5)
    b = t.add_child(t.root, "b", 0.4)
    for _ in range(3):
        t.back_propagate([t.root, a])  # a: Q 0.5 after 3 visits
    t.back_propagate([t.root, b])  # b: Q 0.4 after 1
    assert t.uct(a) == pytest.approx(0.5 + w_exp * math.sqrt(math.log(5) / 3))
    assert t.uct(b) == pytest.approx(0.4 + w_exp * math.sqrt(math.log(5)))
    path: list[Node] = []
    t.select(path)
    assert path[-1].key == chosen


def scripted_expand(t: Tree, rewards: dict[str, dict[str, float]], log: list[str]) -> Any:
    """An `expand` that gives each node the children (and rewards) listed for it."""

    def expand(node: Node) -> None:
        log.append(node.key)
        for key, reward in rewards.get(node.key, {}).items():
            t.add_child(node, key, reward)

    return expand


def test_an_iteration_simulates_down_the_best_children_until_an_early_stop() -> None:
    t = tree(0.2)
    rewards = {"root": {"x1": 0.3, "x2": 0.5}, "x2": {"y": 0.4}, "y": {"z": 0.6}, "z": {"w": 1.0}}
    expanded: list[str] = []
    path = t.iterate(scripted_expand(t, rewards, expanded))
    # z (depth 3, deeper than min_depth 2) beats every reward so far: the stop
    assert [n.key for n in path] == ["root", "x2", "y", "z"] and expanded == ["root", "x2", "y"]
    assert t.threshold == 0.6 and not path[-1].terminal
    assert [n.cum_rewards for n in path] == [
        pytest.approx([1.7]),
        pytest.approx([1.5]),
        pytest.approx([1.0]),
        pytest.approx([0.6]),
    ]
    assert t.paths == [path]


def test_a_node_below_the_floor_deeper_than_min_depth_is_terminal() -> None:
    t = tree(0.4)
    a = t.add_child(t.root, "a", 0.6)
    b = t.add_child(a, "b", 0.6)
    # depth 3: the floor is the mean of the root's reward and the parent's, 0.5
    assert t.add_child(b, "low", 0.45).terminal
    assert not t.add_child(b, "high", 0.5).terminal
    # at min_depth and above, no floor
    assert not t.add_child(a, "shallow", 0.0).terminal


def test_the_depth_limit_ends_a_path_and_a_node_without_children_is_terminal() -> None:
    t = tree(0.0, depth_limit=2, min_depth=5)
    rewards = {"root": {"a": 0.1}, "a": {"b": 0.2}, "b": {"c": 0.3}}
    expanded: list[str] = []
    path = t.iterate(scripted_expand(t, rewards, expanded))
    assert [n.key for n in path] == ["root", "a", "b"] and expanded == ["root", "a"]
    assert path[-1].terminal and path[-1].depth == 2  # at the limit
    # a leaf whose expansion made nothing is marked terminal (expand_tries 1), and
    # never expanded again
    t2 = tree(0.0)
    log: list[str] = []
    t2.iterate(scripted_expand(t2, {}, log))
    t2.iterate(scripted_expand(t2, {}, log))
    assert t2.root.terminal and log == ["root"] and t2.exhausted()


def test_a_node_whose_expansion_made_no_child_is_expanded_again_up_to_its_tries() -> None:
    t = tree(0.0, expand_tries=3)
    log: list[str] = []
    t.iterate(scripted_expand(t, {}, log))
    # twice in the first iteration (the reference's second try in simulation)
    assert log == ["root", "root"] and not t.root.terminal and not t.exhausted()
    t.iterate(scripted_expand(t, {"root": {"a": 0.5}}, log))
    assert log == ["root", "root", "root", "a"] and [c.key for c in t.root.children] == ["a"]
    assert t.root.expansions == 3 and not t.root.terminal
    # out of tries: terminal, and the search has nothing left
    t3 = tree(0.0, expand_tries=3)
    for _ in range(3):
        t3.iterate(scripted_expand(t3, {}, log))
    assert t3.root.terminal and t3.root.expansions == 3 and t3.exhausted()
    with pytest.raises(ValueError, match="expand_tries"):
        tree(0.0, expand_tries=0)


def test_the_tree_is_exhausted_when_every_reachable_leaf_is_terminal() -> None:
    t = tree(0.0, depth_limit=2)
    a = t.add_child(t.root, "a", 0.5)
    assert not t.exhausted()  # a can be expanded
    t.add_child(a, "b", 0.6)  # at the depth limit: terminal
    assert t.exhausted()
    t.add_child(t.root, "c", 0.1)
    assert not t.exhausted()


def test_an_iteration_cut_short_keeps_its_path_without_back_propagation() -> None:
    t = tree(0.2)

    def expand(node: Node) -> None:
        if node.key == "root":
            t.add_child(node, "a", 0.5)
            return
        raise RuntimeError("no room")

    with pytest.raises(RuntimeError):
        t.iterate(expand)
    assert [[n.key for n in p] for p in t.paths] == [["root", "a"]]
    assert t.root.cum_rewards == []


def test_the_best_paths_and_the_best_node_on_a_path() -> None:
    t = tree(0.0)
    a = t.add_child(t.root, "a", 0.3)
    b = t.add_child(t.root, "b", 0.8)
    d = t.add_child(t.root, "d", 0.1)
    e = t.add_child(d, "e", 1.0)
    t.paths = [[t.root, a], [t.root, b], [t.root, d, e]]
    a.cum_rewards = [5.0]  # as if back-propagated from deep below
    assert t.best_reward_path() == [t.root, b]  # mean 0.4 beats 0.367 and 0.15
    assert t.best_q_path() == [t.root, a]
    assert best_node(t.best_reward_path()) is b
    tie = t.add_child(b, "tie", 0.8)
    assert best_node([t.root, b, tie]) is b  # the shallowest at a tie
    assert (
        best_node([]) is None
        and Tree("r", 0.0, w_exp=1, depth_limit=1, min_depth=0).best_q_path() == []
    )


def test_the_finalists_are_the_best_on_the_best_paths_and_the_best_by_reward() -> None:
    pool = CandidatePool()
    cands = {k: Candidate(Prompt(f"Prompt {k}.")) for k in ("root", "a", "b", "d", "e")}
    for c in cands.values():
        pool.add(c)
    opt = PromptAgent()
    t = Tree(cands["root"].id, 0.0, w_exp=2.5, depth_limit=8, min_depth=2)
    a = t.add_child(t.root, cands["a"].id, 0.3)
    b = t.add_child(t.root, cands["b"].id, 0.8)
    d = t.add_child(t.root, cands["d"].id, 0.1)
    e = t.add_child(d, cands["e"].id, 1.0)
    t.paths = [[t.root, a], [t.root, b], [t.root, d, e]]
    a.cum_rewards = [5.0]
    opt.tree = t
    ranked = [cands[k] for k in ("e", "b", "a", "d", "root")]  # by reward
    order = opt.finalist_order(SimpleNamespace(pool=pool), ranked)  # type: ignore[arg-type]
    # PromptAgent's pick (best on the best reward path), the best by reward, the best
    # on the best Q path, then the rest by reward
    assert [c.prompt.instruction for c in order] == [
        "Prompt b.",
        "Prompt e.",
        "Prompt a.",
        "Prompt d.",
        "Prompt root.",
    ]


def test_several_prompts_are_read_from_one_reply() -> None:
    got = parse_prompt_replies(
        "Sure!\n<prompt>First instruction here.</prompt>\n<prompt>Second one here.",
        forbidden=("Second one here.",),
    )
    assert [(p.text, p.reason) for p in got] == [
        ("First instruction here.", ""),
        (None, "repeats the parent"),
    ]
    start = parse_prompt_replies("<START>Alpha instruction.<END> <START>Beta instruction.<END>")
    assert [p.text for p in start] == ["Alpha instruction.", "Beta instruction."]
    assert [p.text for p in parse_prompt_replies("Name the animal you see.")] == [
        "Name the animal you see."
    ]


# The real embedded model, end to end, on a few navigate examples.


@pytest.mark.embedded
def test_promptagent_on_the_embedded_model(tmp_path: Path, embedded: EmbeddedLLM) -> None:
    task = tmp_path / "tiny.yaml"
    task.write_text(
        "name: tiny-navigate\n"
        f"data:\n  folder: {REPO / 'examples/data/navigate'}\n"
        "  limits: {train: 6, dev: 4, test: 6}\n"
        "task_params: {max_tokens: 12}\n"
        "evaluation: {concurrency: 1}\n"
        "seed: 0\n",
        encoding="utf-8",
    )
    budget: dict[str, float] = {"task_calls": 40, "optimizer_calls": 4}
    s = RunSettings(
        runs_dir=tmp_path / "runs",
        cache_dir=tmp_path / "cache",
        backends={"task": embedded, "optimizer": embedded, "judge": embedded},
    )
    result = optimize(
        task,
        optimizer="promptagent",
        options={"max_tokens": 64, "minibatch_size": 3},
        budget=budget,
        settings=s,
    )
    assert result.status in ("finished", "budget")
    assert result.search_usage["task"]["calls"] <= 40
    assert result.search_usage["optimizer"]["calls"] <= 4
    seed_dev, best_dev = result.seed.score("dev"), result.best.score("dev")
    assert seed_dev is not None and best_dev is not None and best_dev >= seed_dev
    assert result.test_seed is not None and result.test_seed.n == 6
    print(
        f"\nseed dev {seed_dev} test {result.test_seed.mean}; best dev {best_dev} "
        f"test {result.test_best.mean if result.test_best else None}; "
        f"candidates {result.candidates}, rejected {result.rejected_replies}, "
        f"best: {result.best.prompt.instruction!r}"
    )


# Killed and resumed (the CLI in a subprocess, as tests/test_kill_resume.py does).

PROMPTAGENT_MODELS = """\
models:
  task: {backend: scripted, model: "scripted_cli:task"}
  optimizer: {backend: scripted, model: "scripted_cli:reflector"}
  judge: {backend: scripted, model: "scripted_cli:task"}
optimizer: {name: promptagent, eval_examples: 6, iteration_num: 3, expand_width: 2,
  minibatch_size: 3, final_k: 2}
"""


def test_a_killed_promptagent_run_resumes_to_the_same_result(tmp_path: Path) -> None:
    from test_kill_resume import check_kills_resume_to_the_same_result

    task = write_animal_task(tmp_path / "task", extra=PROMPTAGENT_MODELS)
    check_kills_resume_to_the_same_result(tmp_path, task, KEY)
