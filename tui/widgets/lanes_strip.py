"""The lanes of a run, one line each: lane number, phase, experiment, time in that phase, node, and
a marker (with its reason) when the lane is paused.

The screen hands over `state.lanes` on every state and the time on every tick; the strip turns them
into plain-text cells and repaints only when a cell changed (the elapsed time moves once a second,
not four times). It is hidden in a run without lanes (`state.lanes` empty).
"""

from __future__ import annotations

from collections import Counter
from typing import NamedTuple

from textual.content import Content
from textual.geometry import Size
from textual.widget import Widget

from shared.display import DASH, fmt_duration, one_line, truncate
from shared.schema import LaneState

GAP = "  "
NODE_WIDTH = 24
PAUSED = "paused"
PHASE_ORDER = ("agent_running", "waiting", "measuring", "idle", "paused")
"""The title counts lanes per phase in this order (any other phase follows)."""
PHASE_STYLES = {
    "agent_running": "$text-accent",
    "measuring": "$text-primary bold",
    "waiting": "$text-warning",
    "idle": "$text-muted",
    "paused": "bold $text-warning",
}


class LaneRow(NamedTuple):
    """One lane as shown: plain-text cells, the paused marker (when its phase does not say so
    already), then why it is paused (empty: it runs)."""

    lane: str
    phase: str
    experiment: str
    elapsed: str
    node: str
    paused: str
    reason: str


def row_of(lane: LaneState, now: float) -> LaneRow:
    paused = bool(lane.paused) and lane.phase != PAUSED  # else the phase already says it
    return LaneRow(
        lane=f"lane {lane.lane}",
        phase=one_line(lane.phase) or DASH,
        experiment=DASH if lane.experiment is None else f"#{lane.experiment}",
        elapsed=fmt_duration(now - lane.since) if lane.since else DASH,
        node=truncate(lane.node, NODE_WIDTH),
        paused=PAUSED if paused else "",
        reason=one_line(lane.paused),
    )


def strip_title(lanes: list[LaneState]) -> str:
    """`lanes · 2 agent_running · 1 measuring`: how many lanes are in each phase."""
    counts = Counter(lane.phase for lane in lanes)
    order = [*PHASE_ORDER, *sorted(set(counts) - set(PHASE_ORDER))]
    return " · ".join(["lanes", *(f"{counts[p]} {one_line(p)}" for p in order if counts[p])])


def strip_content(rows: tuple[LaneRow, ...], width: int, height: int | None = None) -> Content:
    """One line per lane at `width` cells; past `height` lines, the last says how many lanes are
    not shown."""
    fixed = [row[:5] for row in rows]
    widths = [max((len(cells[i]) for cells in fixed), default=0) for i in range(5)]
    shown = rows
    if height is not None and 1 <= height < len(rows):
        shown = rows[: height - 1]
    lines = []
    for row in shown:
        parts: list[str | tuple[str, str]] = []
        for i, (cell, w) in enumerate(zip(row[:5], widths, strict=True)):
            if not w:
                continue  # no lane has a node: the column takes no room
            text = cell.rjust(w) if i in (2, 3) else cell.ljust(w)
            style = PHASE_STYLES.get(row.phase, "") if i == 1 else ("bold" if i == 0 else "")
            parts += [(text, style) if style else text, GAP]
        room = width - sum(w + len(GAP) for w in widths if w)
        if row.paused:
            parts.append((row.paused, "bold $text-warning"))
            room -= len(PAUSED) + 2
            if row.reason and room > 8:
                parts.append(": ")
        if row.reason and room > 8:
            parts.append((truncate(row.reason, room), "$text-muted"))
        lines.append(Content.assemble(*parts).rstrip())
    if len(shown) < len(rows):
        lines.append(Content.styled(f"… {len(rows) - len(shown)} more lanes", "$text-muted"))
    return Content("\n").join(lines)


class LanesStrip(Widget):
    """Hidden until the run has lanes; `show` and `tick` are cheap and repaint only on a change."""

    DEFAULT_CSS = """
    LanesStrip {
        display: none;
        width: 1fr;
        height: auto;
        padding: 0 1;
        border: round $secondary 50%;
        border-title-color: $text;
        text-wrap: nowrap;
        text-overflow: ellipsis;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.lanes: list[LaneState] = []
        self.rows: tuple[LaneRow, ...] = ()
        self.frozen_at: float | None = None
        self.border_title = "lanes"

    def show(self, lanes: list[LaneState], now: float, *, frozen_at: float | None = None) -> None:
        """The lanes (`RunState.lanes`) at `now`; `frozen_at`: the run ended then, so the time in
        each phase stops growing."""
        self.lanes = sorted(lanes, key=lambda lane: lane.lane)
        self.frozen_at = frozen_at
        title = strip_title(self.lanes)
        paused = [f"lane {lane.lane} paused: {lane.paused}" for lane in self.lanes if lane.paused]
        tooltip = "\n".join(paused) or None
        if (title, tooltip) != (self.border_title, self.tooltip):  # each set repaints
            self.border_title, self.tooltip = title, tooltip
        self.tick(now)

    def tick(self, now: float) -> None:
        """Move the elapsed times; nothing else changes between states."""
        at = now if self.frozen_at is None else self.frozen_at
        rows = tuple(row_of(lane, at) for lane in self.lanes)
        if rows == self.rows:
            return
        grew = len(rows) != len(self.rows)
        self.rows = rows
        self.display = bool(rows)
        self.refresh(layout=grew)

    def cells_of(self, lane: int) -> LaneRow:
        """What the line of lane `lane` shows."""
        return next(row for row in self.rows if row.lane == f"lane {lane}")

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return len(self.rows)

    def render(self) -> Content:
        return strip_content(self.rows, self.size.width, self.size.height)
