"""Plots as inline SVG text, drawn in Python: no chart library, no script, no network.

Every point carries its exact values (`data-x`, `data-y`) and a tooltip (`<title>`),
so a reader can hover for the figure and a test can read it back. All text is
HTML-escaped here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape

# Colour-blind-safe (Okabe-Ito), in the order series are drawn.
PALETTE = ("#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00", "#000000")


@dataclass(frozen=True)
class Series:
    """Points of one kind. `step_line`: drawn as a line that holds each value until the
    next point (a best-so-far curve), without markers. `tips`: a tooltip per point.
    `spans`: a vertical interval per point (a confidence interval), or None."""

    name: str
    points: Sequence[tuple[float, float]]
    color: str
    step_line: bool = False
    tips: Sequence[str] = ()
    spans: Sequence[tuple[float, float] | None] = ()
    marker: str = "circle"  # or "square", "diamond"


@dataclass(frozen=True)
class Plot:
    title: str
    x_label: str
    y_label: str
    series: Sequence[Series]
    width: int = 640
    height: int = 320
    y_range: tuple[float, float] | None = None
    notes: Sequence[str] = field(default=())

    def svg(self) -> str:
        return _render(self)


_LEFT, _RIGHT, _TOP, _BOTTOM = 56, 16, 46, 44  # the title and legend above the plot


def _render(plot: Plot) -> str:
    xs = [x for s in plot.series for x, _ in s.points]
    ys = [y for s in plot.series for _, y in s.points]
    ys += [v for s in plot.series for span in s.spans if span for v in span]
    w, h = plot.width, plot.height
    parts = [
        f'<svg class="plot" width="{w}" height="{h}" '
        f'viewBox="0 0 {w} {h}" role="img" aria-label="{escape(plot.title)}">',
        f'<text x="{w / 2:.1f}" y="16" text-anchor="middle" class="plot-title">'
        f"{escape(plot.title)}</text>",
    ]
    if not xs:
        parts.append(
            f'<text x="{w / 2:.1f}" y="{h / 2:.1f}" text-anchor="middle">no points</text></svg>'
        )
        return "".join(parts)
    x0, x1 = _padded(min(xs), max(xs))
    y0, y1 = plot.y_range or _padded(min(ys), max(ys))
    pw, ph = w - _LEFT - _RIGHT, h - _TOP - _BOTTOM

    def sx(x: float) -> float:
        return _LEFT + (x - x0) / (x1 - x0) * pw

    def sy(y: float) -> float:
        return _TOP + ph - (y - y0) / (y1 - y0) * ph

    parts.append(
        f'<rect x="{_LEFT}" y="{_TOP}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>'
    )
    for t in _ticks(x0, x1):
        parts.append(
            f'<line x1="{sx(t):.1f}" y1="{_TOP + ph}" x2="{sx(t):.1f}" y2="{_TOP + ph + 4}" '
            f'stroke="#999"/><text x="{sx(t):.1f}" y="{_TOP + ph + 16}" text-anchor="middle" '
            f'class="tick">{_fmt(t)}</text>'
        )
    for t in _ticks(y0, y1):
        parts.append(
            f'<line x1="{_LEFT}" y1="{sy(t):.1f}" x2="{_LEFT + pw}" y2="{sy(t):.1f}" '
            f'stroke="#eee"/><text x="{_LEFT - 6}" y="{sy(t) + 4:.1f}" text-anchor="end" '
            f'class="tick">{_fmt(t)}</text>'
        )
    parts.append(
        f'<text x="{_LEFT + pw / 2:.1f}" y="{h - 8}" text-anchor="middle" class="axis">'
        f"{escape(plot.x_label)}</text>"
        f'<text x="14" y="{_TOP + ph / 2:.1f}" text-anchor="middle" class="axis" '
        f'transform="rotate(-90 14 {_TOP + ph / 2:.1f})">{escape(plot.y_label)}</text>'
    )
    for s in plot.series:
        parts.append(f'<g class="series" data-series="{escape(s.name)}">')
        if s.step_line:
            # Each value holds until the next point: across, then up or down.
            path = [
                f"H{sx(x):.1f} V{sy(y):.1f}" if i else f"M{sx(x):.1f},{sy(y):.1f}"
                for i, (x, y) in enumerate(s.points)
            ]
            parts.append(
                f'<path d="{" ".join(path)}" fill="none" stroke="{s.color}" stroke-width="2">'
                f"<title>{escape(s.name)}</title></path>"
            )
        else:
            for i, (x, y) in enumerate(s.points):
                span = s.spans[i] if i < len(s.spans) else None
                if span is not None:
                    parts.append(
                        f'<line x1="{sx(x):.1f}" y1="{sy(span[0]):.1f}" x2="{sx(x):.1f}" '
                        f'y2="{sy(span[1]):.1f}" stroke="{s.color}"/>'
                    )
                tip = s.tips[i] if i < len(s.tips) else f"{_fmt(x)}, {_fmt(y)}"
                parts.append(_marker(s.marker, sx(x), sy(y), s.color, x, y, tip))
        parts.append("</g>")
    parts.append(_legend(plot.series, w))
    parts.append("</svg>")
    return "".join(parts)


def _marker(kind: str, cx: float, cy: float, color: str, x: float, y: float, tip: str) -> str:
    data = f'data-x="{x!r}" data-y="{y!r}"'
    title = f"<title>{escape(tip)}</title>"
    if kind == "square":
        return (
            f'<rect x="{cx - 5:.1f}" y="{cy - 5:.1f}" width="10" height="10" fill="{color}" '
            f'stroke="#000" class="point" {data}>{title}</rect>'
        )
    if kind == "diamond":
        pts = " ".join(
            f"{px:.1f},{py:.1f}"
            for px, py in ((cx, cy - 7), (cx + 7, cy), (cx, cy + 7), (cx - 7, cy))
        )
        return (
            f'<polygon points="{pts}" fill="{color}" stroke="#000" class="point" {data}>'
            f"{title}</polygon>"
        )
    return (
        f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="3.5" fill="{color}" fill-opacity="0.75" '
        f'class="point" {data}>{title}</circle>'
    )


def _legend(series: Sequence[Series], width: int) -> str:
    parts = ['<g class="legend">']
    x = _LEFT
    for s in series:
        label = escape(s.name)
        parts.append(
            f'<rect x="{x}" y="24" width="10" height="10" fill="{s.color}"/>'
            f'<text x="{x + 14}" y="33" class="tick">{label}</text>'
        )
        x += 28 + 7 * len(s.name)
        if x > width - 80:
            break
    parts.append("</g>")
    return "".join(parts)


def _padded(lo: float, hi: float) -> tuple[float, float]:
    if lo == hi:
        pad = abs(lo) * 0.1 or 1.0
        return lo - pad, hi + pad
    pad = (hi - lo) * 0.05
    return lo - pad, hi + pad


def _ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """About `count` round numbers between lo and hi."""
    raw = (hi - lo) / count
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step) * step
    out = []
    t = first
    while t <= hi + 1e-12:
        out.append(round(t, 10))
        t += step
    return out


def _fmt(v: float) -> str:
    if v == int(v) and abs(v) >= 1:
        return f"{int(v)}"
    return f"{v:.3g}"
