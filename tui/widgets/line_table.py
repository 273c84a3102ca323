"""A keyed table drawn with Textual's Line API: only the rows on screen are ever rendered.

Rows are tuples of plain strings. Column widths grow with each row's `cell_len` as rows arrive, so
adding ten thousand rows is a few list operations per row: no per-row reactive, no Rich measuring
pass over every cell. The header stays on the first line; a row cursor moves with the keys and the
mouse and is kept in view.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import ClassVar, Literal, NamedTuple

from rich.cells import cell_len
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip


class Column(NamedTuple):
    label: str
    key: str
    justify: Literal["left", "right"] = "left"
    style: Style | None = None
    """Added on top of the row's style (e.g. bold for the column that names the row's kind)."""


class LineTable(ScrollView, can_focus=True):
    """A row is a key, its cells and a tag; a subclass styles tags (`tag_style`) and reacts to the
    cursor (`row_highlighted`) and to a choice (`row_selected`: enter, or a click on the cursor)."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "line-table--header",
        "line-table--cursor",
        "line-table--hover",
    }
    DEFAULT_CSS = """
    LineTable {
        background: $surface;
        color: $foreground;
        height: auto;
        max-height: 100%;
        & > .line-table--header { text-style: bold; background: $panel; color: $foreground; }
        &:ansi > .line-table--header { background: ansi_bright_blue; color: ansi_default; }
        & > .line-table--cursor {
            background: $block-cursor-blurred-background;
            color: $block-cursor-blurred-foreground;
            text-style: $block-cursor-blurred-text-style;
        }
        & > .line-table--hover { background: $block-hover-background; }
        &:focus {
            background-tint: $foreground 5%;
            & > .line-table--header { background-tint: $foreground 5%; }
            & > .line-table--cursor {
                background: $block-cursor-background;
                color: $block-cursor-foreground;
                text-style: $block-cursor-text-style;
            }
        }
    }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "select_cursor", "Select", show=False),
        Binding("up", "cursor_up", "Cursor up", show=False),
        Binding("down", "cursor_down", "Cursor down", show=False),
        Binding("pageup", "cursor_page_up", "Page up", show=False),
        Binding("pagedown", "cursor_page_down", "Page down", show=False),
        Binding("home,ctrl+home", "cursor_first", "First row", show=False),
        Binding("end,ctrl+end", "cursor_last", "Last row", show=False),
    ]

    def __init__(
        self, columns: Sequence[Column], *, id: str | None = None, classes: str | None = None
    ) -> None:
        super().__init__(id=id, classes=classes)
        self.columns = tuple(columns)
        self._keys: list[str] = []
        self._index: dict[str, int] = {}
        self._cells: list[tuple[str, ...]] = []
        self._tags: list[str] = []
        self._widths = [cell_len(column.label) for column in self.columns]
        self._cursor = 0
        self._hover: int | None = None

    # ------------------------------------------------------------------ reading

    @property
    def row_count(self) -> int:
        return len(self._keys)

    @property
    def row_keys(self) -> list[str]:
        return list(self._keys)

    def has_row(self, key: str) -> bool:
        return key in self._index

    @property
    def cursor_row(self) -> int:
        return self._cursor

    @property
    def cursor_key(self) -> str | None:
        return self._keys[self._cursor] if self._keys else None

    @property
    def column_widths(self) -> list[int]:
        return list(self._widths)

    def get_row(self, key: str) -> list[Text]:
        return self.get_row_at(self._index[key])

    def get_row_at(self, index: int) -> list[Text]:
        """The row's cells as styled Rich text (the tag's style, plus the column's)."""
        style = self.tag_style(self._tags[index])
        return [
            Text(
                cell, style=style + column.style if column.style else style, justify=column.justify
            )
            for column, cell in zip(self.columns, self._cells[index], strict=True)
        ]

    # ------------------------------------------------------------------ writing

    def set_rows(self, rows: Iterable[tuple[str, Sequence[str], str]]) -> None:
        """Append unseen keys and replace the cells of known ones (cursor and scroll stay), then
        repaint once. A row is (key, cells, tag)."""
        was_empty = not self._keys
        widths = self._widths
        for key, cells, tag in rows:
            row = tuple(cells)
            for i, cell in enumerate(row):
                if (width := len(cell) if cell.isascii() else cell_len(cell)) > widths[i]:
                    widths[i] = width
            index = self._index.get(key)
            if index is None:
                self._index[key] = len(self._keys)
                self._keys.append(key)
                self._cells.append(row)
                self._tags.append(tag)
            else:
                self._cells[index] = row
                self._tags[index] = tag
        self.virtual_size = Size(self.table_width, len(self._keys) + 1)
        self.refresh()
        if was_empty and self._keys:
            self.row_highlighted(self._keys[self._cursor])

    def set_columns(
        self, columns: Sequence[Column], rows: Iterable[tuple[str, Sequence[str], str]]
    ) -> None:
        """Other columns, with every known row's cells for them (keys, order, cursor and scroll
        stay); then repaint once."""
        self.columns = tuple(columns)
        self._widths = [cell_len(column.label) for column in self.columns]
        self.set_rows(rows)

    @property
    def table_width(self) -> int:
        return sum(self._widths) + 2 * len(self._widths)

    # ------------------------------------------------------------------ for subclasses

    def tag_style(self, tag: str) -> Style:
        """The style of a row's cells by its tag (a partial style: colour, text style)."""
        return Style()

    def row_highlighted(self, key: str) -> None:
        """The cursor moved to `key` (or the first row arrived under it)."""

    def row_selected(self, key: str) -> None:
        """The user chose the row under the cursor."""

    # ------------------------------------------------------------------ the cursor

    @property
    def page_rows(self) -> int:
        """How many rows fit under the header."""
        return max(1, self.scrollable_content_region.height - 1)

    def move_cursor(self, index: int) -> None:
        if not self._keys:
            return
        index = max(0, min(index, len(self._keys) - 1))
        old, self._cursor = self._cursor, index
        self.scroll_to_row(index)
        if old != index:
            self.refresh_line(old + 1)
            self.refresh_line(index + 1)
            self.row_highlighted(self._keys[index])

    def scroll_to_row(self, index: int) -> None:
        """Scroll as little as needed for row `index` to be on screen, under the header."""
        top = int(self.scroll_y)
        if index < top:
            self.scroll_to(y=index, animate=False)
        elif index >= top + self.page_rows:
            self.scroll_to(y=index - self.page_rows + 1, animate=False)

    def action_cursor_up(self) -> None:
        self.move_cursor(self._cursor - 1)

    def action_cursor_down(self) -> None:
        self.move_cursor(self._cursor + 1)

    def action_cursor_page_up(self) -> None:
        self.scroll_to(y=self.scroll_y - self.page_rows, animate=False)
        self.move_cursor(self._cursor - self.page_rows)

    def action_cursor_page_down(self) -> None:
        self.scroll_to(y=self.scroll_y + self.page_rows, animate=False)
        self.move_cursor(self._cursor + self.page_rows)

    def action_cursor_first(self) -> None:
        self.move_cursor(0)

    def action_cursor_last(self) -> None:
        self.move_cursor(len(self._keys) - 1)

    def action_select_cursor(self) -> None:
        if self._keys:
            self.row_selected(self._keys[self._cursor])

    # ------------------------------------------------------------------ the mouse

    def row_at(self, event: events.MouseEvent) -> int | None:
        """The row under the mouse (None: the header, past the last row, or the border)."""
        offset = event.get_content_offset(self)
        if offset is None or offset.y < 1:
            return None
        index = int(self.scroll_y) + offset.y - 1
        return index if index < len(self._keys) else None

    def on_click(self, event: events.Click) -> None:
        index = self.row_at(event)
        if index is None:
            return
        event.stop()
        if index == self._cursor:
            self.row_selected(self._keys[index])
        else:
            self.move_cursor(index)

    def on_mouse_move(self, event: events.MouseMove) -> None:
        self.set_hover(self.row_at(event))

    def on_leave(self, _event: events.Leave) -> None:
        self.set_hover(None)

    def set_hover(self, index: int | None) -> None:
        if index != self._hover:
            for old in (self._hover, index):
                if old is not None:
                    self.refresh_line(old + 1)
            self._hover = index

    # ------------------------------------------------------------------ drawing

    def notify_style_update(self) -> None:
        super().notify_style_update()  # forgets the component styles: theme, focus
        self.refresh()

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        width = self.scrollable_content_region.width
        base = self.rich_style
        if y == 0:
            style = self.get_component_rich_style("line-table--header")
            cells: Sequence[str] = [column.label for column in self.columns]
            return self._strip(cells, style, style, scroll_x, width)
        index = scroll_y + y - 1
        if index >= len(self._keys):
            return Strip.blank(width, base)
        cells = self._cells[index]
        if index == self._cursor:
            fill = self.get_component_rich_style("line-table--cursor")
            return self._strip(cells, fill, fill, scroll_x, width)
        fill = self.get_component_rich_style("line-table--hover") if index == self._hover else base
        return self._strip(cells, fill + self.tag_style(self._tags[index]), fill, scroll_x, width)

    def _strip(
        self, cells: Sequence[str], style: Style, fill: Style, scroll_x: int, width: int
    ) -> Strip:
        segments = []
        for column, column_width, cell in zip(self.columns, self._widths, cells, strict=True):
            pad = " " * (column_width - cell_len(cell))
            text = f" {pad}{cell} " if column.justify == "right" else f" {cell}{pad} "
            segments.append(Segment(text, style + column.style if column.style else style))
        strip = Strip(segments, self.table_width)
        return strip.crop_extend(scroll_x, scroll_x + width, fill)
