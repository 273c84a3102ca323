"""Plain text of bakeoff runs for people: `expd status` (a header and the per-variant progress
table, the same table the TUI shows), their lines in `status --all` and `expd list`, and
`status --watch`, which redraws the table until the run ends. The `--json` forms are the contract.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO

from shared.bakeoffs.paths import BakeoffRunPaths
from shared.bakeoffs.progress import VariantProgress
from shared.bakeoffs.status import BakeoffStatus, build_bakeoff_status
from shared.cli import render
from shared.display import (
    DASH,
    PROGRESS_COLUMNS,
    fmt_clock,
    fmt_duration,
    fmt_time,
    one_line,
    progress_cells,
    sandbox_line,
)
from shared.housekeeping import fmt_bytes
from shared.listing import BakeoffListing, UnreadableRun
from shared.runs import RunRef
from shared.status import ACTIVE

RUNNING_SHOWN = 4
"""Attempts in flight named in the status; the rest are counted."""

NUMERIC = frozenset(range(1, len(PROGRESS_COLUMNS)))


def progress_table(rows: list[VariantProgress]) -> str:
    """The per-variant table: numbers right-aligned under their headers."""
    if not rows:
        return "no variants"
    header = [c.upper() for c in PROGRESS_COLUMNS]
    cells = [list(progress_cells(r)) for r in rows]
    widths = [max(len(row[i]) for row in [header, *cells]) for i in range(len(header))]
    lines = []
    for row in [header, *cells]:
        parts = [
            c.rjust(w) if i in NUMERIC else c.ljust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(parts).rstrip())
    return "\n".join(lines)


def alert(s: BakeoffStatus) -> str | None:
    """What to do about a daemon that is not healthy, or None when there is nothing to do."""
    if s.daemon == "dead":
        return f"daemon is dead — resume with: expd bakeoff resume {s.run_id}"
    if s.daemon == "hung":
        return (
            f"daemon is unresponsive — see {s.run_dir}/daemon.log; "
            f"kill {s.pid}, then: expd bakeoff resume {s.run_id}"
        )
    return None


def attempts_line(s: BakeoffStatus) -> str:
    running = f", {len(s.running)} running" if s.running else ""
    return f"attempts {s.done}/{s.total}{running}"


def results_line(s: BakeoffStatus) -> str:
    words = [
        f"passed {s.passed}",
        f"failed {s.failed}",
        f"errors {s.errors}",
        f"timeouts {s.timeouts}",
    ]
    if s.cancelled:
        words.append(f"cancelled {s.cancelled}")
    if s.pending_marks:
        words.append(f"{s.pending_marks} manual criteria to mark (expd bakeoff mark)")
    return " · ".join(words)


def running_line(s: BakeoffStatus, now: float) -> str:
    shown = [
        f"{a.key} ({a.stage or 'starting'} {fmt_duration(now - a.started_at)})"
        for a in s.running[:RUNNING_SHOWN]
    ]
    more = len(s.running) - RUNNING_SHOWN
    return ", ".join(shown) + (f" and {more} more" if more > 0 else "")


def status_text(s: BakeoffStatus, now: float | None = None) -> str:
    """`expd status` of a bakeoff run: the header rows, then the per-variant progress table."""
    now = time.time() if now is None else now
    phase = s.phase + (f" — {s.detail}" if s.detail else "")
    budget = f" of ${s.max_cost_usd:.2f}" if s.max_cost_usd is not None else ""
    started, updated = s.started_at, s.updated_at
    eta = f", ETA ~{fmt_duration(s.eta_s)}" if s.eta_s and s.daemon in ACTIVE else ""
    rows = [
        ("run", f"{s.run_id} (bakeoff {s.name})"),
        ("daemon", render.daemon_line(s)),  # type: ignore[arg-type]  # the fields it reads match
        ("phase", f"{phase}   {attempts_line(s)}"),
        ("results", results_line(s)),
        ("cost", f"${s.cost_usd:.2f}{budget} · {s.tokens:,} tokens"),
        (
            "time",
            f"started {fmt_time(started)} ({fmt_duration(now - started if started else None)} ago)"
            f", updated {fmt_duration(now - updated if updated else None)} ago{eta}",
        ),
    ]
    if s.running:
        rows.append(("running", running_line(s, now)))
    rows.append(("run dir", s.run_dir))
    if s.sandbox:
        rows.append(("sandbox", sandbox_line(s.sandbox, bakeoff=True)))
    if s.message:
        rows.append(("note", one_line(s.message)))
    text = "\n".join(f"{key:<9} {value}" for key, value in rows)
    text += "\n\n" + progress_table(s.variants)
    warning = alert(s)
    return f"{text}\n\n{warning}" if warning else text


def status_row(s: BakeoffStatus) -> list[str]:
    """A bakeoff run's line of `expd status --all` (in `render.STATUS_HEADER` order)."""
    return [
        s.run_id,
        s.daemon,
        s.phase,
        f"{s.done}/{s.total}",
        f"{s.passed} passed",
        DASH,
        s.repo or DASH,
    ]


def status_table(statuses: list[object]) -> str:
    """Program and bakeoff runs together, one line each."""
    rows = [
        status_row(s) if isinstance(s, BakeoffStatus) else render.status_row(s)  # type: ignore[arg-type]
        for s in statuses
    ]
    return render.table(render.STATUS_HEADER, rows)


def listing_text(bakeoffs: list[BakeoffListing]) -> str:
    """`expd list`'s bakeoffs: each one's matrix, then its runs oldest first."""
    lines = []
    for b in bakeoffs:
        head = f"bakeoff {b.bakeoff}"
        if b.error:
            head += f"  (invalid: {b.error})"
        else:
            variants = b.variants or []
            each = f"{b.attempts} attempt{'s' if b.attempts != 1 else ''} each"
            head += (
                f"  {b.tasks} task{'s' if b.tasks != 1 else ''} × {len(variants)} "
                f"variant{'s' if len(variants) != 1 else ''} ({', '.join(variants)}) · {each}"
            )
        lines.append(head)
        if not b.runs:
            lines.append(f"  no runs — start one with: expd bakeoff start {b.bakeoff}")
        for s in b.runs:
            if isinstance(s, UnreadableRun):
                lines.append(f"  {s.run_id}  unreadable: {s.error}")
                continue
            done = f"{s.done}/{s.total}"
            lines.append(
                f"  {s.run_id}  {s.phase:<13} {s.daemon:<9} {done:>7}  passed {s.passed}"
                + (f" · errors {s.errors + s.timeouts}" if s.errors + s.timeouts else "")
                + ("" if s.disk_bytes is None else f"  {fmt_bytes(s.disk_bytes)}")
                + ("  cleaned" if s.cleaned_at else "")
            )
    return "\n".join(lines)


# --------------------------------------------------------------------------- status --watch

CLEAR = "\x1b[H\x1b[2J"


def read_status(ref: RunRef) -> BakeoffStatus:
    return build_bakeoff_status(BakeoffRunPaths(ref.paths.dir), run_id=ref.run_id)


def watch(
    ref: RunRef,
    out: TextIO,
    *,
    interval: float = 1.0,
    redraw: bool | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> BakeoffStatus:
    """Show the status and progress table until the daemon is gone; the final status.

    On a terminal the screen is redrawn every `interval`; elsewhere (a pipe, a log) the table is
    printed again, under a time-stamped progress line, whenever an attempt starts or ends.
    """
    redraw = out.isatty() if redraw is None else redraw
    last: tuple[object, ...] | None = None
    while True:
        s = read_status(ref)
        gone = s.daemon in ("finished", "dead")
        if redraw:
            footer = (
                ""
                if gone
                else f"\n\n[{fmt_clock()}] refreshing every {interval:g}s — Ctrl-C to quit"
            )
            out.write(f"{CLEAR}{status_text(s)}{footer}\n")
        else:
            key = (s.phase, s.daemon, s.done, s.cancelled, len(s.running), s.pending_marks)
            if last is None:
                out.write(status_text(s) + "\n")
            elif key != last:
                out.write(f"\n[{fmt_clock()}] {s.phase}  {attempts_line(s)}\n")
                out.write(progress_table(s.variants) + "\n")
                if gone and (warning := alert(s)):
                    out.write(warning + "\n")
            last = key
        out.flush()
        if gone:
            return s
        sleep(interval)
