"""Plain-text rendering of statuses and results for people (the `--json` forms are the contract)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from typing import Any, TextIO

from shared.arms import ArmStatus
from shared.cli.lanes_text import LANES_HEADER, has_lanes, lane_cell, lanes_rows
from shared.display import (
    DASH,
    better_word,
    drift_line,
    fmt_clock,
    fmt_duration,
    fmt_num,
    fmt_pct,
    fmt_time,
    measure_sandbox_line,
    metric_line,
    one_line,
    progress_of,
    sandbox_line,
    truncate,
)
from shared.schema import TERMINAL_PHASES, ResultRecord
from shared.status import StatusReport, change_pct


def terminal_width(stream: TextIO) -> int:
    """$COLUMNS, else the terminal's width, else 120 (shutil would import its archivers)."""
    try:
        return int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        pass
    try:
        columns = os.get_terminal_size(stream.fileno()).columns
    except (OSError, ValueError, AttributeError):
        columns = 0
    return columns if columns > 0 else 120


def daemon_line(s: StatusReport) -> str:
    """The `daemon` row of the status: its liveness, pid and heartbeat age."""
    daemon, pid = s.daemon, s.pid
    age = fmt_duration(s.heartbeat_age)
    if daemon == "running":
        return f"running (pid {pid}, heartbeat {age} ago)"
    if daemon == "starting":
        return f"starting (pid {pid})" if pid else "starting"
    if daemon == "hung":
        return f"UNRESPONSIVE (pid {pid}, last heartbeat {age} ago)"
    if daemon == "dead":
        return f"DEAD (pid {pid}, last heartbeat {age} ago)" if pid else "DEAD"
    reason = s.termination_reason
    return f"finished ({s.phase}{', ' + reason if reason else ''})"


def alert(s: StatusReport) -> str | None:
    """What to do about a daemon that is not healthy, or None when there is nothing to do."""
    run_id, pid = s.run_id, s.pid
    if s.daemon == "dead":
        return f"daemon is dead — resume with: expd resume {run_id}"
    if s.daemon == "hung":
        return (
            f"daemon is unresponsive — see {s.run_dir}/daemon.log; "
            f"kill {pid}, then: expd resume {run_id}"
        )
    return None


def drift_text(s: StatusReport) -> str:
    return drift_line(s.drift, s.drift_at_experiment)


def status_text(s: StatusReport, now: float | None = None) -> str:
    now = time.time() if now is None else now
    phase = s.phase + (f" — {s.detail}" if s.detail else "")
    started = s.started_at
    updated = s.updated_at
    rows = [
        ("run", f"{s.run_id}"),
        ("daemon", daemon_line(s)),
        ("phase", f"{phase}   experiment {progress_of(s)}"),
        (
            "results",
            f"keeps {s.keeps} · discards {s.discards} · crashes {s.crashes}"
            f" · measurement failures {s.measurement_failures}",
        ),
        ("metric", metric_line(s)),
        ("cost", f"${s.cost_usd:.2f} · {s.tokens:,} tokens"),
        (
            "time",
            f"started {fmt_time(started)} ({fmt_duration(now - started if started else None)} ago)"
            f", updated {fmt_duration(now - updated if updated else None)} ago",
        ),
    ]
    if s.worktree:
        gone = "" if os.path.lexists(s.worktree) else "removed; "
        rows.append(("worktree", f"{s.worktree} ({gone}branch {s.branch})"))
    if getattr(s, "cleaned_at", None):
        rows.append(("cleaned", f"{fmt_time(s.cleaned_at)}: trees removed (expd clean)"))
    rows.append(("run dir", s.run_dir))
    if s.sandbox:
        rows.append(("sandbox", sandbox_line(s.sandbox)))
    if s.measure_sandbox:
        rows.append(("measured", measure_sandbox_line(s.measure_sandbox)))
    if s.drift:
        rows.append(("drift", drift_text(s)))
    if s.noise:
        rows.append(("noise", s.noise))
    if s.message and s.message not in (drift_text(s), s.noise):
        rows.append(("note", s.message))
    text = "\n".join(f"{key:<9} {value}" for key, value in rows)
    if s.lanes:
        ended = s.updated_at if s.phase in TERMINAL_PHASES else None
        text += "\n\n" + table(LANES_HEADER, lanes_rows(s.lanes, now, ended_at=ended))
    if s.arms:
        text += "\n\n" + arms_table(s.arms)
    warning = alert(s)
    return f"{text}\n\n{warning}" if warning else text


def table(header: list[str], rows: list[list[str]]) -> str:
    """Left-aligned columns two spaces apart, trailing spaces cut."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in [header, *rows]
    ]
    return "\n".join(line.rstrip() for line in lines)


ARMS_HEADER = ["ARM", "EXPERIMENTS", "KEEPS", "KEEP RATE", "IMPROVEMENT", "COST", "AGENT TIME"]
ARMS_HEADER += ["SHARE", "PAUSED"]


def arm_cells(a: ArmStatus) -> list[str]:
    """One arm's numbers, in `ARMS_HEADER` order (shared with `expd report`)."""
    return [
        a.id,
        str(a.experiments),
        str(a.keeps),
        DASH if a.keep_rate is None else f"{a.keep_rate:.0%}",
        fmt_pct(a.improvement_pct),
        f"${a.cost_usd:.2f}",
        fmt_duration(a.mean_agent_s),
        DASH if a.share is None else f"{a.share:.0%}",
        a.paused or DASH,
    ]


def arms_table(arms: list[ArmStatus]) -> str:
    """The run's arms: what each earned, and its share of the experiments so far."""
    return table(ARMS_HEADER, [arm_cells(a) for a in arms])


STATUS_HEADER = ["RUN", "DAEMON", "PHASE", "N/MAX", "BEST", "IMPROVEMENT", "REPO"]


def status_row(s: StatusReport) -> list[str]:
    """One run's line of `expd status --all`, in `STATUS_HEADER` order."""
    return [
        s.run_id,
        s.daemon,
        s.phase,
        progress_of(s),
        fmt_num(s.best),
        better_word(s.improvement_pct) or DASH,
        s.repo or DASH,
    ]


def status_table(statuses: Iterable[StatusReport]) -> str:
    """Several runs, one line each (`expd status --all`)."""
    return table(STATUS_HEADER, [status_row(s) for s in statuses])


def result_line(rec: ResultRecord, baseline: float | None) -> str:
    """One line per result, for progress output: `#3 keep  1234.0 (-12.3%)  description`."""
    metric = fmt_num(rec.metric)
    if rec.metric is not None and rec.status != "baseline":
        pct = change_pct(rec.metric, baseline)
        if pct is not None:
            metric += f" ({pct:+.1f}%)"
    text = rec.description or ("" if rec.status == "baseline" else rec.reason)
    if rec.status == "baseline" and text.strip().lower() == "baseline":
        text = ""
    number = f"#{rec.experiment}"
    line = f"{number:<4} {rec.status:<8} {metric}  {truncate(text, 80)}".rstrip()
    if rec.status in ("crash", "measurement_failure") and rec.reason and rec.description:
        line += f" — {truncate(rec.reason, 60)}"
    return line


def progress_line(s: StatusReport) -> str:
    detail = f" — {s.detail}" if s.detail else ""
    line = f"[{fmt_clock()}] {s.phase}{detail}  experiment {progress_of(s)}"
    if s.daemon not in ("running", "finished"):
        line += f"  (daemon {s.daemon})"
    return line


def results_table(records: list[ResultRecord], baseline: float | None, width: int = 120) -> str:
    if not records:
        return "no results yet"
    armed, laned = has_arms(records), has_lanes(records)
    head = ["#", "STATUS", *(["ARM"] if armed else []), *(["LANE"] if laned else []), "METRIC"]
    head.append("Δ%")
    rows = [
        [
            str(r.experiment),
            r.status,
            *([r.arm or DASH] if armed else []),
            *([lane_cell(r)] if laned else []),
            fmt_num(r.metric),
            DASH if r.status == "baseline" else fmt_pct(change_pct(r.metric, baseline)),
        ]
        for r in records
    ]
    fixed = [max(len(row[i]) for row in [head, *rows]) for i in range(len(head))]
    room = max(width - sum(fixed) - 2 * (len(head) + 1), 30)
    desc_w = max(room * 3 // 5, 15)
    reason_w = max(room - desc_w, 10)
    full = [
        [*row, truncate(r.description, desc_w), truncate(r.reason, reason_w)]
        for row, r in zip(rows, records, strict=True)
    ]
    return table([*head, "DESCRIPTION", "REASON"], full)


def has_arms(records: list[ResultRecord]) -> bool:
    """Whether the run has arms (its experiments say which arm made them)."""
    return any(r.arm is not None for r in records)


def _tsv_cell(value: Any) -> str:
    if value is None:
        return ""
    return one_line(str(value))


TSV_COLUMNS = [
    "experiment",
    "status",
    "metric",
    "delta_pct",
    "commit",
    "agent_s",
    "measure_s",
    "cost_usd",
    "tokens",
    "started_at",
    "description",
    "reason",
]


def results_tsv(records: list[ResultRecord], baseline: float | None) -> str:
    """The columns of `TSV_COLUMNS`, then `arm` when the run has arms and `lane` when it has
    lanes."""
    armed, laned = has_arms(records), has_lanes(records)
    lines = ["\t".join([*TSV_COLUMNS, *(["arm"] if armed else []), *(["lane"] if laned else [])])]
    for r in records:
        pct = change_pct(r.metric, baseline)
        cells = [
            r.experiment,
            r.status,
            r.metric,
            None if pct is None else round(pct, 4),
            r.commit,
            round(r.agent_s, 3),
            round(r.measure_s, 3),
            r.cost_usd,
            r.tokens,
            r.started_at,
            r.description,
            r.reason,
            *([r.arm] if armed else []),
            *([r.lane] if laned else []),
        ]
        lines.append("\t".join(_tsv_cell(c) for c in cells))
    return "\n".join(lines)


def summary_text(s: StatusReport, look: str) -> str:
    """The wrap-up after following a run to its end (demo, start --attach)."""
    reason = s.termination_reason or s.daemon
    done = s.keeps + s.discards + s.crashes + s.measurement_failures
    lines = [
        f"run {s.run_id} ended: {s.phase} ({reason})",
        f"  experiments  {done} (keeps {s.keeps}, discards {s.discards}, "
        f"crashes {s.crashes}, measurement failures {s.measurement_failures})",
        f"  {metric_line(s)}",
        f"  run dir      {s.run_dir}",
        f"  look:        {look}",
    ]
    if s.message:
        lines.insert(1, f"  note         {s.message}")
    return "\n".join(lines)


def calibration_text(c: dict[str, Any]) -> str:
    """`expd validate` for people: the spread, the noise, and what to set in [decide]."""
    lines = [f"{c['program']} at {c['commit'][:12]}: {c['metric']} over {len(c['samples'])} runs"]
    noise = c.get("noise") or {}
    if noise:
        lines += [
            f"  median    {fmt_num(noise['median'])}   (min {fmt_num(noise['min'])}, "
            f"max {fmt_num(noise['max'])}, MAD {fmt_num(noise['mad'])})",
            f"  CV        {noise['robust_cv']:.2%} robust (MAD) · {noise['cv']:.2%} plain",
            "  outliers  "
            + (", ".join(fmt_num(v) for v in noise["outliers"]) or "none")
            + " (beyond 3 MAD)",
        ]
    if c.get("per_run_s") is not None:
        lines.append(f"  per run   {c['per_run_s']:.2f}s (build {c['build_s']:.2f}s)")
    suggested = c.get("suggested") or {}
    if suggested:
        lines.append(
            f"  suggest   [decide] min_effect = {suggested['min_effect']:g}, "
            f"max_runs = {suggested['max_runs']}"
        )
    if c["usable"]:
        lines.append(f"{c['reason']}")
    return "\n".join(lines)
