"""The metric-over-experiments chart of `expd report`, as an inline SVG written by hand.

Why by hand: the HTML report must open offline from one file, and the CLI stays stdlib-only
(inline SVG in HTML needs no namespace, so the file names no URL at all).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from html import escape

from shared.display import fmt_num

W, H = 900, 320
LEFT, RIGHT, TOP, BOTTOM = 70, 20, 20, 40
INSET = 14
"""Keeps the first and last markers off the frame."""
COLORS = {
    "baseline": "#555555",
    "keep": "#1a7f37",
    "discard": "#9a9a9a",
    "crash": "#cf222e",
    "measurement_failure": "#bc4c00",
}


@dataclass(frozen=True)
class Point:
    """One experiment: its metric (None when it has none) and the spread of its samples."""

    experiment: int
    status: str
    metric: float | None
    low: float | None = None
    high: float | None = None


def _ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    step = (hi - lo) / (count - 1) if hi > lo else 1.0
    return [lo + i * step for i in range(count)]


def chart(points: list[Point], *, baseline: float | None, best: float | None, metric: str) -> str:
    """An SVG with one marker per experiment (class `point <status>`, kept ones filled green and
    larger), a vertical interval per point, and dashed baseline and best lines. Experiments without
    a metric (crashes) sit on the bottom axis as red crosses."""
    values = [v for p in points for v in (p.metric, p.low, p.high) if v is not None]
    values += [v for v in (baseline, best) if v is not None]
    lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
    if hi == lo:
        lo, hi = lo - 1.0, hi + 1.0
    pad = (hi - lo) * 0.06
    lo, hi = lo - pad, hi + pad
    xs = [p.experiment for p in points] or [0]
    x0, x1 = min(xs), max(max(xs), min(xs) + 1)
    plot_w, plot_h = W - LEFT - RIGHT, H - TOP - BOTTOM

    def sx(x: float) -> float:
        return LEFT + INSET + (x - x0) / (x1 - x0) * (plot_w - 2 * INSET)

    def sy(y: float) -> float:
        return TOP + (hi - y) / (hi - lo) * plot_h

    out = [
        f'<svg class="chart" width="{W}" height="{H}" '
        f'viewBox="0 0 {W} {H}" role="img" aria-label="{escape(metric)} per experiment">',
        f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="#fbfbfb" '
        'stroke="#cccccc"/>',
    ]
    for t in _ticks(lo + pad, hi - pad):
        y = sy(t)
        out.append(
            f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eeeeee"/>'
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11">'
            f"{escape(fmt_num(t))}</text>"
        )
    step = max(1, (x1 - x0) // 10)
    for x in range(x0, x1 + 1, step):
        out.append(
            f'<text x="{sx(x):.1f}" y="{H - BOTTOM + 16}" text-anchor="middle" font-size="11">'
            f"{x}</text>"
        )
    out.append(
        f'<text x="{LEFT + plot_w / 2:.0f}" y="{H - 6}" text-anchor="middle" font-size="12">'
        f"experiment</text>"
    )
    for label, value, color in (("baseline", baseline, "#555555"), ("best", best, "#1a7f37")):
        if value is not None:
            y = sy(value)
            out.append(
                f'<line class="{label}-line" x1="{LEFT}" x2="{W - RIGHT}" y1="{y:.1f}" '
                f'y2="{y:.1f}" stroke="{color}" stroke-dasharray="6 4"/>'
                f'<text x="{W - RIGHT - 4}" y="{y - 4:.1f}" text-anchor="end" font-size="11" '
                f'fill="{color}">{label} {escape(fmt_num(value))}</text>'
            )
    kept = [p for p in points if p.status in ("baseline", "keep") and p.metric is not None]
    if len(kept) > 1:
        path = " ".join(f"{sx(p.experiment):.1f},{sy(p.metric or 0):.1f}" for p in kept)
        out.append(f'<polyline points="{path}" fill="none" stroke="#1a7f37" stroke-width="1.5"/>')
    for p in points:
        out.append(_marker(p, sx(p.experiment), sy, TOP + plot_h))
    out.append("</svg>")
    return "\n".join(out)


def _marker(p: Point, x: float, sy: Callable[[float], float], bottom: float) -> str:
    color = COLORS.get(p.status, "#333333")
    title = f"<title>#{p.experiment} {escape(p.status)} {escape(fmt_num(p.metric))}</title>"
    cls = f"point {escape(p.status)}"
    if p.metric is None:
        d = 5
        return (
            f'<g class="{cls}" data-experiment="{p.experiment}">{title}'
            f'<path d="M{x - d:.1f},{bottom - d:.1f} L{x + d:.1f},{bottom + d:.1f} '
            f'M{x - d:.1f},{bottom + d:.1f} L{x + d:.1f},{bottom - d:.1f}" stroke="{color}" '
            'stroke-width="2"/></g>'
        )
    parts = [f'<g class="{cls}" data-experiment="{p.experiment}">{title}']
    if p.low is not None and p.high is not None and p.high > p.low:
        parts.append(
            f'<line class="interval" x1="{x:.1f}" x2="{x:.1f}" y1="{sy(p.low):.1f}" '
            f'y2="{sy(p.high):.1f}" stroke="{color}" stroke-width="1.5"/>'
        )
    kept = p.status in ("keep", "baseline")
    r, fill = (6, color) if kept else (4, "#ffffff")
    parts.append(
        f'<circle cx="{x:.1f}" cy="{sy(p.metric):.1f}" r="{r}" fill="{fill}" '
        f'stroke="{color}" stroke-width="2"/></g>'
    )
    return "".join(parts)
