"""What the home screen lists: programs and runs as table rows.

Pure functions of the listing (`tui.reads.ListingSource` reads it), so the row layout can be
tested without an app.
"""

from __future__ import annotations

from rich.text import Text

from shared import display
from shared.listing import ProgramListing, UnreadableRun

COLUMNS = ("run", "phase", "daemon", "n/max", "best", "improvement")
EMPTY = (
    "no programs yet: expd init NAME --measure CMD --metric F --direction lower|higher\n"
    "then come back here (or run expd start NAME)"
)
DAEMON_STYLE = {"running": "green", "starting": "cyan", "hung": "bold yellow", "dead": "bold red"}


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
            cells = (stamp, s.phase, s.daemon, display.progress_of(s))
            rows.append((s.run_id, (*cells, display.fmt_num(s.best), improvement)))
    return rows


def styled(column: int, value: str, program_row: bool) -> Text:
    if program_row:
        return Text(value, style="bold")
    if column == 2:
        return Text(value, style=DAEMON_STYLE.get(value, "dim"))
    justify = "right" if column >= 3 else "left"
    return Text(value, justify=justify)  # type: ignore[arg-type]
