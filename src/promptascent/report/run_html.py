"""A run report as HTML: one page, inline SVG plots, every text from the run escaped."""

from __future__ import annotations

from collections.abc import Sequence

from promptascent.report import wording as w
from promptascent.report.page import esc, pre, table
from promptascent.report.plot import PALETTE, Plot, Series
from promptascent.report.run_facts import SCORE_SPLITS, CandidateFacts, RunFacts

MAX_EXAMPLE_ROWS = 500  # beyond this the table says how many it left out
_NOT_RECORDED = '<span class="muted">not recorded</span>'


def run_body(facts: RunFacts) -> list[str]:
    """The report's sections, as HTML fragments."""
    return [
        *_header(facts),
        *_scores(facts),
        *_classes(facts),
        *_prompts(facts),
        *_plots(facts),
        *_lineage(facts),
        *_examples(facts),
        *_usage(facts),
        *_configuration(facts),
    ]


def _header(facts: RunFacts) -> list[str]:
    out = [f"<h1>promptascent run {esc(facts.run_id)}</h1>"]
    partial = w.partial_line(facts)
    if partial:
        out.append(f'<p class="partial">{esc(partial)}</p>')
    out.append(f'<p class="verdict" id="verdict">{esc(w.verdict_line(facts))}</p>')
    optimizer = (facts.config.get("optimizer") or {}).get("name", "?")
    task = facts.config.get("task", {}).get("name", "?")
    out.append(
        f"<p>task <b>{esc(task)}</b>, optimizer <b>{esc(optimizer)}</b>, status "
        f"<b>{esc(facts.status)}</b>. {esc(w.spent_line(facts))}</p>"
    )
    return out


def _scores(facts: RunFacts) -> list[str]:
    out = ['<h2 id="scores">Scores</h2>']
    if facts.compared_on is None:
        return [*out, "<p>Seed and best have not been scored on the same split yet.</p>"]
    where = "held-out test split" if facts.compared_on == "test" else facts.compared_on
    level = f"{round(100 * facts.confidence)}% CI"
    rows = [
        [
            f"{esc(label)} <span class=muted>{esc(s.candidate_id)}</span>",
            w.fmt(s.mean),
            f"[{w.fmt(s.ci_low)}, {w.fmt(s.ci_high)}]",
            str(s.n),
            str(s.unparsed),
            str(s.errors),
        ]
        for label, s in w.side_rows(facts)
    ]
    out.append(f"<p>On the {esc(where)}:</p>")
    out.append(table(["prompt", "score", level, "n", "unparsed", "errors"], rows))
    diff = w.difference_text(facts)
    if diff:
        d = facts.difference
        assert d is not None
        significant = d.low > 0 or d.high < 0
        out.append(
            f'<p id="difference">{esc(diff)}<br>The difference is '
            f"{'' if significant else 'not '}significant at this level (its interval "
            f"{'excludes' if significant else 'includes'} 0; sign-flip test p = "
            f"{d.p_value:.3f}).</p>"
        )
    out.append(
        "<ul>" + "".join(f"<li>{esc(line)}</li>" for line in w.status_lines(facts)) + "</ul>"
    )
    return out


def _classes(facts: RunFacts) -> list[str]:
    sides = w.side_rows(facts)
    if not sides or not any(s.predictions for _, s in sides):
        return []
    out = ['<h2 id="classes">Answers given</h2>']
    for line in w.majority_lines(facts):
        cls = "warning" if line.startswith("Warning") else ""
        out.append(f'<p class="{cls}">{esc(line)}</p>')
    labels = list(dict.fromkeys(k for _, s in sides for k in s.predictions))
    rows = []
    for label in labels:
        cells = [esc(label or "(empty)")]
        for _, s in sides:
            count = s.predictions.get(label, 0)
            width = 0 if not s.n else round(120 * count / s.n)
            cells.append(f'{count} <span class="bar" style="width:{width}px"></span>')
        rows.append(cells)
    header = ["prediction", *(f"{label} (n={s.n})" for label, s in sides)]
    out.append("<p>Predicted classes (the ten most frequent of each prompt):</p>")
    out.append(table(header, rows))
    unparsed = ", ".join(f"{label} {s.unparsed}" for label, s in sides)
    out.append(f"<p>Unparsed outputs (naming no valid answer, scored 0): {esc(unparsed)}</p>")
    return out


def _prompts(facts: RunFacts) -> list[str]:
    seed = facts.candidate(facts.seed_id).prompt
    best = facts.candidate(facts.best_id).prompt
    out = ['<h2 id="prompts">Seed and best prompt</h2>']
    if facts.seed_id == facts.best_id:
        out.append("<p>The best prompt is the seed prompt.</p>")
    diff = "".join(
        esc(text) if op == "same" else f"<{op}>{esc(text)}</{op}>"
        for op, text in w.word_diff(w.exported(seed)[1], w.exported(best)[1])
    )
    out.append(
        '<div class="side-by-side">'
        f"<div><h3>seed {esc(facts.seed_id)}</h3>{pre(w.exported(seed)[1])}</div>"
        f"<div><h3>best {esc(facts.best_id)}</h3>{pre(w.exported(best)[1])}</div></div>"
    )
    out.append(f'<h3>Word diff, seed to best</h3><pre id="diff">{diff}</pre>')
    fmt_name, text = w.exported(best)
    # A run without a result names its best so far: export needs the candidate then.
    which = f" --candidate {facts.best_id}" if facts.partial else ""
    out.append(
        f"<h3>The best prompt as exported</h3><p>(<code>promptascent export {esc(facts.run_id)}"
        f" --format {fmt_name}{esc(which)}</code>)</p>{pre(text)}"
    )
    return out


def _plots(facts: RunFacts) -> list[str]:
    return [
        '<h2 id="search">How the search went</h2>',
        score_plot(facts).svg(),
        length_plot(facts).svg(),
    ]


def score_plot(facts: RunFacts) -> Plot:
    """Every candidate evaluation on a dev split against the task calls spent by then
    (or the step, for runs that did not record spending), with the best so far."""
    points = facts.points
    by_calls = bool(points) and all(p.task_calls is not None for p in points)
    series: list[Series] = []
    names = [s for s in SCORE_SPLITS if any(p.split == s for p in points)]
    other = [p for p in points if p.split not in SCORE_SPLITS]
    groups = [(s, [p for p in points if p.split == s]) for s in names]
    if other:
        groups.append(("other dev batches", other))
    for i, (name, ps) in enumerate(groups):
        color = PALETTE[i % len(PALETTE)]
        xy = [(float(p.task_calls if by_calls else p.step), p.score) for p in ps]  # type: ignore[arg-type]
        tips = [
            f"{p.candidate_id} on {p.split} (n={p.n}): {p.score:.3f}, step {p.step}"
            + (f", {p.task_calls} task calls" if p.task_calls is not None else "")
            for p in ps
        ]
        series.append(Series(name, xy, color, tips=tips))
        if name in SCORE_SPLITS:
            series.append(Series(f"best so far on {name}", _running_max(xy), color, step_line=True))
    return Plot(
        title="Score of every candidate evaluation, and the best so far",
        x_label="task-model calls spent" if by_calls else "step",
        y_label="score",
        series=series,
    )


def length_plot(facts: RunFacts) -> Plot:
    """Each candidate's score (as the lineage shows it) against its prompt length."""
    plain: list[tuple[CandidateFacts, str, float]] = []
    for c in facts.candidates:
        shown = c.shown_score()
        if shown is not None:
            plain.append((c, *shown))

    def series(name: str, color: str, marker: str, keep: Sequence[str]) -> Series:
        chosen = [(c, split, score) for c, split, score in plain if c.id in keep]
        return Series(
            name,
            [(float(c.length), score) for c, _, score in chosen],
            color,
            marker=marker,
            tips=[
                f"{c.id} ({c.operation}): {split} {score:.3f}, {c.length} chars"
                for c, split, score in chosen
            ],
        )

    others = [c.id for c, _, _ in plain if c.id not in (facts.seed_id, facts.best_id)]
    return Plot(
        title="Score against prompt length",
        x_label="prompt length (characters of instruction, system text, demos, format)",
        y_label="score on dev (or its screening subset)",
        series=[
            series("candidates", PALETTE[0], "circle", others),
            series("seed", PALETTE[1], "square", [facts.seed_id]),
            series("best", PALETTE[5], "diamond", [facts.best_id]),
        ],
    )


def _running_max(xy: list[tuple[float, float]]) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    best = float("-inf")
    for x, y in xy:
        if y > best:
            best = y
            out.append((x, y))
    if out and xy and xy[-1][0] > out[-1][0]:
        out.append((xy[-1][0], best))
    return out


def _lineage(facts: RunFacts) -> list[str]:
    return [
        '<h2 id="lineage">Candidate lineage</h2>',
        f"<p>{len(facts.candidates)} candidates; each under the parent it was made from "
        "(operation, step, score on dev or its screening subset). The path to the best "
        "prompt (bold) is open.</p>",
        f'<div class="tree">{lineage_tree(facts)}</div>',
    ]


def lineage_tree(facts: RunFacts) -> str:
    """Every candidate once, nested under its first parent in nested <details> (a
    leaf is a plain line), built without recursion: a chain of any length renders."""
    known = {c.id: c for c in facts.candidates}
    children: dict[str | None, list[CandidateFacts]] = {}
    for c in facts.candidates:
        parent = next((p for p in c.parents if p in known and p != c.id), None)
        children.setdefault(parent, []).append(c)
    on_path = _ancestors(facts.best_id, known)
    parts: list[str] = []
    done: set[str] = set()
    # Roots first; then anything a parent cycle would hide (never made by a search).
    todo: list[CandidateFacts | None] = list(reversed(children.get(None, [])))
    while todo or len(done) < len(known):
        if not todo:
            todo.append(next(x for x in facts.candidates if x.id not in done))
        node = todo.pop()
        if node is None:  # the end of a candidate's children
            parts.append("</details>")
            continue
        if node.id in done:
            continue
        done.add(node.id)
        label = _node_label(node, known)
        cls = ' class="best"' if node.id == facts.best_id else ""
        kids = [k for k in children.get(node.id, []) if k.id not in done]
        if not kids:
            parts.append(f'<div{cls} data-candidate="{esc(node.id)}">{label}</div>')
            continue
        opened = " open" if node.id in on_path else ""
        parts.append(
            f'<details{opened} data-candidate="{esc(node.id)}"><summary{cls}>{label} '
            f'<span class="muted">({len(kids)} children)</span></summary>'
        )
        todo.append(None)
        todo.extend(reversed(kids))
    return "".join(parts)


def _node_label(c: CandidateFacts, known: dict[str, CandidateFacts]) -> str:
    shown = c.shown_score()
    score = f"{shown[0]} {shown[1]:.3f}" if shown else "not scored on dev"
    also = [p for p in c.parents[1:] if p in known]
    return (
        f"<code>{esc(c.id)}</code> {esc(c.operation)}, step {c.step}, {esc(score)}"
        + (f", also from {esc(', '.join(also))}" if also else "")
        + (f' <span class="muted">{esc(c.note[:120])}</span>' if c.note else "")
        + f'<br><span class="muted">{esc(_preview(c.prompt.instruction))}</span>'
    )


def _ancestors(candidate_id: str, known: dict[str, CandidateFacts]) -> set[str]:
    out: set[str] = set()
    todo = [candidate_id]
    while todo:
        cid = todo.pop()
        if cid in out or cid not in known:
            continue
        out.add(cid)
        todo.extend(known[cid].parents)
    return out


def _preview(text: str, limit: int = 160) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _examples(facts: RunFacts) -> list[str]:
    if not facts.examples:
        return []
    rows = facts.examples[:MAX_EXAMPLE_ROWS]
    differ = sum(1 for r in facts.examples if r.differs)
    out = [
        '<h2 id="examples">Examples</h2>',
        f"<p>On {esc(facts.compared_on)}: {len(facts.examples)} examples, {differ} where the "
        "seed's and the best prompt's outputs differ (listed first).</p>",
    ]
    if len(facts.examples) > len(rows):
        out.append(f"<p>The first {len(rows)} are shown.</p>")

    def output(r: dict[str, object] | None) -> str:
        if r is None:
            return '<span class="muted">not scored</span>'
        if r.get("error"):
            return f'<span class="muted">error: {esc(r["error"])}</span>'
        score = r.get("score")
        tag = "" if r.get("parsed", 1) else " unparsed"
        return f"{pre(str(r.get('output', '')))}<span class=muted>score {esc(score)}{tag}</span>"

    body = "".join(
        f"<tr{' class=differs' if r.differs else ''}><td><code>{esc(r.example_id)}</code></td>"
        f"<td>{pre(r.input) if r.input is not None else _NOT_RECORDED}</td>"
        f"<td>{pre(r.expected) if r.expected is not None else '-'}</td>"
        f"<td>{output(r.seed)}</td><td>{output(r.best)}</td></tr>"
        for r in rows
    )
    out.append(
        '<table id="example-table"><thead><tr><th>example</th><th>input</th><th>expected</th>'
        f"<th>seed output</th><th>best output</th></tr></thead><tbody>{body}</tbody></table>"
    )
    return out


def _usage(facts: RunFacts) -> list[str]:
    rows = [[esc(role), *cells] for role, cells in w.usage_rows(facts.usage)]
    return [
        '<h2 id="usage">Usage and cost per role</h2>',
        "<p>Calls include cache hits; model calls and dollars are what was paid.</p>",
        table(["role", *(label for _, label in w.USAGE_COLUMNS)], rows),
    ]


def _configuration(facts: RunFacts) -> list[str]:
    return [
        '<h2 id="configuration">Configuration</h2>',
        pre(w.configuration(facts)),
        "<h3>Run it again</h3><p>Save the configuration above as <code>task.yaml</code> in "
        "the task file's folder (its data paths are relative to it), then:</p>",
        pre(w.reproduce_command(facts)),
    ]
