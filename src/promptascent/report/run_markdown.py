"""A run report as Markdown: the same facts and sentences as the HTML, without plots.

Text from data and models is put in code blocks (fenced with more backticks than it
holds) or, in tables, with its markup characters escaped, so it never becomes markup
or HTML in a Markdown viewer.
"""

from __future__ import annotations

import re

from promptascent.report import wording as w
from promptascent.report.run_facts import RunFacts

MAX_EXAMPLE_ROWS = 50


def run_markdown(facts: RunFacts) -> str:
    out = [f"# promptascent run {cell(facts.run_id)}", ""]
    partial = w.partial_line(facts)
    if partial:
        out += [f"> {cell(partial)}", ""]
    out += [f"**{w.verdict_line(facts)}**", ""]  # fixed words and figures
    task = facts.config.get("task", {}).get("name", "?")
    optimizer = (facts.config.get("optimizer") or {}).get("name", "?")
    out += [
        f"task {cell(task)}, optimizer {cell(optimizer)}, status {cell(facts.status)}. "
        f"{w.spent_line(facts)}",
        "",
    ]
    if facts.compared_on is not None:
        where = "held-out test split" if facts.compared_on == "test" else facts.compared_on
        level = f"{round(100 * facts.confidence)}% CI"
        out += [f"## Scores on the {where}", ""]
        out += [
            f"| prompt | score | {level} | n | unparsed | errors |",
            "|---|---|---|---|---|---|",
        ]
        for label, s in w.side_rows(facts):
            out.append(
                f"| {label} `{s.candidate_id}` | {w.fmt(s.mean)} | [{w.fmt(s.ci_low)}, "
                f"{w.fmt(s.ci_high)}] | {s.n} | {s.unparsed} | {s.errors} |"
            )
        out.append("")
        diff = w.difference_text(facts)
        if diff:
            out += [diff, ""]  # figures and fixed words only
    for line in w.majority_lines(facts):
        out.append(f"- {cell(line)}")
    for label, s in w.side_rows(facts):
        if s.predictions:
            preds = ", ".join(f"{cell(k or '(empty)')}: {v}" for k, v in s.predictions.items())
            out.append(f"- predictions of the {label}: {preds}; unparsed {s.unparsed}")
    out += [f"- {cell(line)}" for line in w.status_lines(facts)]
    out.append("")
    seed = facts.candidate(facts.seed_id).prompt
    best = facts.candidate(facts.best_id).prompt
    out += ["## Seed prompt", "", fence(w.exported(seed)[1]), ""]
    fmt_name, text = w.exported(best)
    out += [f"## Best prompt (as `promptascent export --format {fmt_name}` prints it)", ""]
    out += [fence(text), ""]
    diff_text = "".join(
        text if op == "same" else f"[-{text}-]" if op == "del" else f"{{+{text}+}}"
        for op, text in w.word_diff(w.exported(seed)[1], text)
    )
    out += ["## Word diff, seed to best ([-removed-] {+added+})", "", fence(diff_text), ""]
    differ = [r for r in facts.examples if r.differs][:MAX_EXAMPLE_ROWS]
    if facts.examples:
        out += [
            f"## Examples where seed and best differ ({len(differ)} of "
            f"{sum(r.differs for r in facts.examples)} shown)",
            "",
            "| example | input | expected | seed output | best output |",
            "|---|---|---|---|---|",
        ]
        for r in differ:
            seed_out = "-" if r.seed is None else cell(r.seed["output"])
            best_out = "-" if r.best is None else cell(r.best["output"])
            out.append(
                f"| {cell(r.example_id)} | {cell(r.input or '')} | {cell(r.expected or '')} | "
                f"{seed_out} | {best_out} |"
            )
        out.append("")
    out += ["## Usage per role", ""]
    out += ["| role | " + " | ".join(label for _, label in w.USAGE_COLUMNS) + " |"]
    out += ["|---" * (len(w.USAGE_COLUMNS) + 1) + "|"]
    out += [f"| {role} | " + " | ".join(cells) + " |" for role, cells in w.usage_rows(facts.usage)]
    out += ["", "## Configuration", "", fence(w.configuration(facts), "yaml"), ""]
    out += [
        "Run it again: save the configuration as `task.yaml` in the task file's folder, then:",
        "",
        fence(w.reproduce_command(facts), "sh"),
        "",
    ]
    return "\n".join(out)


def cell(text: str) -> str:
    """Untrusted text for a Markdown line or table cell: one line, its Markdown and
    HTML characters escaped."""
    flat = " ".join(str(text).split())
    flat = flat.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return re.sub(r"([\\`*_\[\]|])", r"\\\1", flat)


def fence(text: str, info: str = "") -> str:
    """A fenced code block that no run of backticks in `text` can close."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    ticks = "`" * max(3, longest + 1)
    return f"{ticks}{info}\n{text.rstrip()}\n{ticks}"
