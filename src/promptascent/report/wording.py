"""The sentences and tables both renderings of a run report say (HTML and Markdown),
made once from the run's facts; the judging sentences come from report/verdict.py,
which the terminal summary uses too."""

from __future__ import annotations

import difflib
import re
import shlex

import yaml

from promptascent.prompts.export import export_prompt
from promptascent.prompts.prompt import Prompt
from promptascent.report.run_facts import RunFacts, Side
from promptascent.report.verdict import difference_line, majority_note, stop_line, verdict

USAGE_COLUMNS = (
    ("calls", "calls"),
    ("cache_hits", "cache hits"),
    ("model_calls", "model calls"),
    ("errors", "errors"),
    ("prompt_tokens", "prompt tokens"),
    ("completion_tokens", "completion tokens"),
    ("spent_dollars", "$ spent"),
)


def fmt(x: float | None, digits: int = 3) -> str:
    return "-" if x is None or x != x else f"{x:.{digits}f}"


def partial_line(facts: RunFacts) -> str | None:
    """Says that the report is of a run that has not ended (None for an ended run)."""
    if not facts.partial:
        return None
    return (
        f"Partial report: the run has not ended (status: {facts.status}); it shows what "
        "was recorded so far, the best prompt is the best the search had named, and there "
        "is no held-out test yet. Resume the run to finish it: promptascent optimize "
        f"--resume {facts.run_id}"
    )


def verdict_line(facts: RunFacts) -> str:
    """One plain sentence on whether the improvement is real."""
    if facts.result is not None:
        said = verdict(facts.result)
        if said:
            return said
        return "The run has no test split, so there is no verdict on held-out data."
    if facts.difference is None:
        return "No verdict yet: seed and best have not been scored on the same examples."
    return (
        f"No verdict yet: on {facts.compared_on} (the examples the search selects on, not "
        "held-out data) the best differs from the seed by "
        f"{facts.difference.mean_diff:+.3f}."
    )


def difference_text(facts: RunFacts) -> str | None:
    d = facts.difference
    if d is None:
        return None
    line = difference_line(
        {
            "mean": d.mean_diff,
            "ci_low": d.low,
            "ci_high": d.high,
            "wins": d.wins,
            "losses": d.losses,
            "ties": d.ties,
            "p_value": d.p_value,
        },
        facts.confidence,
    )
    return (
        line if facts.compared_on == "test" else line.replace("on test", f"on {facts.compared_on}")
    )


def majority_lines(facts: RunFacts) -> list[str]:
    """The majority-class rate and, when the best is no better, the warning."""
    if facts.majority_rate is None:
        return []
    lines = [f"majority-class rate on {facts.compared_on}: {fmt(facts.majority_rate)}"]
    best = facts.best
    test = {"majority_rate": facts.majority_rate, "best": {"mean": best.mean} if best else None}
    scoring = (facts.result or {}).get("scoring") or "generate"
    note = majority_note(test, scoring) if best and best.mean is not None else None
    if note:
        lines.append(f"Warning: {note}")
    return lines


def status_lines(facts: RunFacts) -> list[str]:
    """Selection, stop reason, tokens and notes of an ended run; spending of any run."""
    lines = []
    r = facts.result
    if r is not None:
        sel = r["selection_scores"]
        lines.append(
            f"selected on {r['selection_split']}: seed {fmt(sel['seed'])}, best "
            f"{fmt(sel['best'])}; {r['candidates']} candidates, {r['rejected_replies']} "
            "optimizer replies rejected"
        )
        stop = stop_line(r)
        if stop:
            lines.append(stop)
        tokens = r.get("prompt_tokens")
        if tokens:
            lines.append(f"prompt tokens: seed {tokens['seed']}, best {tokens['best']}")
        lines.append(f"scoring: {r.get('scoring') or 'generate'}")
        lines.append(f"wall time: {r['wall_seconds']:.0f} s")
    else:
        lines.append(f"{len(facts.candidates)} candidates recorded so far")
    if facts.origin:
        lines.append(
            f"refined from run {facts.origin.get('refined_from')} with: "
            + " | ".join(facts.origin.get("feedback", []))
        )
    return [*lines, *(f"note: {n}" for n in facts.notes)]


def side_rows(facts: RunFacts) -> list[tuple[str, Side]]:
    return [(label, s) for label, s in (("seed", facts.seed), ("best", facts.best)) if s]


def exported(prompt: Prompt) -> tuple[str, str]:
    """The prompt as `promptascent export` prints it, and the format used."""
    fmt_name = "messages" if prompt.system or prompt.demos else "text"
    return fmt_name, export_prompt(prompt, fmt_name)


def word_diff(old: str, new: str) -> list[tuple[str, str]]:
    """A word-level diff of two texts: ("same" | "del" | "ins", text) pieces, whitespace
    kept, so joining the "same" and "del" pieces gives `old`, "same" and "ins" `new`."""
    a, b = re.findall(r"\s+|\S+", old), re.findall(r"\s+|\S+", new)
    out: list[tuple[str, str]] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if op == "equal":
            out.append(("same", "".join(a[i1:i2])))
            continue
        if i2 > i1:
            out.append(("del", "".join(a[i1:i2])))
        if j2 > j1:
            out.append(("ins", "".join(b[j1:j2])))
    return out


def usage_rows(usage: dict[str, dict[str, float]]) -> list[tuple[str, list[str]]]:
    rows = []
    for role, u in usage.items():
        if not u.get("calls") and not u.get("errors"):
            continue
        cells = [
            f"{u.get(key, 0.0):.4f}" if key == "spent_dollars" else str(int(u.get(key, 0)))
            for key, _ in USAGE_COLUMNS
        ]
        rows.append((role, cells))
    return rows


def configuration(facts: RunFacts) -> str:
    """The run's task as a task file (YAML): the optimizer and budget it ran with."""
    config = facts.config
    task = dict(config.get("task", {}))
    optimizer = config.get("optimizer") or {}
    task["optimizer"] = {"name": optimizer.get("name"), **(optimizer.get("options") or {})}
    task["budget"] = config.get("budget") or {}
    return yaml.safe_dump(task, sort_keys=False, allow_unicode=True)


def reproduce_command(facts: RunFacts) -> str:
    """The commands that run this configuration again (saved as task.yaml in the task
    file's folder, where its relative paths point)."""
    config = facts.config
    settings = config.get("settings") or {}
    flags = ""
    if not settings.get("cache_write", True):
        flags = " --no-cache"
    elif not settings.get("cache_read", True):
        flags = " --refresh-cache"
    base = config.get("base_dir") or "."
    return f"cd {shlex.quote(base)}\npromptascent optimize task.yaml{flags}"


def spent_line(facts: RunFacts) -> str:
    """What the run spent, the search's share set beside the budget it was held to (the
    final test evaluation is outside the budget: counting it there read as overspending)."""
    total_calls = sum(int(u.get("calls", 0)) for u in facts.usage.values())
    dollars = sum(float(u.get("spent_dollars", 0.0)) for u in facts.usage.values())
    budget = facts.config.get("budget") or {}
    limits = ", ".join(f"{k}={v:g}" for k, v in budget.items()) or "none"
    search = (facts.result or {}).get("search_usage")
    if not search:
        return f"Spent: {total_calls} calls, ${dollars:.4f} (budget: {limits})"
    parts = [f"{int(u.get('calls', 0))} {role}" for role, u in search.items() if u.get("calls")]
    by_role = ", ".join(parts[:-1]) + " and " + parts[-1] if len(parts) > 1 else "".join(parts)
    search_dollars = sum(float(u.get("spent_dollars", 0.0)) for u in search.values())
    return (
        f"The search spent {by_role or 'no'} calls, ${search_dollars:.4f} "
        f"(budget: {limits}); with the test evaluation {total_calls} calls, ${dollars:.4f} in all"
    )
