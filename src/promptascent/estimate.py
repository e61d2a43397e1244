"""What a run would spend, before anything is spent (`optimize --dry-run`)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

from promptascent.llm.base import LLM
from promptascent.llm.hub import ModelHub
from promptascent.llm.prices import PriceQuote, model_prices
from promptascent.llm.types import ROLES, Role, TokenUsage
from promptascent.prompts.prompt import Demo

if TYPE_CHECKING:
    from promptascent.planning import Plan


@dataclass(frozen=True)
class PhaseEstimate:
    """Upper bounds of one phase's calls (a model role in the search, or the test
    split's scoring after it), if each call is paid once."""

    calls: int
    prompt_tokens: int
    max_completion_tokens: int
    max_dollars: float

    def __getitem__(self, key: str) -> Any:
        """Readable as the dict it replaced too (`phase["calls"]`)."""
        if key not in {f.name for f in fields(self)}:
            raise KeyError(key)
        return getattr(self, key)


@dataclass(frozen=True)
class RunEstimate(Mapping[str, Any]):
    """A run's estimate: the search's calls per role (the optimizer's plan, capped by
    the budget), the test split's scoring, the tokenizer that counted each model's
    tokens, each model's prices and their source, the budget's limits and how outputs
    are scored. Also readable as the
    mapping it replaced (`e["task"]["calls"]`; "judge" only when the search asks one)."""

    task: PhaseEstimate
    optimizer: PhaseEstimate
    test: PhaseEstimate
    tokenizers: dict[str, str]
    budget: dict[str, float]
    scoring: str
    judge: PhaseEstimate | None = None  # only an optimizer that asks a judge (spo)
    prices: dict[str, PriceQuote] | None = None  # per role used (llm/prices.py)

    def phases(self) -> dict[str, PhaseEstimate]:
        """The phases in the order they run: task, optimizer, judge (if any), test."""
        named = {"task": self.task, "optimizer": self.optimizer, "judge": self.judge}
        return {k: v for k, v in {**named, "test": self.test}.items() if v is not None}

    def __getitem__(self, key: str) -> Any:
        if key not in self._keys():
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys())

    def __len__(self) -> int:
        return len(self._keys())

    def _keys(self) -> list[str]:
        return [f.name for f in fields(self) if getattr(self, f.name) is not None]


def estimate(plan: Plan, backends: dict[Role, LLM] | None = None) -> RunEstimate:
    """What a run would spend, before anything is spent (--dry-run): calls per role
    (the optimizer's plan, capped by the budget), tokens and dollars (prompt tokens
    counted on the seed prompt rendered on train examples, with as many train examples
    as demonstrations as the optimizer's candidates carry at most; completions at their
    limit),
    the tokenizer that counted each model's tokens, and where each model's prices came
    from (the task file, LiteLLM's table, or none: no dollar estimate)."""
    with ModelHub(plan.task.models, backends=backends) as hub:
        backend = hub.backend
        task_llm = backend("task")
        scoring = plan.scoring(task_llm.info)
        sample = list(plan.data.train)[:8]
        example_tokens = [
            task_llm.count_tokens(ex.input_text) + task_llm.count_tokens(ex.target or "")
            for ex in sample
        ]
        mean_example = sum(example_tokens) // max(1, len(example_tokens))
        e = plan.optimizer.estimate(len(plan.data.train), len(plan.data.dev), mean_example)
        # A task call is priced on the seed prompt, or, for a search whose candidates
        # carry more demonstrations than the seed, on the seed with that many train
        # examples as demos (each demo turn repeats the instruction: Prompt.render).
        priced = plan.seed_prompt
        shots = [Demo(ex.input, ex.target) for ex in plan.data.train if ex.target is not None]
        if e.max_demos > len(priced.demos) and shots:
            priced = priced.with_demos(tuple(shots[: e.max_demos]))
        prompt_tokens = [
            sum(task_llm.count_tokens(m.content) + 8 for m in priced.render(ex.fields))
            for ex in sample
        ]
        mean_prompt = sum(prompt_tokens) // max(1, len(prompt_tokens))
        b = plan.budget
        test = plan.data.test
        test_calls = 2 * len(test) if test is not None and plan.task.evaluation.test else 0
        # Likelihood scoring generates nothing (the choices count as prompt tokens).
        answer = 0 if scoring.likelihood else plan.task_params.max_tokens

        quotes = {role: model_prices(getattr(plan.task.models, role)) for role in ROLES}

        def phase(role: Role, calls: int, prompt: int, completion: int) -> PhaseEstimate:
            usage = TokenUsage(calls * prompt, calls * completion)
            return PhaseEstimate(
                calls, usage.prompt_tokens, usage.completion_tokens, quotes[role].prices.cost(usage)
            )

        def capped(planned: int, *limits: int | None) -> int:
            return min(x for x in (planned, *limits) if x is not None)

        judge = None
        if e.judge_calls:  # an optimizer that asks a judge (spo)
            calls = capped(e.judge_calls, b.judge_calls, b.calls)
            judge = phase("judge", calls, e.judge_prompt_tokens, e.judge_max_tokens)
        optimizer_calls = capped(e.optimizer_calls, b.optimizer_calls, b.calls)
        used = {"task", "optimizer"} | ({"judge"} if judge else set())
        description = scoring.describe() + (f" ({scoring.note})" if scoring.note else "")
        return RunEstimate(
            task=phase("task", capped(e.task_calls, b.task_calls, b.calls), mean_prompt, answer),
            optimizer=phase(
                "optimizer", optimizer_calls, e.optimizer_prompt_tokens, e.optimizer_max_tokens
            ),
            test=phase("task", test_calls, mean_prompt, answer),
            judge=judge,
            # How each model's tokens were counted: the figures above are only as good.
            tokenizers={role: backend(role).tokenizer for role in ROLES if role in used},
            budget=b.limits(),
            scoring=description,
            prices={role: quotes[role] for role in ROLES if role in used},
        )
