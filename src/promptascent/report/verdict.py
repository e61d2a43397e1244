"""The sentences that judge a run's result, in one place: the terminal summary
(cli/summary.py), the HTML and Markdown reports and the compare page all say them
from the same figures (a run's `result.json` content), so they never disagree."""

from __future__ import annotations

from typing import Any

SEED_RETURNED = "The search found no prompt better than the seed on dev: the seed is returned."
BEATS_SEED = "The best prompt beats the seed on held-out data."
# {where}: where the reader finds the majority-class rate ("below" in a run's summary and
# report; the rate itself on the compare page, which has no such section)
BEATS_SEED_NOT_MAJORITY = (
    "The best prompt beats the seed on held-out data, but not always answering "
    "the majority class ({where})."
)
NOT_SIGNIFICANT = "No significant improvement over the seed on held-out data."


def verdict(result: dict[str, Any], *, majority_where: str = "below") -> str | None:
    """One plain sentence: is the improvement of the best prompt over the seed real?
    It is when the paired difference's confidence interval on the test split lies
    above 0. None when the run has no paired difference on test (no test split, or
    the run did not get that far). `majority_where` says where the majority-class rate
    is shown, for the sentence that points to it."""
    test = result.get("test") or {}
    diff = test.get("difference")
    if not diff:
        return None
    if result.get("best_candidate") == result.get("seed_candidate"):
        return SEED_RETURNED
    if diff["ci_low"] > 0 and at_or_below_majority(test):
        return BEATS_SEED_NOT_MAJORITY.format(where=majority_where)
    if diff["ci_low"] > 0:
        return BEATS_SEED
    return NOT_SIGNIFICANT


def difference_line(diff: dict[str, Any], confidence: float) -> str:
    """The paired difference on test with its CI, win record and sign-flip p-value."""
    level = confidence_label(confidence)
    return (
        f"best - seed on test: {diff['mean']:+.3f}  {level} [{diff['ci_low']:+.3f}, "
        f"{diff['ci_high']:+.3f}]  (wins {diff['wins']}, losses {diff['losses']}, "
        f"ties {diff['ties']}, p={diff['p_value']:.3f})"
    )


def confidence_label(confidence: float) -> str:
    return f"{round(100 * confidence)}% CI"


def majority_note(test: dict[str, Any], scoring: str) -> str | None:
    """The warning when the best prompt scores no better than always answering the
    majority class (None otherwise, and where there is no majority-class rate)."""
    if not at_or_below_majority(test):
        return None
    if scoring == "generate":
        why = "read its gain as a fix of the answer format, not as skill at the task."
    else:
        why = "it has not made the model better at the task than that."
    return f"the best prompt scores at or below always answering the majority class: {why}"


def at_or_below_majority(test: dict[str, Any]) -> bool:
    """Whether the best prompt's test score is no better than always answering the most
    common class (False where there is no majority rate: not a classification task)."""
    rate = test.get("majority_rate")
    return rate is not None and bool(test.get("best")) and test["best"]["mean"] <= rate


def stop_line(result: dict[str, Any]) -> str | None:
    """Why the search stopped, when it was not by finishing its work."""
    stopped = str(result.get("stopped_by") or "")
    if result.get("status") == "budget" and stopped.startswith("budget ("):
        return f"the search stopped early: {stopped[len('budget (') : -1]}"
    if result.get("status") == "budget":
        return f"the search stopped when the budget ({stopped}) ran out"
    if result.get("status") == "stopped":
        return f"the search stopped early: {stopped}"
    return None
