"""Text summaries of runs for the terminal. Text from data, models and servers goes
through cli/terminal.py: no escape sequence reaches the terminal, no markup is read."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from promptascent.cli.terminal import terminal_markup, terminal_text
from promptascent.prompts.export import export_prompt
from promptascent.prompts.prompt import Prompt
from promptascent.report.verdict import (
    confidence_label,
    difference_line,
    majority_note,
    stop_line,
    verdict,
)
from promptascent.search.splits import FINAL


def fmt(x: float | None, digits: int = 3) -> str:
    return "-" if x is None or x != x else f"{x:.{digits}f}"


def print_result(console: Console, result: dict[str, Any]) -> None:
    """Prints a run's result.json content: test scores, difference, usage, where it is."""
    test = result["test"]
    table = Table(title="held-out test split" if test["seed"] else "selection split")
    level = confidence_label(result.get("confidence", 0.95))
    for col in ("prompt", "score", level, "n", "unparsed", "errors"):
        table.add_column(col)
    if test["seed"]:
        for label, ev in (("seed", test["seed"]), ("best", test["best"])):
            table.add_row(
                label,
                fmt(ev["mean"]),
                f"[{fmt(ev['ci_low'])}, {fmt(ev['ci_high'])}]",
                str(ev["n"]),
                str(ev["unparsed"]),
                str(ev["errors"]),
            )
    else:
        sel = result["selection_scores"]
        table.add_row("seed", fmt(sel["seed"]), "", "", "", "")
        table.add_row("best", fmt(sel["best"]), "", "", "", "")
    console.print(table)
    scoring = result.get("scoring") or "generate"
    if scoring != "generate":
        losses = [
            f"{label} {fmt(ev.get('mean_loss'))}"
            for label, ev in (("seed", test["seed"]), ("best", test["best"]))
            if ev
        ]
        extra = f"; mean loss of the gold choice: {', '.join(losses)}" if losses else ""
        console.print(f"scoring: {terminal_markup(scoring)}{extra}")
    diff = test.get("difference")
    if diff:
        console.print(difference_line(diff, result.get("confidence", 0.95)))
        console.print(verdict(result))
    skipped = sum((ev or {}).get("skipped", 0) for ev in (test["seed"], test["best"]))
    if skipped:
        console.print(
            f"warning: {skipped} test evaluations skipped: the prompt did not fit the "
            "task model's context (counted under errors)"
        )
    if test.get("majority_rate") is not None:
        shown = []
        for label in ("seed", "best"):
            preds = (test[label] or {}).get("predictions") or {}
            top = ", ".join(f"{terminal_markup(k)}: {v}" for k, v in list(preds.items())[:4])
            shown.append(f"{label} {top or '-'}")
        console.print(
            f"majority-class rate on test: {fmt(test['majority_rate'])}; predictions: "
            + "; ".join(shown)
        )
        note = majority_note(test, scoring)
        if note:
            console.print(f"note: {note}")
    console.print(
        f"selected on {result['selection_split']}: seed {fmt(result['selection_scores']['seed'])}, "
        f"best {fmt(result['selection_scores']['best'])}; {result['candidates']} candidates, "
        f"{result['rejected_replies']} optimizer replies rejected"
    )
    n = result.get("selection_examples")
    if result.get("screening_only") and n:
        console.print(
            "the budget only allowed screening: the winner was chosen on its screening "
            f"scores ({n} dev examples), with no final selection on the dev split"
        )
    elif result.get("screening_only"):
        console.print("the budget allowed no final selection: the seed prompt is returned")
    elif result.get("selection_split") == FINAL:
        console.print(
            f"the budget allowed a smaller final selection: on {n} dev examples, "
            "not the whole dev split"
        )
    tokens = result.get("prompt_tokens")
    if tokens:
        penalty = result.get("length_penalty") or 0.0
        objective = (
            f"; selected by score - {penalty:g} x prompt tokens / seed tokens" if penalty else ""
        )
        console.print(f"prompt tokens: seed {tokens['seed']}, best {tokens['best']}{objective}")
    gap = result.get("train_dev_gap")
    if gap:
        console.print(
            f"train-dev gap of the best: train {fmt(gap['train'])} (n={gap['n_train']}) - "
            f"{result['selection_split']} {fmt(gap['selection'])} = {gap['gap']:+.3f}"
        )
    lineage = result.get("best_lineage") or []
    if len(lineage) > 1:
        console.print(
            "lineage: "
            + " <- ".join(f"{x['id']} ({x['operation']}, step {x['step']})" for x in lineage)
        )
    stop = stop_line(result)
    if stop:
        console.print(terminal_markup(stop))
    print_usage(console, result["usage"])
    judge = result.get("judge")
    if judge:
        agreement = "-" if judge["agreement"] is None else f"{judge['agreement']:.2f}"
        console.print(
            f"judge: {judge['votes']} votes, {judge['unparsed']} unparsed, {judge['errors']} "
            f"failed; agreement {agreement} over {judge['compared_pairs']} vote pairs"
        )
    for note in result.get("notes", []):
        console.print(f"note: {terminal_markup(note)}")
    best = Prompt.from_dict(result["best_prompt"])
    fmt_name = "messages" if best.system or best.demos else "text"
    console.print(f"best prompt ({best.id}, as exported with --format {fmt_name}):", style="bold")
    console.print(terminal_text(export_prompt(best, fmt_name)), markup=False, highlight=False)
    console.print(f"run written to {terminal_markup(result['run_dir'])}")


def print_usage(console: Console, usage: dict[str, dict[str, float]]) -> None:
    table = Table(title="usage (calls include cache hits; model calls were paid)")
    for col in (
        "role",
        "calls",
        "cache hits",
        "model calls",
        "errors",
        "prompt tok",
        "completion tok",
        "$ spent",
    ):
        table.add_column(col, justify="right")
    for role, u in usage.items():
        if not u["calls"] and not u["errors"]:
            continue
        table.add_row(
            role,
            str(int(u["calls"])),
            str(int(u["cache_hits"])),
            str(int(u["model_calls"])),
            str(int(u["errors"])),
            str(int(u["prompt_tokens"])),
            str(int(u["completion_tokens"])),
            f"{u['spent_dollars']:.4f}",
        )
    console.print(table)
