"""The compare page: one row per optimizer and seed, and test score against calls spent.

It reads `compare.json` (what `promptascent compare` writes, `Comparison.to_dict()`),
so the page of a comparison on disk and of one in memory are the same page.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from promptascent.errors import ConfigError
from promptascent.report.page import esc, table
from promptascent.report.plot import PALETTE, Plot, Series
from promptascent.report.run_markdown import cell
from promptascent.report.verdict import verdict
from promptascent.report.wording import fmt

FILENAME = "compare.json"


@dataclass(frozen=True)
class CompareFacts:
    task: str
    rows: tuple[dict[str, Any], ...]
    folder: Path | None = None


def read_compare(compare_dir: Path) -> CompareFacts:
    """The comparison written in `compare_dir`; ConfigError (one line naming the file)
    when it is missing or damaged."""
    path = compare_dir / FILENAME
    if not path.is_file():
        raise ConfigError(f"{compare_dir}: not a compare folder (no {FILENAME})")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return compare_facts(data, compare_dir)
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise ConfigError(f"{path}: not a readable comparison ({type(e).__name__}: {e})") from None


def compare_facts(data: dict[str, Any], folder: Path | None = None) -> CompareFacts:
    rows = tuple(dict(r) for r in data["rows"])
    missing = [k for r in rows for k in ("optimizer", "seed") if k not in r]
    if missing:
        raise KeyError(missing[0])
    return CompareFacts(str(data["task"]), rows, folder)


def calls_spent(row: dict[str, Any]) -> int:
    """Calls the search spent in every role (cache hits included, as budgets count)."""
    return int(row.get("task_calls", 0) + row.get("optimizer_calls", 0) + row.get("judge_calls", 0))


def row_verdict(row: dict[str, Any]) -> str:
    said = verdict(
        {
            "test": {
                "difference": row.get("difference"),
                "best": row.get("test_best"),
                "majority_rate": row.get("majority_rate"),
            },
            "best_candidate": row.get("best_candidate"),
            "seed_candidate": row.get("seed_candidate"),
        },
        majority_where=fmt(row.get("majority_rate")),
    )
    return said or "no test split"


def _cells(row: dict[str, Any]) -> list[str]:
    base, best, diff = row.get("test_seed"), row.get("test_best"), row.get("difference")
    return [
        fmt(base["mean"]) if base else "-",
        f"{fmt(best['mean'])} [{fmt(best['ci_low'])}, {fmt(best['ci_high'])}]" if best else "-",
        _difference(diff) if diff else "-",
        fmt(row.get("majority_rate")),
        str(calls_spent(row)),
        str(int(row.get("task_calls", 0))),
        f"{row.get('wall_seconds', 0.0):.0f}",
    ]


def _difference(d: dict[str, Any]) -> str:
    return f"{d['mean']:+.3f} [{d['ci_low']:+.3f}, {d['ci_high']:+.3f}] p={d['p_value']:.3f}"


_HEADER = (
    "seed prompt",
    "best [CI]",
    "best - seed [CI]",
    "majority rate",
    "calls",
    "task calls",
    "wall s",
)


def compare_body(facts: CompareFacts) -> list[str]:
    rows = [
        [
            esc(r["optimizer"]),
            str(r["seed"]),
            f"<code>{esc(r.get('run_id', '-'))}</code>",
            *_cells(r),
            esc(r.get("status", "-")),
            esc(row_verdict(r)),
        ]
        for r in facts.rows
    ]
    where = f" ({esc(facts.folder)})" if facts.folder else ""
    return [
        f"<h1>promptascent compare: {esc(facts.task)}</h1>",
        f"<p>{len(facts.rows)} runs{where}: every optimizer with the same budget and splits, "
        "scored on the held-out test split.</p>",
        table(["optimizer", "seed", "run", *_HEADER, "status", "verdict"], rows, numeric_from=3),
        compare_plot(facts).svg(),
        "<p>Each run's own report: <code>promptascent report RUN</code>.</p>",
    ]


def compare_plot(facts: CompareFacts) -> Plot:
    """The best prompt's test score against the calls its search spent, one series per
    optimizer, the CI as a vertical line."""
    names = list(dict.fromkeys(r["optimizer"] for r in facts.rows))
    series = []
    for i, name in enumerate(names):
        mine = [r for r in facts.rows if r["optimizer"] == name and r.get("test_best")]
        series.append(
            Series(
                str(name),
                [(float(calls_spent(r)), float(r["test_best"]["mean"])) for r in mine],
                PALETTE[i % len(PALETTE)],
                tips=[
                    f"{name} seed {r['seed']}: {fmt(r['test_best']['mean'])} after "
                    f"{calls_spent(r)} calls"
                    for r in mine
                ],
                spans=[(r["test_best"]["ci_low"], r["test_best"]["ci_high"]) for r in mine],
            )
        )
    return Plot(
        title="Test score of each run's best prompt against the calls its search spent",
        x_label="calls spent by the search (task + optimizer + judge)",
        y_label="test score (with CI)",
        series=series,
    )


def compare_markdown(facts: CompareFacts) -> str:
    out = [f"# promptascent compare: {cell(facts.task)}", ""]
    header = ["optimizer", "seed", "run", *_HEADER, "status", "verdict"]
    out += ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    for r in facts.rows:
        cells = [cell(str(r["optimizer"])), str(r["seed"]), cell(str(r.get("run_id", "-")))]
        cells += [cell(c) for c in _cells(r)]
        cells += [cell(str(r.get("status", "-"))), row_verdict(r)]
        out.append("| " + " | ".join(cells) + " |")
    out.append("")
    return "\n".join(out)
