"""`expd bakeoff report --format html`: one self-contained page — the ranking, an SVG bar chart of
success rates with their intervals, a cost-vs-success scatter, the task matrix and the failures
by cause. Written by hand like `report_svg.py`: no script, no stylesheet or font from anywhere,
and every string that came from a person or an agent is escaped."""

from __future__ import annotations

from html import escape

from shared.bakeoffs.analysis import SYMBOLS, ErrorGroup
from shared.bakeoffs.ranking import VariantRank
from shared.cli.bakeoff_report import (
    LEGEND,
    MD_HEADER,
    ReportDoc,
    comparison_line,
    facts,
    notes,
    ranking_rows,
    winner_lines,
)
from shared.display import fmt_num

H = 300
LEFT, RIGHT, TOP, BOTTOM = 56, 20, 20, 56
SLOT = 90
"""Horizontal room per variant in the bar chart."""
SCATTER_W = 640

CSS = """body{font-family:system-ui,sans-serif;margin:24px;color:#1f2328;max-width:1200px}
table{border-collapse:collapse;font-size:13px;margin:8px 0}td,th{border:1px solid #d0d7de;
padding:3px 6px;text-align:left;vertical-align:top}th{background:#f6f8fa}
dl.facts{display:grid;grid-template-columns:max-content auto;gap:2px 16px}dt{font-weight:600}
dd{margin:0}p.winner{font-size:16px;padding:8px 12px;border-radius:6px;background:#fff8c5}
p.winner.significant{background:#dafbe1}tr.first td{font-weight:600}
td.cell{font-family:ui-monospace,monospace;letter-spacing:2px}
span.passed{color:#1a7f37}span.failed{color:#9a6700}span.error{color:#cf222e}
span.timeout{color:#bc4c00}span.pending{color:#8250df}span.none{color:#8c959f}
pre.log{white-space:pre-wrap;background:#f6f8fa;padding:8px;border-radius:6px;font-size:12px}
.charts{display:flex;flex-wrap:wrap;gap:24px}"""


def _y(rate: float) -> float:
    return TOP + (1 - rate) * (H - TOP - BOTTOM)


def _y_axis(width: int) -> list[str]:
    out = []
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        y = _y(tick)
        out.append(
            f'<line x1="{LEFT}" x2="{width - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eeeeee"/>'
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11">'
            f"{tick:.0%}</text>"
        )
    return out


def bar_chart(rows: list[VariantRank]) -> str:
    """One bar per variant (its success rate) with a whisker over its 95 % interval."""
    width = LEFT + RIGHT + SLOT * max(len(rows), 1)
    out = [
        f'<svg class="chart success" width="{width}" height="{H}" viewBox="0 0 {width} {H}" '
        'role="img" aria-label="success rate per variant with 95% intervals">',
        *_y_axis(width),
    ]
    base = _y(0.0)
    for i, r in enumerate(rows):
        x = LEFT + SLOT * i + SLOT / 2
        name = escape(r.variant)
        rate = r.success_rate
        lo, hi = r.interval
        shown = "—" if rate is None else f"{rate:.0%}"
        title = f"<title>{name}: {r.passed}/{r.attempts} passed, {shown}, 95% interval "
        title += f"{lo:.0%}–{hi:.0%}</title>"
        out.append(f'<g class="bar" data-variant="{name}">{title}')
        if rate is not None:
            top = _y(rate)
            out.append(
                f'<rect x="{x - 22:.1f}" y="{top:.1f}" width="44" height="{base - top:.1f}" '
                'fill="#54aeff"/>'
                f'<line class="interval" x1="{x:.1f}" x2="{x:.1f}" y1="{_y(hi):.1f}" '
                f'y2="{_y(lo):.1f}" stroke="#1f2328" stroke-width="1.5"/>'
                f'<line x1="{x - 8:.1f}" x2="{x + 8:.1f}" y1="{_y(hi):.1f}" y2="{_y(hi):.1f}" '
                'stroke="#1f2328"/>'
                f'<line x1="{x - 8:.1f}" x2="{x + 8:.1f}" y1="{_y(lo):.1f}" y2="{_y(lo):.1f}" '
                'stroke="#1f2328"/>'
            )
        out.append(
            f'<text x="{x:.1f}" y="{base + 16:.1f}" text-anchor="middle" font-size="12">{name}'
            f'</text><text x="{x:.1f}" y="{base + 32:.1f}" text-anchor="middle" '
            f'font-size="11" fill="#57606a">{shown}</text></g>'
        )
    out.append("</svg>")
    return "\n".join(out)


def scatter(rows: list[VariantRank]) -> str:
    """Each variant at (its cost, its success rate): the cheap and good sit top left."""
    width = SCATTER_W
    top_cost = max((r.cost_usd for r in rows), default=0.0) or 1.0
    plot = width - LEFT - RIGHT - 40

    def sx(cost: float) -> float:
        return LEFT + 20 + cost / top_cost * plot

    out = [
        f'<svg class="chart scatter" width="{width}" height="{H}" viewBox="0 0 {width} {H}" '
        'role="img" aria-label="cost against success rate per variant">',
        *_y_axis(width),
    ]
    for i in range(5):
        cost = top_cost * i / 4
        out.append(
            f'<text x="{sx(cost):.1f}" y="{_y(0.0) + 16:.1f}" text-anchor="middle" '
            f'font-size="11">${escape(fmt_num(round(cost, 4)))}</text>'
        )
    out.append(
        f'<text x="{LEFT + 20 + plot / 2:.0f}" y="{H - 12}" text-anchor="middle" '
        'font-size="12">cost (USD)</text>'
    )
    for r in rows:
        if r.success_rate is None:
            continue
        name = escape(r.variant)
        x, y = sx(r.cost_usd), _y(r.success_rate)
        out.append(
            f'<g class="point" data-variant="{name}"><title>{name}: ${r.cost_usd:.4f}, '
            f"{r.success_rate:.0%}</title>"
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="6" fill="#0969da"/>'
            f'<text x="{x + 9:.1f}" y="{y - 7:.1f}" font-size="12">{name}</text></g>'
        )
    out.append("</svg>")
    return "\n".join(out)


def _table(header: list[str], rows: list[list[str]], classes: list[str] | None = None) -> str:
    parts = ["<table><thead><tr>", *(f"<th>{escape(h)}</th>" for h in header), "</tr></thead>"]
    parts.append("<tbody>")
    for i, row in enumerate(rows):
        cls = f' class="{escape(classes[i])}"' if classes and classes[i] else ""
        parts.append(f"<tr{cls}>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>")
    parts.append("</tbody></table>")
    return "".join(parts)


def matrix(doc: ReportDoc) -> str:
    """The task × variant matrix, one coloured symbol per attempt."""
    variants = [v.id for v in doc.variants]
    parts = ['<table class="matrix"><thead><tr><th>task</th>']
    parts += [f"<th>{escape(v)}</th>" for v in variants]
    parts.append("</tr></thead><tbody>")
    for t in doc.tasks:
        parts.append(f"<tr><td>{escape(t.task)}</td>")
        for v in variants:
            spans = "".join(
                '<span class="none">·</span>'
                if r is None
                else f'<span class="{escape(r)}" title="{escape(r)}">{SYMBOLS.get(r, "?")}</span>'
                for r in t.results.get(v, [])
            )
            parts.append(f'<td class="cell">{spans}</td>')
        parts.append("</tr>")
    parts.append("</tbody></table>")
    return "".join(parts)


def failures(groups: list[ErrorGroup], done: int) -> str:
    if not done:
        return "<p>No attempt has finished yet.</p>"
    if not groups:
        return "<p>Every finished attempt passed (or awaits a manual mark).</p>"
    parts = []
    for g in groups:
        per_variant = ", ".join(f"{v} {n}" for v, n in g.variants.items())
        parts.append(
            f'<div class="cause"><h3>{g.count} × {escape(g.cause)}</h3>'
            f"<p>variants: {escape(per_variant)}<br>attempts: "
            f"{escape(', '.join(g.attempts[:12]))}{' …' if len(g.attempts) > 12 else ''}</p>"
        )
        if g.example_log:
            parts.append(
                f"<p>{escape(g.example)}, the start of its agent log:</p>"
                f'<pre class="log">{escape(chr(10).join(g.example_log))}</pre>'
            )
        parts.append("</div>")
    return "".join(parts)


def html_page(doc: ReportDoc, groups: list[ErrorGroup]) -> str:
    title = escape(f"Bakeoff report: {doc.run_id}")
    head, *reasons = winner_lines(doc)
    significant = " significant" if doc.winner.variant else ""
    first = ["first" if r.rank == 1 else "" for r in doc.ranking]
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{title}</title><style>{CSS}</style></head><body>",
        f"<h1>{title}</h1>",
        '<dl class="facts">',
        *(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in facts(doc)),
        "</dl>",
        f'<p class="winner{significant}">{escape(head)}</p>',
        "<ul>",
        *(f"<li>{escape(x)}</li>" for x in [*reasons, *notes(doc)]),
    ]
    if doc.comparison is not None:
        parts.append(f"<li>{escape(comparison_line(doc.comparison))}</li>")
    parts += [
        "</ul>",
        "<h2>Ranking</h2>",
        _table(MD_HEADER, ranking_rows(doc), first),
        '<div class="charts"><div><h2>Success rate (95 % interval)</h2>',
        bar_chart(doc.ranking),
        "</div><div><h2>Cost and success</h2>",
        scatter(doc.ranking),
        "</div></div>",
        "<h2>Tasks</h2>",
        matrix(doc),
        f"<p>{escape(LEGEND)}</p>",
        "<h2>Failures by cause</h2>",
        failures(groups, doc.done),
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"
