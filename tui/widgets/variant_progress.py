"""Per-variant progress: done/total, running, passed, failed, errors, success rate, cost, mean
duration and ETA — the table `expd status` prints, with the same cells
(`shared.bakeoffs.progress.progress_cells`), numbers right-aligned under their headers."""

from __future__ import annotations

from textual.content import Content
from textual.widgets import Static

from shared.bakeoffs.progress import VariantProgress
from shared.display import PROGRESS_COLUMNS, progress_cells


class VariantProgressTable(Static):
    """`show(rows)` with `shared.bakeoffs.progress.variant_progress`'s rows, in the spec's order;
    it repaints only when a cell changed."""

    DEFAULT_CSS = """
    VariantProgressTable {
        height: auto; max-height: 14; padding: 0 1; text-wrap: nowrap; text-overflow: ellipsis;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("", id=id)
        self.rows_shown: list[VariantProgress] = []
        self._cells: dict[str, tuple[str, ...]] = {}

    def show(self, rows: list[VariantProgress]) -> None:
        self.rows_shown = rows
        cells = {row.variant: progress_cells(row) for row in rows}
        if cells == self._cells:
            return
        self._cells = cells
        self.update(table_content(list(cells.values())))

    def cells_of(self, variant: str) -> tuple[str, ...]:
        """What the row of `variant` shows (plain text, in `PROGRESS_COLUMNS` order)."""
        return self._cells[variant]


def table_content(rows: list[tuple[str, ...]]) -> Content:
    header = tuple(PROGRESS_COLUMNS)
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    parts: list[str | tuple[str, str]] = []
    for n, row in enumerate([header, *rows]):
        for i, (cell, width) in enumerate(zip(row, widths, strict=True)):
            text = cell.ljust(width) if i == 0 else cell.rjust(width)
            style = "bold" if n == 0 or i == 0 else ""
            sep = ("  " if i == 0 else " ") if i < len(row) - 1 else ""
            parts += [(text, style) if style else text, sep]
        parts.append("\n" if n < len(rows) else "")
    return Content.assemble(*parts)
