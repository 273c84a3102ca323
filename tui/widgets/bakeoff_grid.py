"""The bakeoff's matrix: one row per task, one column per variant, one glyph per attempt.

Drawn with Textual's Line API like `LineTable`: only the rows on screen are rendered, so a suite
of hundreds of tasks opens as fast as one of three. Rows are added by key and a cell is compared
before it is written, so an attempt that ends repaints one line and the cursor never moves. The
glyph says the status (✓ ✗ E T C ▶ ·) and the colour only repeats it; colours are component
classes on theme variables. The task column stays put when the variants scroll sideways.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import ClassVar

from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

GLYPHS = {
    "passed": "✓",
    "failed": "✗",
    "error": "E",
    "timeout": "T",
    "cancelled": "C",
    "running": "▶",
    "pending": "·",
}
"""One character per attempt status; `pending`: not started yet."""

Cell = tuple[str, ...]
"""The statuses of one task × variant's attempts, in attempt order."""


def glyphs(cell: Cell) -> str:
    return "".join(GLYPHS.get(status, "?") for status in cell)


class BakeoffGrid(ScrollView, can_focus=True):
    """`set_matrix` names the rows and columns, `update_cells` sets the statuses; the cursor is on
    one attempt and posts `AttemptSelected` when it moves (and with `opened` on enter or a click
    on it)."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "bakeoff-grid--header",
        "bakeoff-grid--cursor",
        "bakeoff-grid--cursor-row",
        *(f"bakeoff-grid--{status}" for status in GLYPHS),
    }
    DEFAULT_CSS = """
    BakeoffGrid {
        background: $surface;
        color: $foreground;
        & > .bakeoff-grid--header { text-style: bold; background: $panel; color: $foreground; }
        & > .bakeoff-grid--cursor-row { color: $text-accent; text-style: bold; }
        & > .bakeoff-grid--cursor {
            background: $block-cursor-blurred-background;
            color: $block-cursor-blurred-foreground;
        }
        &:focus > .bakeoff-grid--cursor {
            background: $block-cursor-background;
            color: $block-cursor-foreground;
        }
        & > .bakeoff-grid--passed { color: $text-success; }
        & > .bakeoff-grid--failed { color: $text-error; }
        & > .bakeoff-grid--error { color: $text-warning; text-style: bold; }
        & > .bakeoff-grid--timeout { color: $text-warning; }
        & > .bakeoff-grid--cancelled { text-style: dim; }
        & > .bakeoff-grid--running { color: $text-accent; text-style: bold; }
        & > .bakeoff-grid--pending { text-style: dim; }
    }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "open", "Open", show=False),
        Binding("up", "move(-1, 0)", "Up", show=False),
        Binding("down", "move(1, 0)", "Down", show=False),
        Binding("left", "move(0, -1)", "Left", show=False),
        Binding("right", "move(0, 1)", "Right", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("home,ctrl+home", "edge(-1)", "First task", show=False),
        Binding("end,ctrl+end", "edge(1)", "Last task", show=False),
    ]

    class AttemptSelected(Message):
        """The cursor is on this attempt (`opened`: the user chose it)."""

        def __init__(self, task: str, variant: str, attempt: int, *, opened: bool = False) -> None:
            super().__init__()
            self.task, self.variant, self.attempt, self.opened = task, variant, attempt, opened

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.variants: list[str] = []
        self._tasks: list[str] = []
        self._index: dict[str, int] = {}
        self._cells: list[list[Cell]] = []
        self._widths: list[int] = []
        self._task_width = len("task")
        self._row = self._col = self._attempt = 0
        self._announced = False
        self.changed: list[tuple[str, str]] = []
        """The cells the last `update_cells` changed (what it repainted)."""

    # ------------------------------------------------------------------ reading

    @property
    def row_keys(self) -> list[str]:
        return list(self._tasks)

    @property
    def row_count(self) -> int:
        return len(self._tasks)

    def has_row(self, task: str) -> bool:
        return task in self._index

    def cell(self, task: str, variant: str) -> Cell:
        return self._cells[self._index[task]][self.variants.index(variant)]

    def glyphs(self, task: str, variant: str) -> str:
        return glyphs(self.cell(task, variant))

    @property
    def cursor(self) -> tuple[str, str, int] | None:
        """(task, variant, attempt number) under the cursor."""
        if not self._tasks or not self.variants:
            return None
        return self._tasks[self._row], self.variants[self._col], self._attempt + 1

    # ------------------------------------------------------------------ writing

    def set_matrix(self, tasks: Iterable[str], variants: Sequence[str]) -> None:
        """Add unseen tasks as rows and unseen variants as columns, in order (a replay may bring
        a variant the run's spec lacks)."""
        for variant in variants:
            if variant not in self.variants:
                self.variants.append(variant)
                self._widths.append(len(variant))
                for row in self._cells:
                    row.append(())
        for task in tasks:
            if task not in self._index:
                self._index[task] = len(self._tasks)
                self._tasks.append(task)
                self._cells.append([() for _ in self.variants])
                self._task_width = max(self._task_width, len(task))
        self._resize()
        if not self._announced and self.cursor is not None:
            self._announced = True  # the first attempt is under the cursor: say so once
            self._announce()

    def update_cells(self, cells: Iterable[tuple[str, str, Cell]]) -> list[tuple[str, str]]:
        """Set cells (task, variant, statuses); only changed ones are repainted. Unknown tasks or
        variants are ignored (the matrix comes from the run's spec)."""
        changed: list[tuple[str, str]] = []
        rows: set[int] = set()
        grown = False
        for task, variant, cell in cells:
            row = self._index.get(task)
            if row is None or variant not in self.variants:
                continue
            col = self.variants.index(variant)
            if self._cells[row][col] == cell:
                continue
            self._cells[row][col] = cell
            changed.append((task, variant))
            rows.add(row)
            if len(cell) > self._widths[col]:
                self._widths[col] = len(cell)
                grown = True
        self.changed = changed
        if grown:
            self._resize()
        else:
            for row in rows:
                self.refresh_line(row + 1)
        return changed

    def _resize(self) -> None:
        self.virtual_size = Size(self._task_width + 2 + self.cells_width, len(self._tasks) + 1)
        self.refresh()

    @property
    def cells_width(self) -> int:
        return sum(w + 2 for w in self._widths)

    # ------------------------------------------------------------------ the cursor

    def _announce(self, *, opened: bool = False) -> None:
        where = self.cursor
        if where is not None:
            self.post_message(self.AttemptSelected(*where, opened=opened))

    def move_to(self, row: int, col: int, attempt: int) -> None:
        if not self._tasks or not self.variants:
            return
        row = max(0, min(row, len(self._tasks) - 1))
        col = max(0, min(col, len(self.variants) - 1))
        attempt = max(0, min(attempt, max(0, len(self._cells[row][col]) - 1)))
        if (row, col, attempt) == (self._row, self._col, self._attempt):
            return
        old = self._row
        self._row, self._col, self._attempt = row, col, attempt
        self._keep_in_view(row)
        self.refresh_line(old + 1)
        self.refresh_line(row + 1)
        self._announce()

    def select(self, task: str, variant: str, attempt: int = 1) -> None:
        if task in self._index and variant in self.variants:
            self.move_to(self._index[task], self.variants.index(variant), attempt - 1)

    @property
    def page_rows(self) -> int:
        return max(1, self.scrollable_content_region.height - 1)

    def _keep_in_view(self, row: int) -> None:
        top = int(self.scroll_y)
        if row < top:
            self.scroll_to(y=row, animate=False)
        elif row >= top + self.page_rows:
            self.scroll_to(y=row - self.page_rows + 1, animate=False)

    def action_move(self, rows: int, steps: int) -> None:
        if not self._tasks or not self.variants:
            return
        if rows:
            self.move_to(self._row + rows, self._col, self._attempt)
            return
        row, col, attempt = self._row, self._col, self._attempt + steps
        if not 0 <= attempt < max(1, len(self._cells[row][col])):
            col += steps  # past the cell's last attempt: on to the next variant's
            if not 0 <= col < len(self.variants):
                return
            attempt = 0 if steps > 0 else max(0, len(self._cells[row][col]) - 1)
        self.move_to(row, col, attempt)

    def action_page(self, direction: int) -> None:
        self.scroll_to(y=self.scroll_y + direction * self.page_rows, animate=False)
        self.move_to(self._row + direction * self.page_rows, self._col, self._attempt)

    def action_edge(self, direction: int) -> None:
        self.move_to(0 if direction < 0 else len(self._tasks) - 1, self._col, self._attempt)

    def action_open(self) -> None:
        self._announce(opened=True)

    # ------------------------------------------------------------------ the mouse

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None or offset.y < 1:
            return
        row = int(self.scroll_y) + offset.y - 1
        x = offset.x - (self._task_width + 2) + int(self.scroll_x)
        if row >= len(self._tasks) or x < 0:
            return
        for col, width in enumerate(self._widths):
            if x < width + 2:
                attempt = min(max(0, x - 1), max(0, len(self._cells[row][col]) - 1))
                event.stop()
                if (row, col, attempt) == (self._row, self._col, self._attempt):
                    self._announce(opened=True)
                else:
                    self.move_to(row, col, attempt)
                return
            x -= width + 2

    # ------------------------------------------------------------------ drawing

    def notify_style_update(self) -> None:
        super().notify_style_update()  # theme or focus changed: the component styles did too
        self.refresh()

    def _style(self, name: str) -> Style:
        return self.get_component_rich_style(f"bakeoff-grid--{name}", partial=True)

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        width = self.scrollable_content_region.width
        base = self.rich_style
        if y == 0:
            style = self.get_component_rich_style("bakeoff-grid--header")
            head = [Segment(f" {'task':<{self._task_width}} ", style)]
            cells = [
                Segment(f" {v:<{w}} ", style)
                for v, w in zip(self.variants, self._widths, strict=True)
            ]
            return self._strip(head, cells, style, scroll_x, width)
        row = scroll_y + y - 1
        if row >= len(self._tasks):
            return Strip.blank(width, base)
        on_row = row == self._row
        task_style = base + self._style("cursor-row") if on_row else base
        head = [Segment(f" {self._tasks[row]:<{self._task_width}} ", task_style)]
        cells: list[Segment] = []
        for col, (cell, w) in enumerate(zip(self._cells[row], self._widths, strict=True)):
            cells.append(Segment(" ", base))
            for i, status in enumerate(cell):
                style = base + self._style(status if status in GLYPHS else "pending")
                if on_row and col == self._col and i == self._attempt:
                    style = self.get_component_rich_style("bakeoff-grid--cursor")
                cells.append(Segment(GLYPHS.get(status, "?"), style))
            cells.append(Segment(" " * (w - len(cell) + 1), base))
        return self._strip(head, cells, base, scroll_x, width)

    def _strip(
        self, head: list[Segment], cells: list[Segment], fill: Style, scroll_x: int, width: int
    ) -> Strip:
        """The task column as is, then the variant cells scrolled by `scroll_x`."""
        task_w = self._task_width + 2
        left = Strip(head, task_w)
        right = Strip(cells, self.cells_width).crop_extend(
            scroll_x, scroll_x + max(0, width - task_w), fill
        )
        return Strip.join([left, right]).crop_extend(0, width, fill)
