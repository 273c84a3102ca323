"""`expd report`: one run's summary, chart and results as Markdown or a self-contained HTML page.

Read-only and stdlib + msgspec like the other read commands: it reads run.json/state.json through
`build_status`, results.jsonl as complete lines, and `summary.md` if `expd finalize` wrote one.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field
from html import escape
from pathlib import Path

from msgspec import UnsetType

from shared import evidence
from shared.cli.darwin_text import generation_lines
from shared.cli.follow import decode_results
from shared.cli.lanes_text import lane_cell
from shared.cli.render import ARMS_HEADER, arm_cells, has_arms
from shared.cli.report_svg import Point, chart
from shared.darwin import Generation
from shared.display import (
    DASH,
    fmt_duration,
    fmt_num,
    fmt_pct,
    fmt_time,
    headline_words,
    measure_sandbox_line,
    one_line,
    sandbox_line,
)
from shared.errors import ContractError, UserError
from shared.evidence import Evidence, RunCounts, SequentialEvidence, value_or
from shared.generations import generations_dir, read_generations
from shared.runs import RunRef, resolve
from shared.schema import TERMINAL_PHASES, ResultRecord
from shared.status import StatusReport, build_status, change_pct
from shared.tail import read_complete_lines

SPARK = "▁▂▃▄▅▆▇█"
HEADER = ["#", "status", "metric", "Δ% vs baseline", "effect interval", "effect", "runs", "agent_s"]
HEADER += ["measure_s", "cost $", "description", "reason"]


@dataclass
class Report:
    """What both formats show: the status object, the records, and the optional summary.md."""

    status: StatusReport
    records: list[ResultRecord]
    skipped: int
    summary_md: str | None
    elapsed_s: float | None
    generations: list[Generation] = field(default_factory=list)
    """The program's generations (`expd darwin --apply`), oldest first."""
    generation_problems: list[str] = field(default_factory=list)


def header(rep: Report) -> list[str]:
    """The results' columns: `arm` after `status` when the run has arms, then `lane` when it has
    lanes."""
    extra = ["arm"] if has_arms(rep.records) else []
    extra += ["lane"] if has_lanes(rep) else []
    return [*HEADER[:2], *extra, *HEADER[2:]]


def has_lanes(rep: Report) -> bool:
    """Whether the run has lanes: its state lists them, or its experiments name one."""
    return bool(rep.status.lanes) or any(r.lane is not None for r in rep.records)


def load(ref: RunRef, now: float | None = None) -> Report:
    now = time.time() if now is None else now
    status = build_status(ref.paths, run_id=ref.run_id, now=now)
    records, skipped = decode_results(read_complete_lines(ref.paths.results))
    try:
        summary = ref.paths.summary.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        summary = None
    except OSError as exc:
        raise ContractError(f"{ref.paths.summary}: cannot read ({exc.strerror})") from None
    started = status.started_at
    end = status.updated_at if status.phase in TERMINAL_PHASES else now
    elapsed = end - started if started and end else None
    program_dir = ref.paths.dir.parent.parent  # .expd/programs/<name>/runs/<stamp>
    generations, problems = read_generations(generations_dir(program_dir))
    return Report(status, records, skipped, summary, elapsed, generations, problems)


def baseline_of(rep: Report) -> float | None:
    first = next((r.metric for r in rep.records if r.status == "baseline"), None)
    return first if first is not None else rep.status.baseline


def points(rep: Report) -> list[Point]:
    """Chart points; the interval is the spread (min–max) of the experiment's samples."""
    out = []
    for r in rep.records:
        samples = [s for s in r.samples if s == s] or ([r.metric] if r.metric is not None else [])
        low, high = (min(samples), max(samples)) if samples else (None, None)
        out.append(Point(r.experiment, r.status, r.metric, low, high))
    return out


def _effect(value: float | None, relative: bool) -> str:
    if not isinstance(value, int | float):
        return DASH
    return fmt_pct(value * 100) if relative else f"{value:+.6g}"


def evidence_cells(rec: ResultRecord) -> tuple[str, str, str]:
    """(interval, effect, runs): effects are positive when better, relative unless stated."""
    ev = evidence.of(rec)
    shown = str(len(rec.samples)) if rec.samples else DASH
    if not isinstance(ev, Evidence):
        return DASH, DASH, shown
    relative = ev.relative is not False
    span = DASH
    if isinstance(ev, SequentialEvidence) and not isinstance(ev.interval, UnsetType):
        span = f"{_effect(ev.interval.low, relative)} … {_effect(ev.interval.high, relative)}"
    if isinstance(ev.runs, RunCounts):
        shown = f"{ev.runs.candidate} vs {ev.runs.incumbent}"
    elif isinstance(ev.runs, int):
        shown = str(ev.runs)
    return span, _effect(value_or(ev.effect, None), relative), shown


def rows(rep: Report) -> list[list[str]]:
    base = baseline_of(rep)
    armed, laned = has_arms(rep.records), has_lanes(rep)
    out = []
    for r in rep.records:
        delta = DASH if r.status == "baseline" else fmt_pct(change_pct(r.metric, base))
        span, effect, runs = evidence_cells(r)
        arm = [r.arm or DASH] if armed else []
        arm += [lane_cell(r)] if laned else []
        out.append(
            [
                *(str(r.experiment), r.status, *arm, fmt_num(r.metric), delta, span, effect, runs),
                *(f"{r.agent_s:.2f}", f"{r.measure_s:.2f}", f"{r.cost_usd:.4f}"),
                *(one_line(r.description), one_line(r.reason)),
            ]
        )
    return out


def facts(rep: Report) -> list[tuple[str, str]]:
    """The summary as (label, value) pairs, shared by both formats."""
    s = rep.status
    metric = s.metric or "metric"
    imp = s.improvement_pct
    better = headline_words(imp, s.improvement_ci, s.best_runs) or DASH
    done = sum(1 for r in rep.records if r.status != "baseline")
    at = f" (experiment {s.best_experiment})" if s.best_experiment is not None else ""
    sandbox = [("Sandbox", sandbox_line(s.sandbox))] if s.sandbox else []
    if s.measure_sandbox:
        sandbox.append(("Measurement", measure_sandbox_line(s.measure_sandbox)))
    return [
        ("Program", s.program),
        ("Run", s.run_id),
        ("Metric", f"{metric} ({s.direction} is better)"),
        ("Baseline → best", f"{fmt_num(s.baseline)} → {fmt_num(s.best)}{at}"),
        ("Improvement", better),
        ("Experiments", f"{done} of max {s.max_experiments} (plus the baseline)"),
        (
            "Outcomes",
            f"{s.keeps} keeps, {s.discards} discards, {s.crashes} crashes, "
            f"{s.measurement_failures} measurement failures",
        ),
        ("State", f"{s.phase} ({s.daemon})"),
        ("Termination", s.termination_reason or DASH),
        ("Cost", f"${s.cost_usd:.4f}, {s.tokens} tokens"),
        ("Started", fmt_time(s.started_at)),
        ("Elapsed", fmt_duration(rep.elapsed_s)),
        *sandbox,
    ]


def sparkline(values: list[float | None]) -> str:
    nums = [v for v in values if v is not None]
    if not nums:
        return ""
    lo, hi = min(nums), max(nums)
    span = (hi - lo) or 1.0
    return "".join(
        "·" if v is None else SPARK[round((v - lo) / span * (len(SPARK) - 1))] for v in values
    )


def _md_cell(text: str) -> str:
    """Pipes would split the cell; raw HTML in a description would render in most viewers."""
    return escape(text, quote=False).replace("|", "\\|") or " "


def markdown(rep: Report) -> str:
    s = rep.status
    lines = [f"# expd report: {s.run_id}", ""]
    lines += [f"- **{k}**: {v}" for k, v in facts(rep)]
    if rep.summary_md is not None:
        lines += ["", "## Summary", "", rep.summary_md.strip()]
    metrics = [r.metric for r in rep.records]
    lines += ["", f"## {s.metric or 'metric'} over experiments", ""]
    if any(m is not None for m in metrics):
        lines += [
            "```",
            f"{sparkline(metrics)}   (experiments {rep.records[0].experiment}–"
            f"{rep.records[-1].experiment}; · no metric)",
            "kept: " + " ".join(str(r.experiment) for r in rep.records if r.status == "keep"),
            "```",
        ]
    else:
        lines.append("No measured experiments yet.")
    lines += _md_arms(rep)
    lines += ["", "## Results", "", *_md_table(header(rep), rows(rep))]
    if rep.skipped:
        lines += ["", f"({rep.skipped} unreadable result line(s) skipped)"]
    return "\n".join(lines) + "\n"


def _md_table(head: list[str], body: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return lines + ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in body]


def _md_arms(rep: Report) -> list[str]:
    """The per-arm table and the program's generations (nothing for a program without them)."""
    lines: list[str] = []
    arms = rep.status.arms
    if arms:
        table = _md_table([h.lower() for h in ARMS_HEADER], [arm_cells(a) for a in arms])
        lines += ["", "## Arms", "", *table]
    if rep.generations or rep.generation_problems:
        lines += ["", "## Generations", ""]
        for g in rep.generations:
            head, rest = generation_lines(g)
            lines.append(f"- {_md_cell(head)}  ")
            lines.append(f"  {_md_cell(rest)}")
        lines += [f"- unreadable: {_md_cell(p)}" for p in rep.generation_problems]
    return lines


CSS = """body{font-family:system-ui,sans-serif;margin:24px;color:#1f2328;max-width:1200px}
table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #d0d7de;padding:3px 6px;
text-align:left;vertical-align:top}th{background:#f6f8fa}tr.keep td{background:#dafbe1}
tr.crash td,tr.measurement_failure td{background:#ffebe9}dl.facts{display:grid;
grid-template-columns:max-content auto;gap:2px 16px}dt{font-weight:600}dd{margin:0}
pre.summary{white-space:pre-wrap;background:#f6f8fa;padding:12px;border-radius:6px}
.legend span{margin-right:14px}"""


def html_doc(rep: Report) -> str:
    s = rep.status
    title = escape(f"expd report: {s.run_id}")
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{title}</title><style>{CSS}</style></head><body>",
        f"<h1>{title}</h1>",
        '<dl class="facts">',
    ]
    parts += [f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in facts(rep)]
    parts.append("</dl>")
    if rep.summary_md is not None:
        parts.append(f'<h2>Summary</h2><pre class="summary">{escape(rep.summary_md)}</pre>')
    parts.append(f"<h2>{escape(s.metric or 'metric')} over experiments</h2>")
    parts.append(chart(points(rep), baseline=baseline_of(rep), best=s.best, metric=s.metric or ""))
    parts.append(
        '<p class="legend"><span>● filled green: kept</span><span>○ grey: discarded</span>'
        "<span>× red: no metric</span><span>vertical bar: min–max of the samples</span>"
        "<span>dashed: baseline and best</span></p>"
    )
    parts += _html_arms(rep)
    parts.append('<h2>Results</h2><table class="results"><thead><tr>')
    parts += [f"<th>{escape(h)}</th>" for h in header(rep)]
    parts.append("</tr></thead><tbody>")
    for rec, row in zip(rep.records, rows(rep), strict=True):
        cells = "".join(f"<td>{escape(c)}</td>" for c in row)
        parts.append(f'<tr class="{escape(rec.status)}">{cells}</tr>')
    parts.append("</tbody></table>")
    if rep.skipped:
        parts.append(f"<p>{rep.skipped} unreadable result line(s) skipped.</p>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _html_arms(rep: Report) -> list[str]:
    parts: list[str] = []
    if rep.status.arms:
        parts.append('<h2>Arms</h2><table class="arms"><thead><tr>')
        parts += [f"<th>{escape(h.lower())}</th>" for h in ARMS_HEADER]
        parts.append("</tr></thead><tbody>")
        for a in rep.status.arms:
            parts.append("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in arm_cells(a)) + "</tr>")
        parts.append("</tbody></table>")
    if rep.generations or rep.generation_problems:
        parts.append('<h2>Generations</h2><ul class="generations">')
        for g in rep.generations:
            head, rest = generation_lines(g)
            parts.append(f"<li>{escape(head)}<br>{escape(rest)}</li>")
        parts += [f"<li>unreadable: {escape(p)}</li>" for p in rep.generation_problems]
        parts.append("</ul>")
    return parts


def render(rep: Report, fmt: str) -> str:
    return html_doc(rep) if fmt == "html" else markdown(rep)


def cmd_report(args: argparse.Namespace) -> int:
    """`expd report`: write the report to stdout or `--output`."""
    ref = resolve(args.run, kind="program")
    text = render(load(ref), args.format)
    if args.output is None:
        sys.stdout.write(text)
        return 0
    out = Path(args.output)
    try:
        out.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UserError(f"cannot write the report to {out}: {exc.strerror or exc}") from None
    print(f"expd: wrote {out}", file=sys.stderr)
    return 0
