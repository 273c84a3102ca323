"""The repository's run queue under the home screen's runs: one line per entry that is waiting,
starting or running, then the few that finished last, and a title that says when it is paused.

The screen hands over `queue.json` as `QueueListed` delivers it; the panel turns it into plain-text
rows and repaints only when a row changed. It is hidden while the queue has nothing to show.
"""

from __future__ import annotations

from typing import NamedTuple

from textual.content import Content
from textual.geometry import Size
from textual.widget import Widget

from shared.display import DASH, one_line, truncate
from shared.queue import PENDING, QueueEntry, QueueFile, describe

FINISHED_SHOWN = 3
"""How many finished entries stay in view (newest), under the pending ones."""
GAP = "  "
STATE_STYLES = {
    "queued": "$text-muted",
    "starting": "$text-accent",
    "running": "$text-primary bold",
    "done": "$text-success",
    "failed": "bold $text-error",
    "skipped": "$text-warning",
}


class QueueRow(NamedTuple):
    """One entry as shown: plain-text cells, then why (its reason), which takes the rest."""

    id: str
    state: str
    program: str
    run: str
    reason: str


def row_of(entry: QueueEntry) -> QueueRow:
    options = describe(entry)
    return QueueRow(
        id=f"#{entry.id}",
        state=entry.state,
        program=one_line(f"{entry.program} {options}".strip()),
        run=entry.run_id or DASH,
        reason=one_line(entry.reason),
    )


def shown_entries(queue: QueueFile) -> list[QueueEntry]:
    """The pending entries in queue order, after the last few finished ones."""
    finished = [e for e in queue.entries if e.state not in PENDING]
    return [*finished[-FINISHED_SHOWN:], *queue.pending()]


def panel_title(queue: QueueFile) -> str:
    waiting = sum(e.state == "queued" for e in queue.entries)
    title = f"queue · {waiting} waiting"
    return f"{title} · paused: {one_line(queue.paused)}" if queue.paused else title


def panel_content(rows: tuple[QueueRow, ...], width: int) -> Content:
    widths = [max((len(row[i]) for row in rows), default=0) for i in range(4)]
    lines = []
    for row in rows:
        parts: list[str | tuple[str, str]] = []
        for i, w in enumerate(widths):
            text = row[i].ljust(w)
            style = STATE_STYLES.get(row.state, "") if i == 1 else ("bold" if i == 0 else "")
            parts += [(text, style) if style else text, GAP]
        room = width - sum(w + len(GAP) for w in widths)
        if row.reason and room > 8:
            parts.append((truncate(row.reason, room), "$text-muted"))
        lines.append(Content.assemble(*parts).rstrip())
    return Content("\n").join(lines)


class QueuePanel(Widget):
    """Hidden until the queue has an entry to show; `show` repaints only on a change."""

    DEFAULT_CSS = """
    QueuePanel {
        display: none;
        width: 1fr;
        height: auto;
        max-height: 8;
        padding: 0 1;
        border: round $secondary 50%;
        border-title-color: $text;
        text-wrap: nowrap;
        text-overflow: ellipsis;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.rows: tuple[QueueRow, ...] = ()
        self.border_title = "queue"

    def show(self, queue: QueueFile) -> None:
        rows = tuple(row_of(e) for e in shown_entries(queue))
        title = panel_title(queue)
        if title != self.border_title:
            self.border_title = title
        if rows == self.rows:
            return
        grew = len(rows) != len(self.rows)
        self.rows = rows
        self.display = bool(rows)
        self.refresh(layout=grew)

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return len(self.rows)

    def render(self) -> Content:
        return panel_content(self.rows, self.size.width)
