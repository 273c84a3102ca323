"""What the home screen lists: programs, bakeoffs and their runs as table rows.

Pure functions of the listing (`tui.reads.ListingSource` reads it), so the row layout can be
tested without an app.
"""

from __future__ import annotations

from rich.text import Text

from shared import display
from shared.bakeoffs.status import BakeoffStatus
from shared.listing import BakeoffListing, ProgramListing, UnreadableRun
from shared.status import StatusReport

COLUMNS = ("run", "phase", "daemon", "n/max", "best", "improvement")
EMPTY = (
    "no programs yet: expd init NAME --measure CMD --metric F --direction lower|higher\n"
    "then come back here (or run expd start NAME)"
)
DAEMON_STYLE = {"running": "green", "starting": "cyan", "hung": "bold yellow", "dead": "bold red"}
BAKEOFF = "bakeoff:"
BAKEOFF_RUN = "bakeoff-run:"
"""Key prefixes of a bakeoff's row and of its runs' rows (a program's runs are keyed by run id)."""


def is_header(key: str) -> bool:
    """A program's or a bakeoff's own row (not a run)."""
    return key.startswith(("program:", BAKEOFF))


def rows_of(programs: list[ProgramListing]) -> list[tuple[str, tuple[str, ...]]]:
    """(row key, cells) in display order: each program, then its runs newest first."""
    rows: list[tuple[str, tuple[str, ...]]] = []
    for p in programs:
        count = len(p.runs)
        runs = f"{count} run" if count == 1 else f"{count} runs"
        rows.append((f"program:{p.program}", (p.program, "", "", runs, "", "")))
        for s in reversed(p.runs):
            stamp = "  " + s.run_id.partition("/")[2]
            if isinstance(s, UnreadableRun):
                rows.append((s.run_id, (stamp, "unreadable", "", "", "", "")))
                continue
            improvement = display.fmt_pct(s.improvement_pct)
            phase = f"{s.phase} · cleaned" if s.cleaned_at else s.phase
            cells = (stamp, phase, s.daemon, display.progress_of(s))
            rows.append((s.run_id, (*cells, display.fmt_num(s.best), improvement)))
    return rows


def program_detail(
    key: str,
    programs: dict[str, ProgramListing],
    statuses: dict[str, StatusReport | UnreadableRun],
) -> str:
    """The line under the table for a program's row or one of its runs' rows."""
    if key.startswith("program:"):
        p = programs.get(key.removeprefix("program:"))
        if p is None:
            return ""
        if p.error:
            return f"{p.program}: invalid program: {p.error}"
        more = "" if p.runs else " · no runs yet"
        keys = "n: new run · e: queue a run · d: delete"
        return f"{p.program}: {p.metric} ({p.direction} is better) · agent {p.agent}{more} · {keys}"
    s = statuses.get(key)
    if not isinstance(s, StatusReport):
        return f"{key}: unreadable: {s.error if s is not None else ''}"
    hint = "enter: open · r: resume" if s.daemon == "dead" else "enter: open"
    if s.daemon in ("dead", "finished"):
        hint += " · d: delete"
    words = [key, f"{s.phase} ({s.daemon})", display.metric_line(s)]
    if s.cleaned_at:
        words.append("cleaned (trees and discarded experiments reclaimed)")
    if s.message:
        words.append(s.message)
    return " · ".join(w for w in [*words, hint] if w)


def bakeoff_rows(bakeoffs: list[BakeoffListing]) -> list[tuple[str, tuple[str, ...]]]:
    """(row key, cells) after the programs: each bakeoff, then its runs newest first; `n/max`
    is attempts done of the matrix, `best` the attempts passed."""
    rows: list[tuple[str, tuple[str, ...]]] = []
    for b in bakeoffs:
        count = len(b.runs)
        runs = f"{count} run" if count == 1 else f"{count} runs"
        rows.append((BAKEOFF + b.bakeoff, (f"{b.bakeoff} (bakeoff)", "", "", runs, "", "")))
        for s in reversed(b.runs):
            stamp = "  " + s.run_id.partition("/")[2]
            key = BAKEOFF_RUN + s.run_id
            if isinstance(s, UnreadableRun):
                rows.append((key, (stamp, "unreadable", "", "", "", "")))
                continue
            phase = f"{s.phase} · cleaned" if s.cleaned_at else s.phase
            cells = (stamp, phase, s.daemon, f"{s.done}/{s.total}", f"{s.passed} passed", "")
            rows.append((key, cells))
    return rows


def bakeoff_detail(key: str, bakeoffs: dict[str, BakeoffListing]) -> str:
    """The line under the table for a bakeoff's row or one of its runs' rows."""
    if key.startswith(BAKEOFF):
        b = bakeoffs.get(key.removeprefix(BAKEOFF))
        if b is None:
            return ""
        if b.error:
            return f"{b.bakeoff}: invalid bakeoff: {b.error}"
        variants = b.variants or []
        more = "" if b.runs else " · no runs yet"
        return (
            f"{b.bakeoff}: {b.tasks} tasks × {len(variants)} variants ({', '.join(variants)}), "
            f"{b.attempts} attempt(s) each{more} · n: start a run"
        )
    run_id = key.removeprefix(BAKEOFF_RUN)
    s = bakeoff_status(run_id, bakeoffs)
    if not isinstance(s, BakeoffStatus):
        return f"{run_id}: unreadable: {s.error if s is not None else ''}"
    hint = "enter: open · r: resume" if s.daemon == "dead" else "enter: open"
    words = [
        run_id,
        f"{s.phase} ({s.daemon})",
        f"attempts {s.done}/{s.total}",
        f"passed {s.passed} · failed {s.failed} · errors {s.errors + s.timeouts}",
    ]
    if s.message:
        words.append(s.message)
    return " · ".join([*words, hint])


def bakeoff_status(
    run_id: str, bakeoffs: dict[str, BakeoffListing]
) -> BakeoffStatus | UnreadableRun | None:
    b = bakeoffs.get(run_id.partition("/")[0])
    return next((s for s in b.runs if s.run_id == run_id), None) if b is not None else None


def styled(column: int, value: str, program_row: bool) -> Text:
    if program_row:
        return Text(value, style="bold")
    if column == 2:
        return Text(value, style=DAEMON_STYLE.get(value, "dim"))
    justify = "right" if column >= 3 else "left"
    return Text(value, justify=justify)  # type: ignore[arg-type]
