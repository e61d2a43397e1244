"""Strategy selection: which optimizer fits a task, its data and its budget.

Small, documented rules (first match wins), each with the reason it gives. The
thresholds for labelled classification come from BENCHMARKS.md section 4 (every
optimizer at 150, 400 and 600 task calls on BIG-bench tasks, SmolLM2-135M in every
role): at 150 calls only APE moved off the seed (the others spend the budget before a
final selection pays off); from 400 calls on, few-shot demonstrations (`exemplars`)
gave the largest and most reliable gain, with CAPO (instructions plus examples,
racing) level with it at 600. No budget above 600 was measured.

1. Open-ended output (no label set): `spo` when this version has it (pairwise
   judging of outputs, needs no labels), else `ape` scored by the judge metric.
2. Very few examples (train + dev < 16): `exemplars` (too few to select between
   instructions reliably; few-shot demonstrations use the examples there are).
3. Labelled, budget up to 200 task calls (or none given): `ape`; its answer-format
   step names the allowed labels, the one gain measured at that budget.
4. Labelled, budget up to 1500 task calls, or a dev split under 30: `exemplars`.
5. Labelled, a larger budget and a dev split of 30 or more: `capo` (racing spends
   the calls on promising instruction + example combinations).

Any choice can be overridden (`--optimizer`, or `optimizer:` in the task file).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from promptascent.optimizers import registry

SMALL_BUDGET = 200
MEDIUM_BUDGET = 1500
FEW_EXAMPLES = 16
RACING_DEV = 30


class StrategyChoice(NamedTuple):
    name: str
    options: dict[str, Any]
    reason: str


def choose_optimizer(
    task_type: str,
    n_train: int,
    n_dev: int,
    budget: int | None,
    labelled: bool,
    *,
    available: list[str] | None = None,
) -> StrategyChoice:
    """The optimizer (name, options, reason) for a task type, split sizes, a budget of
    task-model calls (None: not limited) and whether examples have labels.
    `available` lists the registered optimizers (default: the registry's)."""
    names = registry.names() if available is None else available
    where = f"{task_type}, {n_train} train / {n_dev} dev examples, " + (
        f"budget {budget} task calls" if budget is not None else "no task-call budget"
    )
    if not labelled or task_type != "classification":
        if "spo" in names:
            return StrategyChoice(
                "spo",
                {},
                f"{where}: open-ended output without labels, so SPO (compares "
                "outputs pairwise with the judge model, needs no labels)",
            )
        return StrategyChoice(
            "ape",
            {"format_candidates": False},
            f"{where}: open-ended output without labels; SPO is not available in this "
            "version, so APE scored by the judge metric",
        )
    if n_train + n_dev < FEW_EXAMPLES:
        return StrategyChoice(
            "exemplars",
            {"k": max(1, min(3, n_train))},
            f"{where}: very few examples (under {FEW_EXAMPLES}), too few to select between "
            "instructions reliably, so few-shot demonstrations (exemplars)",
        )
    if budget is None or budget <= SMALL_BUDGET:
        size = "no budget given" if budget is None else f"a small budget (<= {SMALL_BUDGET})"
        return StrategyChoice(
            "ape",
            {},
            f"{where}: labelled classification with {size}, so APE (its answer-format step "
            "names the allowed labels; the one method that gained at 150 task calls)",
        )
    if budget <= MEDIUM_BUDGET or n_dev < RACING_DEV:
        why = (
            f"a medium budget (<= {MEDIUM_BUDGET})"
            if budget <= MEDIUM_BUDGET
            else f"a dev split under {RACING_DEV} (too small to race on)"
        )
        return StrategyChoice(
            "exemplars",
            {},
            f"{where}: labelled classification with {why}, so exemplars (few-shot "
            "demonstrations gave the largest, most reliable gain at 400-600 task calls "
            "in BENCHMARKS.md section 4)",
        )
    return StrategyChoice(
        "capo",
        {"block_size": max(1, min(30, n_dev // 3))},
        f"{where}: labelled classification with a large budget (> {MEDIUM_BUDGET}) and "
        f"{n_dev} dev examples, so CAPO (racing spends the calls on promising prompts)",
    )
