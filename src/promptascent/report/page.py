"""The HTML page around a report: inline CSS, no script, no external reference.

Everything that comes from data, models or servers is escaped with `esc` before it is
put into the page: model output and dataset text are untrusted and must never become
markup.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

_CSS = """
body { font-family: system-ui, sans-serif; margin: 1.5rem auto; max-width: 72rem;
       padding: 0 1rem; color: #222; line-height: 1.4; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.2rem; margin-top: 2rem;
     border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.5rem 0; }
th, td { border: 1px solid #ddd; padding: 0.25rem 0.5rem; vertical-align: top;
         text-align: left; }
th { background: #f4f4f4; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
pre { background: #f7f7f7; padding: 0.5rem; white-space: pre-wrap;
      overflow-wrap: anywhere; margin: 0; }
.verdict { font-size: 1.15rem; font-weight: 600; padding: 0.6rem; background: #eef5ff;
           border-left: 4px solid #0072b2; }
.partial { padding: 0.6rem; background: #fff6e0; border-left: 4px solid #e69f00; }
.warning { padding: 0.4rem 0.6rem; background: #fdecea; border-left: 4px solid #d55e00; }
.side-by-side { display: grid; grid-template-columns: 1fr 1fr; gap: 1rem; }
del { background: #fdd; text-decoration: line-through; }
ins { background: #dfd; text-decoration: none; }
details { margin-left: 1.2rem; } details > summary { cursor: pointer; }
.tree > details { margin-left: 0; }
.best { font-weight: 700; }
.differs td:first-child { border-left: 4px solid #e69f00; }
.plot text { font-size: 11px; } .plot .plot-title { font-size: 13px; font-weight: 600; }
.bar { display: inline-block; height: 0.8rem; background: #0072b2; vertical-align: middle; }
.muted { color: #666; }
"""


def esc(text: object) -> str:
    """HTML-escapes any value for a text node or a quoted attribute."""
    return escape(str(text), quote=True)


def page(title: str, body: Sequence[str]) -> str:
    """A whole self-contained HTML document."""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{esc(title)}</title><style>{_CSS}</style></head><body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )


def fragment(body: Sequence[str]) -> str:
    """The same content for a notebook cell (`_repr_html_`): the style, no document."""
    return f'<div class="promptascent-report"><style>{_CSS}</style>' + "\n".join(body) + "</div>"


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
