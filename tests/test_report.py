"""`promptascent report`: the HTML page and Markdown summary of a run or a comparison,
the notebook views, and the progress of the Python API. Exact tests on scripted runs;
one report of a real embedded-model run."""

from __future__ import annotations

import io
import json
import re
import sqlite3
import sys
from html import unescape
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from scripted import (
    KEY,
    embedded_settings,
    optimizer_model,
    task_model,
    task_responder,
    tiny_navigate,
    write_animal_task,
)

import promptascent
from promptascent import RunSettings
from promptascent.cli.main import main
from promptascent.cli.summary import print_result
from promptascent.llm.scripted import ScriptedLLM
from promptascent.llm.types import CompletionRequest
from promptascent.report import compare_report, comparison_report, run_report
from promptascent.report.compare_page import row_verdict
from promptascent.report.verdict import difference_line, verdict
from promptascent.runner import RunResult
from promptascent.search.pool import Candidate
from promptascent.store.run_store import RunStore

APE = {"num_candidates": 4, "eval_examples": 6}
HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def settings(tmp_path: Path, task: ScriptedLLM | None = None) -> RunSettings:
    return RunSettings(
        runs_dir=tmp_path / "runs",
        cache_dir=tmp_path / "cache",
        backends={"task": task or task_model(), "optimizer": optimizer_model()},
    )


def animal_run(tmp_path: Path, task: ScriptedLLM | None = None, **kw: Any) -> RunResult:
    spec = write_animal_task(tmp_path / "t")
    return promptascent.optimize(
        spec,
        optimizer="ape",
        options=APE,
        budget={"task_calls": 150},
        settings=settings(tmp_path, task),
        progress=False,
        **kw,
    )


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> RunResult:
    return animal_run(tmp_path_factory.mktemp("finished"))


class Page(HTMLParser):
    """What the tests read of a report page: every tag with its attributes, and the
    plot points (exact values) by the series they are drawn in."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.points: list[tuple[str, float, float]] = []
        self._series = ""
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.tags.append((tag, a))
        if tag == "g" and a.get("class") == "series":
            self._series = a.get("data-series") or ""
        if "data-x" in a:
            self.points.append((self._series, float(a["data-x"] or 0), float(a["data-y"] or 0)))

    def series(self, name: str) -> list[tuple[float, float]]:
        return [(x, y) for s, x, y in self.points if s == name]

    def candidates(self) -> list[str]:
        return [a["data-candidate"] or "" for _, a in self.tags if "data-candidate" in a]


def by_id(html: str, ident: str) -> str:
    """The text of the element with id `ident` (tags removed, entities decoded)."""
    found = re.search(rf'id="{ident}">(.*?)</(?:p|pre)>', html, re.S)
    assert found, ident
    return unescape(re.sub(r"<[^>]+>", "\n", found.group(1)))


def network_references(html: str) -> list[str]:
    """Whatever in a page could make a browser fetch something."""
    refs = re.findall(r"https?:|//[a-z0-9.-]+\.[a-z]{2,}/", html, re.I)
    for tag, attrs in Page(html).tags:
        if tag in ("script", "link", "iframe", "object", "embed", "img", "base"):
            refs.append(tag)
        refs += [f"{tag} {k}" for k in attrs if k in ("src", "href", "srcset", "action")]
    return refs


# The HTML page of a finished run


def test_report_html_holds_the_test_figures_and_the_verdict_of_the_result(
    finished: RunResult,
) -> None:
    result = json.loads((finished.run_dir / "result.json").read_text())
    html = run_report(finished.run_dir).html()
    test = result["test"]
    assert by_id(html, "verdict") == verdict(result)
    assert verdict(result) == "The best prompt beats the seed on held-out data."
    assert difference_line(test["difference"], 0.95) in by_id(html, "difference")
    for side in ("seed", "best"):
        ev = test[side]
        row = f'{ev["mean"]:.3f}</td><td class="num">[{ev["ci_low"]:.3f}, {ev["ci_high"]:.3f}]'
        assert row in html
    assert f"majority-class rate on test: {test['majority_rate']:.3f}" in html
    for prediction, count in test["best"]["predictions"].items():
        assert f"<td>{prediction}</td>" in html and f'{count} <span class="bar"' in html
    assert "Unparsed outputs (naming no valid answer, scored 0): seed 0, best 0" in html


def test_report_html_plots_every_dev_evaluation_at_the_calls_spent_with_the_best_so_far(
    finished: RunResult,
) -> None:
    store = RunStore.open_existing(finished.run_dir)
    try:
        events = store.events()
    finally:
        store.close()
    evaluated = [
        (e["split"], e["score"], events[i + 1]["task_calls"])
        for i, e in enumerate(events)
        if e["kind"] == "CandidateEvaluated" and e["split"] in ("dev", "dev-subset")
    ]
    page = Page(run_report(finished.run_dir).html())
    for split in ("dev", "dev-subset"):
        mine = [(float(calls), score) for s, score, calls in evaluated if s == split]
        assert page.series(split) == mine and mine
        calls = [x for x, _ in mine]
        assert calls == sorted(calls) and calls[-1] <= 150
    assert max(y for _, y in page.series("dev")) == 1.0
    assert "best so far on dev" in {a.get("data-series") for _, a in page.tags}
    # Score against length: the best prompt is the key instruction, 1.0 on dev.
    assert page.series("best") == [(float(len(KEY)), 1.0)]


def test_report_shows_seed_and_best_with_a_word_diff_and_the_exported_prompt(
    finished: RunResult,
) -> None:
    html = run_report(finished.run_dir).html()
    assert "<del>Which</del><ins>Answer</ins>" in html
    assert f"{KEY}\n\n{{input}}</pre>" in html
    assert f"promptascent export {finished.run_id} --format text" in html


def test_report_lineage_holds_every_candidate_with_operation_step_and_score(
    finished: RunResult,
) -> None:
    store = RunStore.open_existing(finished.run_dir)
    try:
        candidates = store.candidates()
    finally:
        store.close()
    html = run_report(finished.run_dir).html()
    assert sorted(Page(html).candidates()) == sorted(c["id"] for c in candidates)
    for c in candidates:
        assert f"<code>{c['id']}</code> {c['operation']}, step {c['step']}" in html


def test_report_example_table_puts_the_examples_where_seed_and_best_differ_first(
    tmp_path: Path,
) -> None:
    # Right on every example with the key; without it right only on cats.
    def task(request: CompletionRequest) -> str:
        if request.messages[-1].content.rstrip().endswith("cat"):
            return "dog"
        return task_responder(request)

    result = animal_run(tmp_path, ScriptedLLM(task, model_id="cat-knower"))
    assert result.best.prompt.instruction == KEY
    body = run_report(result.run_dir).html().split('id="example-table"', 1)[1]
    ids = re.findall(r"<td><code>(test-\d+)</code>", body)
    # Test example i shows animal i + 2 of cat, dog, cow, horse, fox, owl: both prompts
    # answer the cats alike (right), so those come last.
    cats = [f"test-{i}" for i in range(18) if (i + 2) % 6 == 0]
    assert len(ids) == 18 and ids[-len(cats) :] == cats
    assert body.count("<tr class=differs>") == 18 - len(cats)
    assert "<pre>cow</pre>" in body and "<pre>horse</pre>" in body  # input, expected


def test_report_shows_usage_per_role_the_configuration_and_the_command(
    finished: RunResult,
) -> None:
    html = run_report(finished.run_dir).html()
    task = finished.usage["task"]
    assert (
        f'<td>task</td><td class="num">{int(task["calls"])}</td>'
        f'<td class="num">{int(task["cache_hits"])}</td>'
        f'<td class="num">{int(task["model_calls"])}</td>' in html
    )
    assert "\noptimizer:\n  name: ape\n" in html
    assert "  eval_examples: 6\n  num_candidates: 4\n" in html
    assert "task_calls: 150" in html
    assert "promptascent optimize task.yaml</pre>" in html


def test_the_spent_line_sets_the_search_beside_its_budget_and_the_test_calls_apart(
    finished: RunResult,
) -> None:
    search = int(finished.search_usage["task"]["calls"])
    total = sum(int(u["calls"]) for u in finished.usage.values())
    assert search < total  # the test evaluation is counted apart
    line = f"The search spent {search} task and "
    for text in (run_report(finished.run_dir).html(), run_report(finished.run_dir).markdown()):
        assert line in text and "(budget: task_calls=150" in text
        assert f"with the test evaluation {total} calls" in text


def test_report_html_has_no_network_reference_and_no_script(finished: RunResult) -> None:
    report = run_report(finished.run_dir)
    assert network_references(report.html()) == []
    assert network_references(report.markdown()) == []
    assert "<svg" in report.html() and "<style>" in report.html()


def test_model_output_and_data_are_escaped_in_html_and_markdown(tmp_path: Path) -> None:
    def task(request: CompletionRequest) -> str:
        answer = task_responder(request)
        return answer if KEY in request.messages[-1].content else HOSTILE

    result = animal_run(tmp_path, ScriptedLLM(task, model_id="hostile"))
    report = run_report(result.run_dir)
    html, md = report.html(), report.markdown()
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&lt;img src=x" in html
    assert "<script" not in html and "<img" not in html
    assert network_references(html) == []
    assert "<script" not in md and "<img" not in md and "&lt;script&gt;" in md


# An interrupted run


def test_report_of_an_interrupted_run_says_it_is_partial_and_shows_what_was_recorded(
    tmp_path: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []

    def task(request: CompletionRequest) -> str:
        calls.append(1)
        if len(calls) == 40:
            raise KeyboardInterrupt
        return task_responder(request)

    with pytest.raises(KeyboardInterrupt):
        animal_run(tmp_path, ScriptedLLM(task, model_id="interrupted"))
    (run_dir,) = (tmp_path / "runs").iterdir()
    report = run_report(run_dir)
    assert report.partial
    html = report.html()
    assert "Partial report: the run has not ended (status: interrupted)" in html
    assert f"promptascent optimize --resume {run_dir.name}" in html
    assert "there is no held-out test yet" in html
    best_so_far = report.facts.best_id  # type: ignore[union-attr]
    assert f"--format text --candidate {best_so_far}</code>" in html
    store = RunStore.open_existing(run_dir)
    try:
        recorded = store.candidates()
    finally:
        store.close()
    page = Page(html)
    assert sorted(page.candidates()) == sorted(c["id"] for c in recorded)
    screened = [c["scores"]["dev-subset"]["mean"] for c in recorded if "dev-subset" in c["scores"]]
    assert [y for _, y in page.series("dev-subset")] == screened and screened
    assert "Partial report" in report.markdown()

    # Resumed (with progress on stderr, by default), the run ends and its report is whole.
    monkeypatch.setattr(
        "promptascent.llm.hub.ModelHub.backend",
        lambda self, role: optimizer_model() if role == "optimizer" else task_model(),
    )
    capsys.readouterr()
    promptascent.resume(run_dir)
    captured = capsys.readouterr()
    assert captured.out == "" and re.search(r"calls \d+ task calls \d+/150", captured.err)
    assert not run_report(run_dir).partial


def test_report_cli_writes_html_and_markdown_beside_the_run_or_into_out(
    finished: RunResult, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    runs = finished.run_dir.parent
    code, out, err = run_cli(monkeypatch, capsys, "report", finished.run_id[:15], runs=runs)
    assert code == 0, err
    html = (finished.run_dir / "report.html").read_text()
    assert html == run_report(finished.run_dir).html()
    assert (finished.run_dir / "report.md").read_text() == run_report(finished.run_dir).markdown()
    assert "report written to" in out
    code, out, err = run_cli(
        monkeypatch, capsys, "report", str(finished.run_dir), "--out", str(tmp_path / "o")
    )
    assert code == 0 and (tmp_path / "o" / "report.html").read_text() == html


def test_report_cli_refuses_a_missing_or_damaged_run_in_one_line_exit_2(
    finished: RunResult, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    code, _, err = run_cli(monkeypatch, capsys, "report", "nope", runs=tmp_path / "runs")
    assert code == 2 and "no run 'nope'" in err and len(err.strip().splitlines()) == 1
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    (damaged / "run.sqlite").write_bytes(b"SQLite format 3\x00" + b"\x07" * 4000)
    code, _, err = run_cli(monkeypatch, capsys, "report", str(damaged))
    assert code == 2 and "run.sqlite" in err and len(err.strip().splitlines()) == 1
    empty = tmp_path / "empty"
    RunStore(empty).close()
    code, _, err = run_cli(monkeypatch, capsys, "report", str(empty))
    assert code == 2 and "recorded no configuration" in err
    bad_compare = tmp_path / "compare-x"
    bad_compare.mkdir()
    (bad_compare / "compare.json").write_text("{not json")
    code, _, err = run_cli(monkeypatch, capsys, "report", str(bad_compare))
    assert code == 2 and "compare.json: not a readable comparison" in err


def run_cli(
    monkeypatch: pytest.MonkeyPatch, capsys: Any, *args: str, runs: Path | None = None
) -> tuple[int, str, str]:
    capsys.readouterr()
    argv = ["promptascent", *args] + (["--runs-dir", str(runs)] if runs else [])
    monkeypatch.setattr(sys, "argv", argv)
    try:
        main()
        code = 0
    except SystemExit as e:
        code = int(e.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# Markdown


def test_report_markdown_holds_the_verdict_scores_difference_and_prompts(
    finished: RunResult,
) -> None:
    result = json.loads((finished.run_dir / "result.json").read_text())
    md = run_report(finished.run_dir).markdown()
    test = result["test"]
    assert f"**{verdict(result)}**" in md
    assert difference_line(test["difference"], 0.95) in md
    seed = test["seed"]
    assert f"| {seed['mean']:.3f} | [{seed['ci_low']:.3f}, {seed['ci_high']:.3f}] | 18 |" in md
    assert f"```\n{KEY}\n\n{{input}}\n```" in md
    assert "[-Which-]{+Answer+}" in md


def test_the_terminal_summary_and_the_report_say_the_same_verdict(finished: RunResult) -> None:
    buf = io.StringIO()
    print_result(Console(file=buf, width=200), finished.to_dict())
    said = verdict(finished.to_dict())
    assert said and said in buf.getvalue() and said in run_report(finished.run_dir).html()


def test_the_terminal_summary_prints_the_evidence_the_readme_lists(finished: RunResult) -> None:
    """Seed and best on test with their CIs, the paired difference with its CI, win
    record and p, the majority-class rate and each prompt's predictions, the usage
    per role, and where the run was written: each figure as result.json holds it."""
    result = finished.to_dict()
    buf = io.StringIO()
    print_result(Console(file=buf, width=300), result)
    out = buf.getvalue()
    rows = {
        cells[0]: cells
        for line in out.splitlines()
        if line.count("│") >= 3
        for cells in [[c.strip() for c in line.strip().strip("│").split("│")]]
    }
    test = result["test"]
    for label in ("seed", "best"):
        ev = test[label]
        assert rows[label][1:3] == [
            f"{ev['mean']:.3f}",
            f"[{ev['ci_low']:.3f}, {ev['ci_high']:.3f}]",
        ]
    diff = test["difference"]
    assert (
        f"best - seed on test: {diff['mean']:+.3f}  95% CI [{diff['ci_low']:+.3f}, "
        f"{diff['ci_high']:+.3f}]  (wins {diff['wins']}, losses {diff['losses']}, "
        f"ties {diff['ties']}, p={diff['p_value']:.3f})"
    ) in out
    assert f"majority-class rate on test: {test['majority_rate']:.3f}" in out
    assert "usage (calls include cache hits; model calls were paid)" in out
    for role, usage in result["usage"].items():
        if usage["calls"]:
            assert rows[role][:4] == [
                role,
                str(int(usage["calls"])),
                str(int(usage["cache_hits"])),
                str(int(usage["model_calls"])),
            ]
    assert f"run written to {result['run_dir']}" in out


def test_the_task_files_confidence_level_sets_every_interval_and_its_label(
    tmp_path: Path,
) -> None:
    """`evaluation.confidence: 0.8` in the task file: the intervals are 80% ones (inside
    the 95% ones of the same run at the default) and are labelled so in the terminal
    summary and the report."""
    from scripted import task_responder

    def half_right(request: CompletionRequest) -> str:  # wrong on cow and horse
        answer = task_responder(request)
        return "dog" if answer in ("cow", "horse") else answer

    results = {}
    for level in (0.8, 0.95):
        spec = write_animal_task(tmp_path / f"t{level}")
        text = spec.read_text().replace(
            "evaluation: {concurrency: 2}", f"evaluation: {{concurrency: 2, confidence: {level}}}"
        )
        spec.write_text(text)
        task = ScriptedLLM(half_right, model_id="half-right")
        run = promptascent.optimize(
            spec, optimizer="ape", options=APE, budget={"task_calls": 150},
            settings=settings(tmp_path / f"r{level}", task), progress=False,
        )  # fmt: skip
        results[level] = run
    narrow, wide = (results[x].to_dict() for x in (0.8, 0.95))
    assert narrow["confidence"] == 0.8 and wide["confidence"] == 0.95
    d80, d95 = narrow["test"]["difference"], wide["test"]["difference"]
    assert d80["mean"] == d95["mean"] and 0 < d80["mean"] < 1
    assert d95["ci_low"] < d80["ci_low"] <= d80["ci_high"] < d95["ci_high"]
    buf = io.StringIO()
    print_result(Console(file=buf, width=200), narrow)
    assert "80% CI" in buf.getvalue() and "95% CI" not in buf.getvalue()
    assert "80% CI" in run_report(results[0.8].run_dir).html()


def test_a_run_recorded_before_examples_and_spending_were_stored_gets_a_report(
    finished: RunResult, tmp_path: Path
) -> None:
    """Older stores have no `examples` key and no BudgetSpent events: the example table
    shows ids without inputs, the search plot is against the step."""
    import shutil

    old = tmp_path / finished.run_id
    shutil.copytree(finished.run_dir, old)
    conn = sqlite3.connect(old / "run.sqlite")
    with conn:
        conn.execute("DELETE FROM run WHERE key = 'examples'")
        conn.execute("DELETE FROM events WHERE kind = 'BudgetSpent'")
    conn.close()
    html = run_report(old).html()
    body = html.split('id="example-table"', 1)[1]
    assert body.count('<span class="muted">not recorded</span>') == 18
    assert ">step</text>" in html and "task-model calls spent" not in html
    steps = {c.id: c.step for c in run_report(old).facts.candidates}  # type: ignore[union-attr]
    assert {x for x, _ in Page(html).series("dev")} <= {float(s) for s in steps.values()}


# A run of a few hundred candidates


@pytest.mark.parametrize("shape", ["bushy", "chain"])
def test_lineage_of_hundreds_of_candidates_renders_every_one_once(
    tmp_path: Path, shape: str
) -> None:
    """300 candidates as a tree (each the child of candidate i // 2), and 1,200 as one
    chain (deeper than Python's recursion limit)."""
    from promptascent.prompts.prompt import Prompt

    run_dir = tmp_path / "big"
    store = RunStore(run_dir)
    store._conn.execute("PRAGMA synchronous=OFF")  # a test of rendering, not durability
    ids: list[str] = []
    for i in range(300 if shape == "bushy" else 1200):
        parents = () if not ids else (ids[i // 2] if shape == "bushy" else ids[-1],)
        c = Candidate(Prompt(f"Prompt number {i}."), parents=parents, operation="mutate", step=i)
        store.add_candidate(c.record())
        ids.append(c.id)
    store.put("config", {"task": {"name": "big"}, "optimizer": {"name": "x"}, "budget": {}})
    store.put("status", "interrupted")
    store.close()
    html = run_report(run_dir).html()
    shown = Page(html).candidates()
    if shape == "chain":
        assert shown == ids
    else:
        assert sorted(shown) == sorted(ids)
    assert html.count("<details") == html.count("</details>")


# The compare page


def test_compare_page_has_a_row_per_optimizer_and_seed_and_plots_test_score_against_calls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    spec = write_animal_task(tmp_path / "t")
    comparison = promptascent.compare(
        spec,
        ["ape", "random"],
        budget={"task_calls": 120},
        seeds=[0, 1],
        options={"ape": APE},
        settings=settings(tmp_path),
        progress=False,
    )
    assert comparison.folder is not None
    report = compare_report(comparison.folder)
    html = report.html()
    rows = comparison.to_dict()["rows"]
    for r in rows:
        assert f"<td>{r['optimizer']}</td><td>{r['seed']}</td><td><code>{r['run_id']}" in html
    page = Page(html)
    for name in ("ape", "random"):
        expected = [
            (
                float(r["task_calls"] + r["optimizer_calls"] + r["judge_calls"]),
                r["test_best"]["mean"],
            )
            for r in rows
            if r["optimizer"] == name
        ]
        assert page.series(name) == expected
    assert network_references(html) == []
    assert comparison._repr_html_() == report.html_fragment()
    md = report.markdown()
    assert md.count("\n| ape | ") == 2 and md.count("\n| random | ") == 2
    code, _, err = run_cli(
        monkeypatch, capsys, "report", comparison.folder.name, runs=tmp_path / "runs"
    )
    assert code == 0, err
    assert (comparison.folder / "report.html").read_text() == html


def test_a_compare_row_at_the_majority_rate_names_the_rate_in_its_verdict() -> None:
    diff = {"mean": 0.12, "ci_low": 0.06, "ci_high": 0.19, "p_value": 0.001}
    row = {
        "optimizer": "gepa",
        "seed": 0,
        "test_seed": {"mean": 0.34, "ci_low": 0.25, "ci_high": 0.44},
        "test_best": {"mean": 0.46, "ci_low": 0.36, "ci_high": 0.56},
        "difference": diff,
        "majority_rate": 0.5,
        "best_candidate": "b",
        "seed_candidate": "s",
    }
    said = row_verdict(row)
    assert said == (
        "The best prompt beats the seed on held-out data, but not always answering the "
        "majority class (0.500)."
    )
    report = comparison_report({"task": "t", "rows": [row]})
    for text in (report.html(), report.markdown()):
        assert "majority rate" in text and "(below)" not in text


def calls_spent(row: dict[str, Any]) -> float:
    return float(row["task_calls"] + row["optimizer_calls"] + row["judge_calls"])


# Notebooks


def test_run_result_renders_as_the_report_in_a_notebook(finished: RunResult) -> None:
    fragment = finished._repr_html_()
    assert fragment == run_report(finished.run_dir).html_fragment()
    assert "The best prompt beats the seed on held-out data." in fragment
    assert "<html" not in fragment and "body {" not in fragment  # scoped to the report


def test_candidate_rows_are_the_run_store_candidates_as_dicts(finished: RunResult) -> None:
    store = RunStore.open_existing(finished.run_dir)
    try:
        candidates = store.candidates()
    finally:
        store.close()
    rows = finished.candidate_rows()
    assert [r["id"] for r in rows] == [c["id"] for c in candidates]
    assert len({tuple(r) for r in rows}) == 1  # every row has the same keys
    for r, c in zip(rows, candidates, strict=True):
        assert r["instruction"] == c["prompt"]["instruction"] and r["step"] == c["step"]
        assert r["dev_score"] == (c["scores"]["dev"]["mean"] if "dev" in c["scores"] else None)
        assert r["is_seed"] == (c["id"] == finished.seed.id)
        assert r["is_best"] == (c["id"] == finished.best.id)
    assert sum(r["is_best"] for r in rows) == 1


def test_to_dataframe_holds_the_rows_with_pandas(finished: RunResult) -> None:
    import pandas as pd

    rows = finished.candidate_rows()
    frame = finished.to_dataframe()
    assert isinstance(frame, pd.DataFrame) and list(frame.columns) == list(rows[0])
    assert frame["id"].tolist() == [r["id"] for r in rows]
    assert frame["is_best"].tolist() == [r["is_best"] for r in rows]
    assert frame["test_score"].dropna().tolist() == [
        r["test_score"] for r in rows if r["test_score"] is not None
    ]


def test_to_dataframe_without_pandas_says_to_install_it(
    finished: RunResult, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ImportError, match=r"needs pandas.*candidate_rows\(\)"):
        finished.to_dataframe()


# Progress in the Python API


def test_optimize_shows_progress_with_calls_and_dollars_on_stderr_only(
    tmp_path: Path, capsys: Any
) -> None:
    spec = write_animal_task(tmp_path / "t")
    promptascent.optimize(
        spec,
        optimizer="ape",
        options=APE,
        budget={"task_calls": 150, "dollars": 2},
        settings=settings(tmp_path),
    )
    captured = capsys.readouterr()
    assert captured.out == ""
    assert re.search(r"calls \d+ task calls \d+/150 \$0\.0000/\$2\.00", captured.err)
    assert "test" in captured.err and "best 1.000" in captured.err


def test_compare_and_refine_show_progress_on_stderr_and_refine_stays_beside_its_run(
    tmp_path: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = write_animal_task(tmp_path / "t")
    comparison = promptascent.compare(
        spec, ["ape"], budget={"task_calls": 120}, options={"ape": APE}, settings=settings(tmp_path)
    )
    captured = capsys.readouterr()
    assert captured.out == "" and re.search(r"calls \d+ task calls \d+/120", captured.err)
    monkeypatch.chdir(tmp_path / "t")  # not where the runs are: ./runs would be wrong
    first = comparison.rows[0].result.run_dir
    monkeypatch.setattr(
        "promptascent.llm.hub.ModelHub.backend",
        lambda self, role: optimizer_model() if role == "optimizer" else task_model(),
    )
    refined = promptascent.refine(first, "answers are too long", budget={"task_calls": 100})
    captured = capsys.readouterr()
    assert refined.run_dir.parent == first.parent  # beside its run, as without progress
    assert captured.out == "" and re.search(r"calls \d+ task calls \d+/100", captured.err)


def test_optimize_with_progress_off_prints_nothing(tmp_path: Path, capsys: Any) -> None:
    animal_run(tmp_path)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_spending_is_stored_after_each_evaluation_not_after_each_example(
    finished: RunResult,
) -> None:
    conn = sqlite3.connect(finished.run_dir / "run.sqlite")
    try:
        kinds = [k for (k,) in conn.execute("SELECT kind FROM events ORDER BY seq")]
    finally:
        conn.close()
    assert kinds.count("BudgetSpent") == kinds.count("CandidateEvaluated") > 0
    assert all(
        kinds[i - 1] == "CandidateEvaluated" for i, k in enumerate(kinds) if k == "BudgetSpent"
    )
    assert "ExampleScored" not in kinds


# One real run


@pytest.mark.embedded
def test_report_of_a_run_on_the_embedded_model(tmp_path: Path, repo: Path, embedded: Any) -> None:
    task = tiny_navigate(repo)
    task["optimizer"] = {"name": "ape", "num_candidates": 2, "eval_examples": 2, "final_k": 2}
    result = promptascent.optimize(
        task,
        budget={"task_calls": 40},
        settings=embedded_settings(tmp_path, embedded),
        progress=False,
    )
    report = run_report(result.run_dir)
    html = report.html()
    assert result.test_seed is not None and result.test_best is not None
    assert f"{result.test_seed.mean:.3f}" in html and f"{result.test_best.mean:.3f}" in html
    said = verdict(result.to_dict())
    assert said and said in html
    assert network_references(html) == [] and "<svg" in html
    assert len(Page(html).series("best")) == 1 and Page(html).series("dev")
