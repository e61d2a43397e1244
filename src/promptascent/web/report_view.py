"""The one place where the web app shows a run's or a compare's full report: the
self-contained page of `promptascent report` (package promptascent.report), served
with a Content-Security-Policy that runs no script and loads nothing. A run that has
recorded nothing to report yet (no configuration or no candidate) gets `fallback`
(the web app's live run page) instead."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from starlette.responses import HTMLResponse, Response

from promptascent.errors import ConfigError
from promptascent.report import compare_report, run_report

# The report has no script and no reference outside the page (inline CSS and SVG).
REPORT_POLICY = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"


def report_page(folder: Path, *, compare: bool, fallback: Callable[[], Response]) -> Response:
    """The full report of the run (or, with `compare`, the comparison) in `folder`."""
    try:
        html = compare_report(folder).html() if compare else run_report(folder).html()
    except ConfigError:
        return fallback()
    response = HTMLResponse(html)
    response.headers["Content-Security-Policy"] = REPORT_POLICY
    response.headers["X-Frame-Options"] = "DENY"
    return response
