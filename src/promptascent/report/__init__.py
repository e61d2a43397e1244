"""Reports of runs and comparisons: one self-contained HTML page and a Markdown summary.

    report = run_report(Path("runs/RUN_ID"))     # reads the run store only
    report.html()       # one page: inline CSS and SVG, no script, no network reference
    report.markdown()
    compare_report(Path("runs/compare-..."))     # reads compare.json

The web app and `RunResult._repr_html_` / `Comparison._repr_html_` render through
these same functions. See docs/report.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from promptascent.report.compare_page import (
    CompareFacts,
    compare_body,
    compare_facts,
    compare_markdown,
    read_compare,
)
from promptascent.report.page import fragment, page
from promptascent.report.run_facts import RunFacts, read_run
from promptascent.report.run_html import run_body
from promptascent.report.run_markdown import run_markdown
from promptascent.store.files import write_atomic

HTML_FILE = "report.html"
MARKDOWN_FILE = "report.md"


@dataclass(frozen=True)
class Report:
    """A report of one run or one comparison. `facts` is what it says (RunFacts or
    CompareFacts); `html()` and `markdown()` render them."""

    facts: RunFacts | CompareFacts

    @property
    def title(self) -> str:
        if isinstance(self.facts, RunFacts):
            return f"promptascent run {self.facts.run_id}"
        return f"promptascent compare: {self.facts.task}"

    @property
    def partial(self) -> bool:
        """A report of a run that has not ended (what was recorded so far)."""
        return isinstance(self.facts, RunFacts) and self.facts.partial

    def _body(self) -> list[str]:
        if isinstance(self.facts, RunFacts):
            return run_body(self.facts)
        return compare_body(self.facts)

    def html(self) -> str:
        """One self-contained HTML document: inline CSS and SVG, no script, no external
        reference; every text from data and models escaped."""
        return page(self.title, self._body())

    def html_fragment(self) -> str:
        """The same content for embedding (a notebook cell): no document around it."""
        return fragment(self._body())

    def markdown(self) -> str:
        if isinstance(self.facts, RunFacts):
            return run_markdown(self.facts)
        return compare_markdown(self.facts)

    def write(self, folder: Path) -> tuple[Path, Path]:
        """Writes report.html and report.md into `folder` (made if needed), atomically;
        returns their paths."""
        folder.mkdir(parents=True, exist_ok=True)
        html_path, md_path = folder / HTML_FILE, folder / MARKDOWN_FILE
        write_atomic(html_path, self.html())
        write_atomic(md_path, self.markdown())
        return html_path, md_path


def run_report(run_dir: Path) -> Report:
    """The report of the run in `run_dir`, from its run store alone. Works on a run
    that has not ended (`Report.partial`). ConfigError for a folder without a run,
    StorageError for a damaged run store."""
    return Report(read_run(Path(run_dir)))


def compare_report(compare_dir: Path) -> Report:
    """The compare page of the comparison in `compare_dir` (its compare.json)."""
    return Report(read_compare(Path(compare_dir)))


def comparison_report(data: dict[str, Any], folder: Path | None = None) -> Report:
    """The compare page of a comparison in memory (`Comparison.to_dict()`)."""
    return Report(compare_facts(data, folder))


__all__ = ["Report", "compare_report", "comparison_report", "run_report"]
