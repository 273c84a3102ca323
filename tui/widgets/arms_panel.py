"""The arms of a run side by side: experiments, keeps, keep rate, cost, mean agent time, whether an
arm is paused, and a bar of its share of the experiments so far (what the allocation gave it).

The screen hands over `state.arm_stats` on every message; the panel turns them into plain-text
cells (the numbers `expd status --json` reports, from `shared.arms.arm_status`) and repaints only
when a cell changed. Bars are sized to the width at render time, so a resize needs no new data.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from textual.content import Content
from textual.geometry import Size
from textual.widget import Widget

from shared.arms import ArmStatus, arm_status
from shared.display import DASH, fmt_duration, one_line, truncate
from shared.schema import ArmStats

ID_WIDTH = 16
"""Longer arm ids are cut (ids may have 64 characters; the bar needs the room)."""
BAR_MIN, BAR_MAX = 6, 32
BLOCKS = " ▏▎▍▌▋▊▉█"
HEADER = ("arm", "", "exp", "keeps", "keep%", "cost", "agent")
"""The fixed columns; `agent` is the mean agent time per experiment. The share bar follows."""
PAUSED = "paused"
LEGEND = "agent: mean agent time per experiment · share: of the run's experiments so far"
GAP = "  "


class ArmRow(NamedTuple):
    """One arm as shown: plain-text cells plus the share its bar is drawn from."""

    id: str
    paused: str
    experiments: str
    keeps: str
    keep_rate: str
    cost: str
    agent: str
    share_text: str
    share: float
    reason: str
    """Why the arm is paused (shown after the bar when there is room)."""


def row_of(arm: ArmStatus) -> ArmRow:
    rate = DASH if arm.keep_rate is None else f"{arm.keep_rate:.0%}"
    share = arm.share or 0.0
    return ArmRow(
        id=truncate(arm.id, ID_WIDTH),
        paused=PAUSED if arm.paused else "",
        experiments=str(arm.experiments),
        keeps=str(arm.keeps),
        keep_rate=rate,
        cost=f"${arm.cost_usd:.2f}",
        agent=fmt_duration(arm.mean_agent_s),
        share_text=DASH if arm.share is None else f"{arm.share:.0%}",
        share=share,
        reason=one_line(arm.paused),
    )


def policy_title(config: Mapping[str, Any] | None) -> str:
    """`arms · thompson · floor 10%` from the run's resolved config (`run.json`)."""
    policy = (config or {}).get("arms_policy")
    if not isinstance(policy, Mapping):
        return "arms"
    parts = ["arms"]
    allocation = policy.get("allocation")
    if isinstance(allocation, str) and allocation:
        parts.append(allocation.replace("_", "-"))
    floor = policy.get("min_share")
    if isinstance(floor, int | float) and floor > 0:
        parts.append(f"floor {floor:.0%}")
    return " · ".join(parts)


def declared_arms(config: Mapping[str, Any]) -> list[ArmStats]:
    """The arms `run.json` declares, with nothing counted yet: what the panel shows before the
    daemon's first state."""
    tables = config.get("arms")
    if not isinstance(tables, list):
        return []
    ids = [t.get("id") for t in tables if isinstance(t, dict)]
    return [ArmStats(id=arm_id) for arm_id in ids if isinstance(arm_id, str) and arm_id]


def bar(share: float, width: int) -> str:
    """`share` of `width` cells in eighth blocks, padded with spaces to `width`."""
    eighths = round(max(0.0, min(share, 1.0)) * width * 8)
    full, part = divmod(eighths, 8)
    text = "█" * full + (BLOCKS[part] if part else "")
    return text.ljust(width)


def panel_content(rows: tuple[ArmRow, ...], width: int, height: int | None = None) -> Content:
    """The header and one line per arm at `width` cells; past `height` lines, the last line says
    how many arms are not shown."""
    fixed_cells = [HEADER, *(row[: len(HEADER)] for row in rows)]
    widths = [max(len(c[i]) for c in fixed_cells) for i in range(len(HEADER))]
    fixed = sum(w + len(GAP) for w in widths if w)
    pct_width = max((len(r.share_text) for r in rows), default=1)
    free = width - fixed - pct_width - 1
    reasons = max((len(r.reason) for r in rows), default=0)
    if reasons:  # leave the reason some room, the bar keeps at least half
        free -= min(reasons + len(GAP), free // 2)
    bar_width = max(BAR_MIN, min(BAR_MAX, free))
    room = width - fixed - bar_width - pct_width - 1 - len(GAP)
    shown = rows
    if height is not None and 2 <= height < len(rows) + 1:
        shown = rows[: height - 2]
    lines = [Content.assemble(*_cells(HEADER, widths, bold=True), ("share", "bold"))]
    for row in shown:
        parts = _cells(row[: len(HEADER)], widths)
        parts += [(bar(row.share, bar_width), "$primary on $panel"), " "]
        parts.append(row.share_text.rjust(pct_width))
        if row.reason and room > 8:
            parts += [GAP, (truncate(row.reason, room), "$text-muted")]
        lines.append(Content.assemble(*parts))
    if len(shown) < len(rows):
        lines.append(Content.styled(f"… {len(rows) - len(shown)} more arms", "$text-muted"))
    return Content("\n").join(lines)


CELL_STYLES = {1: "bold $text-warning", 3: "$text-success"}
"""The paused marker stands out; keeps are green (the word stays: colour only repeats it)."""


def _cells(
    cells: tuple[str, ...], widths: list[int], *, bold: bool = False
) -> list[str | tuple[str, str]]:
    """Left-aligned id and marker, right-aligned numbers, each followed by a gap (an empty column
    takes no room)."""
    out: list[str | tuple[str, str]] = []
    for i, (cell, w) in enumerate(zip(cells, widths, strict=True)):
        if not w:
            continue
        text = cell.ljust(w) if i < 2 else cell.rjust(w)
        emphasis = CELL_STYLES.get(i, "") if cell not in ("", "0") else ""
        style = "bold" if bold else emphasis
        out += [(text, style) if style else text, GAP]
    return out


class ArmsPanel(Widget):
    """Hidden until the run has arms; `show` is cheap and does nothing when no cell changed."""

    DEFAULT_CSS = """
    ArmsPanel {
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
        self.rows: tuple[ArmRow, ...] = ()
        self.border_title = "arms"

    def show(self, stats: list[ArmStats], config: Mapping[str, Any] | None = None) -> None:
        """The arms' outcomes (`RunState.arm_stats`, in `[[arms]]` order) and the run's config
        (for the allocation policy in the title)."""
        rows = tuple(row_of(arm) for arm in arm_status(stats))
        title = policy_title(config)
        if rows == self.rows and title == self.border_title:
            return
        grew = len(rows) != len(self.rows)
        self.rows = rows
        self.border_title = title
        self.display = bool(rows)
        paused = [f"{row.id} paused: {row.reason}" for row in rows if row.paused]
        self.tooltip = "\n".join([LEGEND, *paused])
        self.refresh(layout=grew)

    def cells_of(self, arm_id: str) -> ArmRow:
        """What the row of `arm_id` shows."""
        return next(row for row in self.rows if row.id == truncate(arm_id, ID_WIDTH))

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return len(self.rows) + 1

    def render(self) -> Content:
        return panel_content(self.rows, self.size.width, self.size.height)
