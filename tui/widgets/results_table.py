"""One keyed row per experiment, reconciled in place so appends neither flicker nor move the cursor.

A `LineTable`: only the rows on screen are drawn, so a run with ten thousand results opens as fast
as one with ten. Status colours are component classes on theme variables: a theme change
re-colours the rows by itself.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

from rich.style import Style
from textual.message import Message

from shared.display import DASH, fmt_num, fmt_pct, truncate
from shared.schema import ResultRecord
from shared.status import change_pct
from tui.widgets.line_table import Column, LineTable

STATUS_WORDS = {
    "baseline": "baseline",
    "keep": "keep",
    "discard": "discard",
    "crash": "crash",
    "measurement_failure": "measure-fail",
}
"""The word is always shown: the colour only repeats it."""

STATUS_CLASSES = {
    "baseline": "results-table--baseline",
    "keep": "results-table--keep",
    "crash": "results-table--crash",
    "measurement_failure": "results-table--measure-fail",
}
"""Component classes per status; any other status (discards) is dimmed: the common, boring case."""
DIMMED = "results-table--discard"

COLUMNS = (
    Column("#", "n", "right"),
    Column("status", "status", style=Style(bold=True)),
    Column("metric", "metric", "right"),
    Column("Δ%", "delta", "right"),
    Column("change", "diff", "right"),
    Column("description", "description"),
)
ARM_COLUMN = Column("arm", "arm")
"""Shown after the status, only in a run with arms."""
LANE_COLUMN = Column("lane", "lane", "right")
"""Shown after the status (and the arm), only once a result has a lane."""
ARM_WIDTH = 16
DESCRIPTION_WIDTH = 72


class ResultsTable(LineTable):
    """`add_results` is idempotent: a record already shown updates its row, a new one appends.
    `show_arms` adds the arm column and `show_lanes` the lane column (once each: a run never loses
    its arms or its lanes)."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        *LineTable.COMPONENT_CLASSES,
        *STATUS_CLASSES.values(),
        DIMMED,
    }
    DEFAULT_CSS = """
    ResultsTable {
        & > .results-table--baseline { color: $text-primary; }
        & > .results-table--keep { color: $text-success; }
        & > .results-table--crash { color: $text-error; }
        & > .results-table--measure-fail { color: $text-warning; }
        & > .results-table--discard { text-style: dim; }
    }
    """

    class ExperimentSelected(Message):
        """The cursor moved to an experiment (`opened`: the user chose it with enter or a click)."""

        def __init__(self, experiment: int, *, opened: bool = False) -> None:
            super().__init__()
            self.experiment = experiment
            self.opened = opened

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(COLUMNS, id=id)
        self.records: dict[int, ResultRecord] = {}
        self.arms = False
        self.lanes = False

    @property
    def baseline(self) -> float | None:
        base = self.records.get(0)
        return base.metric if base is not None and base.status == "baseline" else None

    def add_results(self, records: Iterable[ResultRecord]) -> None:
        """Append unseen experiments and update changed ones, in one repaint."""
        before = self.baseline
        changed: list[ResultRecord] = []
        for record in records:
            if self.records.get(record.experiment) != record:
                self.records[record.experiment] = record
                changed.append(record)
        if not changed:
            return
        if self.baseline != before and len(self.records) > len(changed):
            changed = list(self.records.values())  # every Δ% is relative to the baseline
        self.set_rows((str(r.experiment), self.cells(r), r.status) for r in changed)

    def show_arms(self) -> None:
        """Add the arm column and fill it for the rows already shown."""
        if not self.arms:
            self.arms = True
            self.relayout()

    def show_lanes(self) -> None:
        """Add the lane column and fill it for the rows already shown."""
        if not self.lanes:
            self.lanes = True
            self.relayout()

    def relayout(self) -> None:
        extra = (*((ARM_COLUMN,) if self.arms else ()), *((LANE_COLUMN,) if self.lanes else ()))
        self.set_columns(
            (*COLUMNS[:2], *extra, *COLUMNS[2:]),
            ((str(r.experiment), self.cells(r), r.status) for r in self.records.values()),
        )

    def tag_style(self, tag: str) -> Style:
        return self.get_component_rich_style(STATUS_CLASSES.get(tag, DIMMED), partial=True)

    def cells(self, record: ResultRecord) -> tuple[str, ...]:
        word = STATUS_WORDS.get(record.status, record.status or "?")
        if record.status == "baseline":
            delta = diff = DASH
        else:
            delta = fmt_pct(change_pct(record.metric, self.baseline))
            diff = f"+{record.diff.added} −{record.diff.removed}"
        description = record.description
        if record.status == "baseline" and description.strip().lower() == "baseline":
            description = ""
        if not description and record.status != "baseline":
            description = record.reason
        arm = (truncate(record.arm, ARM_WIDTH) if record.arm else DASH,) if self.arms else ()
        lane = (DASH if record.lane is None else str(record.lane),) if self.lanes else ()
        return (
            str(record.experiment),
            word,
            *arm,
            *lane,
            fmt_num(record.metric),
            delta,
            diff,
            truncate(description, DESCRIPTION_WIDTH),
        )

    def row_highlighted(self, key: str) -> None:
        self.post_message(self.ExperimentSelected(int(key)))

    def row_selected(self, key: str) -> None:
        self.post_message(self.ExperimentSelected(int(key), opened=True))
