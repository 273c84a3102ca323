"""`expd bakeoff report`: the report as one document (its JSON form) and its terminal and
Markdown renderings (the HTML page is `bakeoff_html.py`)."""

from __future__ import annotations

import time
from html import escape

import msgspec

from shared.bakeoffs.analysis import TaskRow, cell_text, task_matrix
from shared.bakeoffs.ranking import Comparison, Ranking, VariantRank, Winner, fmt_p
from shared.bakeoffs.schema import AttemptRecord, BakeoffManifest
from shared.bakeoffs.status import BakeoffStatus
from shared.cli.bakeoff_text import fmt_score, table
from shared.display import DASH, fmt_duration, fmt_time, sandbox_line

BLOCKS = " ▏▎▍▌▋▊▉█"
BAR = 10
"""Columns of a cost or duration bar."""
RESET = "\x1b[0m"
STYLE = {"bold": "1", "green": "32", "red": "31", "yellow": "33", "cyan": "36", "dim": "2"}


class SpecSummary(msgspec.Struct, kw_only=True):
    attempts: int
    concurrency: int
    timeout_s: float
    max_cost_usd: float | None
    tasks: int
    variants: int
    total: int


class VariantInfo(msgspec.Struct, kw_only=True):
    id: str
    kind: str
    model: str | None
    prompt_prefix: str


class ReportDoc(msgspec.Struct, kw_only=True):
    """`expd bakeoff report --format json`, and what every other format shows."""

    run_id: str
    name: str
    phase: str
    daemon: str
    termination_reason: str | None
    done: int
    total: int
    cost_usd: float
    pending_marks: int
    started_at: float | None
    sandbox: str | None
    spec: SpecSummary
    ranking: list[VariantRank]
    winner: Winner
    comparison: Comparison | None
    why_first: str
    tasks: list[TaskRow]
    variants: list[VariantInfo]
    generated_at: float


def build_doc(
    status: BakeoffStatus,
    manifest: BakeoffManifest,
    records: list[AttemptRecord],
    ranking: Ranking,
    now: float | None = None,
) -> ReportDoc:
    spec = manifest.spec
    return ReportDoc(
        run_id=status.run_id,
        name=status.name,
        phase=status.phase,
        daemon=status.daemon,
        termination_reason=status.termination_reason,
        done=status.done,
        total=status.total,
        cost_usd=status.cost_usd or sum(r.cost_usd for r in records),
        pending_marks=status.pending_marks,
        started_at=status.started_at,
        sandbox=status.sandbox,
        spec=SpecSummary(
            attempts=spec.attempts,
            concurrency=spec.concurrency,
            timeout_s=spec.timeout_s,
            max_cost_usd=spec.max_cost_usd,
            tasks=len(spec.tasks),
            variants=len(spec.variants),
            total=spec.total(),
        ),
        ranking=ranking.ranking,
        winner=ranking.winner,
        comparison=ranking.comparison,
        why_first=ranking.why_first,
        tasks=task_matrix(spec, records),
        variants=[
            VariantInfo(
                id=v.id,
                kind=str(v.agent.get("kind", "")),
                model=v.agent.get("model") if isinstance(v.agent.get("model"), str) else None,
                prompt_prefix=v.prompt_prefix,
            )
            for v in spec.variants
        ],
        generated_at=time.time() if now is None else now,
    )


# --------------------------------------------------------------------------- shared cells


def fmt_money(value: float | None, digits: int = 4) -> str:
    return DASH if value is None else f"${value:.{digits}f}"


def success_cell(row: VariantRank) -> str:
    """`60% [31–83%]`: the success rate and its 95 % interval."""
    if row.success_rate is None:
        return DASH
    lo, hi = row.interval
    return f"{row.success_rate:.0%} [{lo * 100:.0f}–{hi * 100:.0f}%]"


def state_line(doc: ReportDoc) -> str:
    reason = f" ({doc.termination_reason})" if doc.termination_reason else ""
    daemon = "" if doc.daemon == "finished" else f", daemon {doc.daemon}"
    return f"{doc.phase}{reason}{daemon}"


def notes(doc: ReportDoc) -> list[str]:
    """What qualifies the ranking: a partial matrix, attempts awaiting a manual mark."""
    out = []
    if doc.done < doc.total:
        out.append(
            f"partial: {doc.done} of {doc.total} attempts finished; the ranking counts finished "
            "attempts only"
        )
    if doc.pending_marks:
        out.append(
            f"{doc.pending_marks} manual criteria await a verdict "
            f"(expd bakeoff mark {doc.run_id} --task T --variant V pass|fail)"
        )
    return out


def winner_lines(doc: ReportDoc) -> list[str]:
    w = doc.winner
    head = f"winner: {w.variant} — {w.reason}" if w.variant else w.reason
    return [head] + ([f"order: {doc.why_first}"] if doc.why_first else [])


# --------------------------------------------------------------------------- terminal


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
TERM_HEADER += ["COST", "", "$/PASS", "AGENT", ""]


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


# --------------------------------------------------------------------------- markdown


def md_cell(text: str) -> str:
    """Pipes would split the cell; raw HTML in an id or a reason would render in most viewers."""
    return escape(text, quote=False).replace("|", "\\|") or " "


MD_HEADER = ["#", "variant", "passed", "success (95 % interval)", "score", "errors"]
MD_HEADER += ["timeouts", "pending", "cost", "$/success", "mean agent time"]


def md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(md_cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(md_cell(c) for c in row) + " |" for row in rows]
    return out


def facts(doc: ReportDoc) -> list[tuple[str, str]]:
    """The report's header as (label, value) pairs, shared by Markdown and HTML."""
    spec = doc.spec
    budget = f", budget ${spec.max_cost_usd:g}" if spec.max_cost_usd is not None else ""
    out = [
        ("Bakeoff", doc.name),
        ("Run", doc.run_id),
        ("State", state_line(doc)),
        (
            "Matrix",
            f"{spec.tasks} tasks × {spec.variants} variants × {spec.attempts} attempt(s) = "
            f"{spec.total}; {doc.done} finished",
        ),
        ("Cost", f"${doc.cost_usd:.4f}{budget}"),
        ("Started", fmt_time(doc.started_at)),
    ]
    if doc.sandbox:
        out.append(("Sandbox", sandbox_line(doc.sandbox)))
    return out


def ranking_rows(doc: ReportDoc) -> list[list[str]]:
    return [
        [
            str(r.rank),
            r.variant,
            f"{r.passed}/{r.attempts}",
            success_cell(r),
            fmt_score(r.score),
            str(r.errors),
            str(r.timeouts),
            str(r.pending),
            fmt_money(r.cost_usd),
            fmt_money(r.cost_per_success),
            fmt_duration(r.duration_s),
        ]
        for r in doc.ranking
    ]


def comparison_line(c: Comparison) -> str:
    more = "" if c.more_tasks is None else f", about {c.more_tasks} more tasks to settle"
    return (
        f"{c.test} test, {c.a} vs {c.b} over {c.tasks} tasks both attempted: "
        f"{c.wins_a} wins, {c.wins_b} losses, {c.ties} ties, p = {fmt_p(c.p_value)} "
        f"(α = {c.alpha:g}){more}"
    )


LEGEND = "✓ passed · ✗ failed · E error · T timeout · ? awaits a manual mark · · not finished"


def matrix_rows(doc: ReportDoc) -> tuple[list[str], list[list[str]]]:
    variants = [v.id for v in doc.variants]
    return ["task", *variants], [
        [t.task, *(cell_text(t.results.get(v, [])) for v in variants)] for t in doc.tasks
    ]


def markdown(doc: ReportDoc) -> str:
    lines = [f"# Bakeoff report: {md_cell(doc.run_id)}", ""]
    lines += [f"- **{k}**: {md_cell(v)}" for k, v in facts(doc)]
    lines += ["", "## Ranking", "", *md_table(MD_HEADER, ranking_rows(doc)), ""]
    lines += ["## Winner", ""]
    head, *rest = winner_lines(doc)
    lines.append(f"**{md_cell(head)}**")
    lines += ["", *(f"- {md_cell(x)}" for x in [*rest, *notes(doc)])]
    if doc.comparison is not None:
        lines.append(f"- {md_cell(comparison_line(doc.comparison))}")
    header, rows = matrix_rows(doc)
    lines += ["", "## Tasks", "", *md_table(header, rows), "", LEGEND]
    return "\n".join(lines) + "\n"
