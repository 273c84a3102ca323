"""One keyed row per experiment, reconciled in place so appends neither flicker nor move the cursor."""

from __future__ import annotations

from collections.abc import Iterable

from rich.style import Style
from rich.text import Text
from textual.message import Message
from textual.widgets import DataTable

from shared.render import DASH, fmt_num, fmt_pct, truncate
from shared.schema import ResultRecord
from shared.status import change_pct

STATUS_WORDS = {
    "baseline": "baseline",
    "keep": "keep",
    "discard": "discard",
    "crash": "crash",
    "measurement_failure": "measure-fail",
}
"""The word is always shown: the colour only repeats it."""

STATUS_COLOURS = {
    "baseline": "text-primary",
    "keep": "text-success",
    "crash": "text-error",
    "measurement_failure": "text-warning",
}
"""Theme variables per status (discards are dimmed instead: they are the common, boring case)."""

COLUMNS = (("#", "n"), ("status", "status"), ("metric", "metric"), ("Δ%", "delta"))
DESCRIPTION_WIDTH = 72


class ResultsTable(DataTable[Text]):
    """`add_results` is idempotent: a record already shown updates its row, a new one appends."""

    class ExperimentSelected(Message):
        """The cursor moved to an experiment (`opened`: the user chose it with enter or a click)."""

        def __init__(self, experiment: int, *, opened: bool = False) -> None:
            super().__init__()
            self.experiment = experiment
            self.opened = opened

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(cursor_type="row", zebra_stripes=False, id=id)
        self.records: dict[int, ResultRecord] = {}

    def on_mount(self) -> None:
        for label, key in COLUMNS:
            self.add_column(label, key=key)
        self.add_column("change", key="diff")
        self.add_column("description", key="description")
        self.app.theme_changed_signal.subscribe(self, lambda _theme: self.restyle())

    @property
    def baseline(self) -> float | None:
        base = self.records.get(0)
        return base.metric if base is not None and base.status == "baseline" else None

    def add_results(self, records: Iterable[ResultRecord]) -> None:
        """Append unseen experiments and update changed ones, in one repaint."""
        palette = self.palette()
        with self.app.batch_update():
            for record in records:
                key = str(record.experiment)
                old = self.records.get(record.experiment)
                self.records[record.experiment] = record
                if old is None:
                    self.add_row(*self._cells(record, palette), key=key)
                elif old != record:
                    self._update_row(record, palette)

    def restyle(self) -> None:
        """Re-colour every row (the theme changed)."""
        palette = self.palette()
        with self.app.batch_update():
            for record in self.records.values():
                self._update_row(record, palette)

    def _update_row(self, record: ResultRecord, palette: dict[str, Style]) -> None:
        keys = [key for _, key in COLUMNS] + ["diff", "description"]
        for key, cell in zip(keys, self._cells(record, palette), strict=True):
            self.update_cell(str(record.experiment), key, cell)

    def palette(self) -> dict[str, Style]:
        """Row styles per status from the current theme (Rich styles cannot name variables)."""
        variables = self.app.theme_variables or self.app.get_css_variables()
        out: dict[str, Style] = {}
        for status, variable in STATUS_COLOURS.items():
            colour = variables.get(variable, "")
            out[status] = Style(color=colour) if colour.startswith("#") else Style()
        return out

    def _cells(self, record: ResultRecord, palette: dict[str, Style]) -> list[Text]:
        style = palette.get(record.status, Style(dim=True))
        word = STATUS_WORDS.get(record.status, record.status or "?")
        if record.status == "baseline":
            delta = DASH
        else:
            delta = fmt_pct(change_pct(record.metric, self.baseline))
        diff = (
            DASH if record.status == "baseline" else f"+{record.diff.added} −{record.diff.removed}"
        )
        description = record.description
        if record.status == "baseline" and description.strip().lower() == "baseline":
            description = ""
        if not description and record.status != "baseline":
            description = record.reason
        return [
            Text(str(record.experiment), style=style, justify="right"),
            Text(word, style=style + Style(bold=True)),
            Text(fmt_num(record.metric), style=style, justify="right"),
            Text(delta, style=style, justify="right"),
            Text(diff, style=style, justify="right"),
            Text(truncate(description, DESCRIPTION_WIDTH), style=style),
        ]

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        if event.row_key.value is not None:
            self.post_message(self.ExperimentSelected(int(event.row_key.value)))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        if event.row_key.value is not None:
            self.post_message(self.ExperimentSelected(int(event.row_key.value), opened=True))
