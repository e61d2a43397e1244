"""The one place where the web app shows a run's or a compare's full report.

The HTML report (`promptascent report`, package promptascent.report) is built in
parallel with the web app: once both are merged, this function returns
`HTMLResponse(run_report(folder).html())` for a run and
`HTMLResponse(compare_report(folder).html())` for a compare. Until then it serves
the web app's own pages (`fallback`: the live run page, the compare table).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from starlette.responses import Response


def report_page(folder: Path, *, compare: bool, fallback: Callable[[], Response]) -> Response:
    """The full report of the run (or, with `compare`, the comparison) in `folder`."""
    del folder, compare  # used by the report once it is wired here
    return fallback()
