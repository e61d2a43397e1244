"""The HTML page around a report: inline CSS, no script, no external reference.

Everything that comes from data, models or servers is escaped with `esc` before it is
put into the page: model output and dataset text are untrusted and must never become
markup.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

# Every rule is scoped to the report's element, so a notebook cell showing the report
# (`_repr_html_`) does not restyle the notebook around it.
_CSS = """
.pa { font-family: system-ui, sans-serif; margin: 1.5rem auto; max-width: 72rem;
      padding: 0 1rem; color: #222; line-height: 1.4; }
.pa h1 { font-size: 1.5rem; }
.pa h2 { font-size: 1.2rem; margin-top: 2rem; border-bottom: 1px solid #ddd; }
.pa table { border-collapse: collapse; margin: 0.5rem 0; }
.pa th, .pa td { border: 1px solid #ddd; padding: 0.25rem 0.5rem; vertical-align: top;
                 text-align: left; }
.pa th { background: #f4f4f4; }
.pa td.num { text-align: right; font-variant-numeric: tabular-nums; }
.pa pre { background: #f7f7f7; padding: 0.5rem; white-space: pre-wrap;
          overflow-wrap: anywhere; margin: 0; }
.pa .verdict { font-size: 1.15rem; font-weight: 600; padding: 0.6rem; background: #eef5ff;
               border-left: 4px solid #0072b2; }
.pa .partial { padding: 0.6rem; background: #fff6e0; border-left: 4px solid #e69f00; }
.pa .warning { padding: 0.4rem 0.6rem; background: #fdecea; border-left: 4px solid #d55e00; }
.pa .side-by-side { display: grid; grid-template-columns: 1fr 1fr; gap: 1rem; }
.pa del { background: #fdd; text-decoration: line-through; }
.pa ins { background: #dfd; text-decoration: none; }
.pa details { margin-left: 1.2rem; }
.pa details > summary { cursor: pointer; }
.pa .tree > details { margin-left: 0; }
.pa .best { font-weight: 700; }
.pa .tree div { margin-left: 1.2rem; }
.pa .differs td:first-child { border-left: 4px solid #e69f00; }
.pa .plot text { font-size: 11px; }
.pa .plot .plot-title { font-size: 13px; font-weight: 600; }
.pa .bar { display: inline-block; height: 0.8rem; background: #0072b2;
           vertical-align: middle; }
.pa .muted { color: #666; }
"""


def esc(text: object) -> str:
    """HTML-escapes any value for a text node or a quoted attribute."""
    return escape(str(text), quote=True)


def page(title: str, body: Sequence[str]) -> str:
    """A whole self-contained HTML document."""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<title>{esc(title)}</title><style>{_CSS}</style></head><body><main class="pa">\n'
        + "\n".join(body)
        + "\n</main></body></html>\n"
    )


def fragment(body: Sequence[str]) -> str:
    """The same content for a notebook cell (`_repr_html_`): the style, no document."""
    return f'<div class="pa"><style>{_CSS}</style>' + "\n".join(body) + "</div>"


def table(header: Sequence[str], rows: Sequence[Sequence[str]], *, numeric_from: int = 1) -> str:
    """A table; cells are already HTML (escape them first). Columns from `numeric_from`
    are right-aligned."""
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="num">{c}</td>' if i >= numeric_from else f"<td>{c}</td>"
            for i, c in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def pre(text: str) -> str:
    return f"<pre>{esc(text)}</pre>"
