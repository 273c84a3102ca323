"""`expd bakeoff report --format term`: the ranking as a table with cost and duration bars, the
winner line and its reasons; colour only when asked (a terminal without NO_COLOR)."""

from __future__ import annotations

from shared.bakeoffs.ranking import VariantRank
from shared.cli.bakeoff_report import (
    ReportDoc,
    fmt_money,
    notes,
    state_line,
    success_cell,
    winner_lines,
)
from shared.cli.bakeoff_text import fmt_score, table
from shared.display import DASH, fmt_duration

BLOCKS = " ▏▎▍▌▋▊▉█"
BAR = 10
"""Columns of a cost or duration bar."""
RESET = "\x1b[0m"
STYLE = {"bold": "1", "green": "32", "red": "31", "yellow": "33", "cyan": "36", "dim": "2"}


def bar(value: float | None, top: float, width: int = BAR) -> str:
    """A horizontal bar of unicode eighth blocks, `value / top` of `width` columns."""
    if value is None or top <= 0:
        return ""
    eighths = round(max(0.0, min(value / top, 1.0)) * width * 8)
    full, part = divmod(eighths, 8)
    return "█" * full + (BLOCKS[part] if part else "")


def paint(text: str, style: str | None, color: bool) -> str:
    if not color or not style or not text:
        return text
    codes = ";".join(STYLE[s] for s in style.split())
    return f"\x1b[{codes}m{text}{RESET}"


TERM_HEADER = ["#", "VARIANT", "PASSED", "SUCCESS (95%)", "SCORE", "ERR"]
TERM_HEADER += ["COST", "", "$/PASS", "MEAN TIME", ""]


def term_rows(doc: ReportDoc) -> list[list[str]]:
    top_cost = max((r.cost_usd for r in doc.ranking), default=0.0)
    top_time = max((r.duration_s or 0.0 for r in doc.ranking), default=0.0)
    return [
        [
            str(r.rank),
            r.variant,
            f"{r.passed}/{r.attempts}",
            success_cell(r),
            fmt_score(r.score),
            str(r.errors + r.timeouts),
            fmt_money(r.cost_usd, 2),
            bar(r.cost_usd, top_cost),
            fmt_money(r.cost_per_success),
            fmt_duration(r.duration_s),
            bar(r.duration_s, top_time),
        ]
        for r in doc.ranking
    ]


def _styles(doc: ReportDoc, row: VariantRank) -> list[str | None]:
    won = row.variant == doc.winner.variant
    err = "red" if row.errors + row.timeouts else None
    name = "bold green" if won else "bold"
    return [None, name, None, None, None, err, None, "yellow", None, None, "cyan"]


def per_pass(cell: str) -> str:
    return "no pass" if cell == DASH else f"{cell}/pass"


def term_report(doc: ReportDoc, *, compact: bool = False, color: bool = False) -> str:
    """The ranking as a table with cost and duration bars, the winner line and its reasons;
    `compact`: one line per variant. Colour only when `color` (a terminal without NO_COLOR)."""
    rows = term_rows(doc)
    right = frozenset({0, 2, 4, 5, 6, 8, 9})
    if compact:
        cells = [
            [r[0] + ".", r[1], r[2], r[3], "score " + r[4], r[6], per_pass(r[8]), r[9]]
            for r in rows
        ]
        lines = table(["", "", "", "", "", "", "", ""], cells, right=frozenset({0, 2, 6}))[1:]
        lines = [
            paint(line, "bold green" if row.variant == doc.winner.variant else None, color)
            for line, row in zip(lines, doc.ranking, strict=True)
        ]
    else:
        lines = [
            f"bakeoff {doc.run_id} · {state_line(doc)} · {doc.done}/{doc.total} attempts · "
            f"${doc.cost_usd:.2f}",
            "",
        ]
        plain = table(TERM_HEADER, rows, right=right)
        lines.append(paint(plain[0], "bold", color))
        widths = [max(len(r[i]) for r in [TERM_HEADER, *rows]) for i in range(len(TERM_HEADER))]
        for row, cells in zip(doc.ranking, rows, strict=True):
            styled = [
                " " * (w - len(c)) + paint(c, s, color)
                if i in right
                else paint(c, s, color) + " " * (w - len(c))
                for i, (c, w, s) in enumerate(zip(cells, widths, _styles(doc, row), strict=True))
            ]
            lines.append("  ".join(styled).rstrip())
        lines.append("")
    won = doc.winner.variant is not None
    head, *rest = winner_lines(doc)
    lines.append(paint(head, "green" if won else "yellow", color))
    if not compact:
        lines += rest
        lines += [paint(n, "dim", color) for n in notes(doc)]
    return "\n".join(lines) + "\n"
