"""`expd bakeoff report`: the report as one document (its JSON form), the cells every format
shares, and the Markdown (the terminal's is `bakeoff_term.py`, the HTML page `bakeoff_html.py`)."""

from __future__ import annotations

import time
from html import escape

import msgspec

from shared.bakeoffs.analysis import TaskRow, cell_text, task_matrix
from shared.bakeoffs.ranking import Comparison, Ranking, VariantRank, Winner
from shared.bakeoffs.schema import AttemptRecord, BakeoffManifest
from shared.bakeoffs.stats import fmt_p
from shared.bakeoffs.status import BakeoffStatus
from shared.cli.bakeoff_text import fmt_score
from shared.display import DASH, fmt_duration, fmt_time, sandbox_line


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
        out.append(("Sandbox", sandbox_line(doc.sandbox, bakeoff=True)))
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
