"""The selected attempt: its live agent stream while it runs, then its verdict — criteria with
their details, error, cost and time — and its patch.

The record comes with the screen's data (`show`); the agent log streams in from the source
(`append_log`), and the patch and criteria log are files the screen asks its source for
(`show_files`), read in a thread worker.
"""

from __future__ import annotations

from collections.abc import Iterable

from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.content import Content
from textual.widgets import Log, Static, TabbedContent, TabPane

from shared.bakeoffs.schema import AttemptRecord, CriterionResult, RunningAttempt
from shared.display import fmt_duration, fmt_num, one_line
from tui.widgets.bakeoff_grid import GLYPHS
from tui.widgets.experiment_detail import patch_content

MAX_LINES = 5000
"""The agent stream keeps its newest lines: an agent can talk for hours."""
CRITERIA_LOG_LINES = 200
ANSWER_CHARS = 2000
STATUS_STYLES = {
    "passed": "$text-success",
    "failed": "$text-error",
    "error": "$text-warning",
    "timeout": "$text-warning",
    "running": "$text-accent",
}

Parts = list[str | tuple[str, str]]


def _criterion(parts: Parts, index: int, c: CriterionResult) -> None:
    if c.passed is None:
        mark, style = "?", "$text-warning"
    else:
        mark, style = ("✓", "$text-success") if c.passed else ("✗", "$text-error")
    weight = f"  (weight {fmt_num(c.weight)})" if c.weight != 1.0 else ""
    value = f"  = {fmt_num(c.value)}" if c.value is not None else ""
    parts += [f"  {index}. ", (mark, style), f" {c.type}: ", (one_line(c.target), "bold")]
    parts += [value, weight, "\n"]
    if c.passed is None and c.type == "manual":
        parts += [("       not marked yet: expd bakeoff mark RUN … pass|fail\n", "$text-muted")]
    for line in c.details.splitlines()[-12:]:
        parts += [(f"       {line}\n", "$text-muted")]


def result_content(record: AttemptRecord, criteria_log: list[str] | None = None) -> Content:
    """An attempt's verdict and everything it rests on, as labelled lines."""
    score = "—" if record.score is None else f"{record.score:.2f}"
    parts: Parts = [
        (f"{record.key} {GLYPHS.get(record.status, '?')} {record.status}", "bold"),
        f"   score {score}\n\n",
    ]
    rows = [
        (
            "time",
            f"agent {fmt_duration(record.duration_s)} · criteria {fmt_duration(record.criteria_s)}"
            f" · ${record.cost_usd:.2f} · {record.tokens} tokens",
        )
    ]
    if record.changed and record.commit:
        rows.append(("commit", record.commit[:12] + (f"  ({record.ref})" if record.ref else "")))
    elif not record.changed:
        rows.append(("change", "none (the criteria ran on the base)"))
    if record.diff.files:
        files = ", ".join(record.diff.files[:6]) + (" …" if len(record.diff.files) > 6 else "")
        rows.append(("diff", f"+{record.diff.added} −{record.diff.removed} in {files}"))
    if record.replay_of:
        rows.append(("replay", f"of {record.replay_of}"))
    if record.reruns:
        rows.append(("reruns", f"{record.reruns} (interrupted before)"))
    for label, value in rows:
        parts += [(f"{label:<8}", "$text-muted"), f"{value}\n"]
    if record.error:
        kind = f" ({record.error_class})" if record.error_class else ""
        parts += [("\nerror", "bold $text-error"), f"{kind}\n", (record.error, "$text-error"), "\n"]
    parts += ["\n", ("criteria", "bold"), "\n"]
    if not record.criteria:
        parts.append(("  none ran\n", "$text-muted"))
    for i, c in enumerate(record.criteria):
        _criterion(parts, i, c)
    if record.answer:
        answer = record.answer[:ANSWER_CHARS] + ("…" if len(record.answer) > ANSWER_CHARS else "")
        parts += ["\n", ("final answer", "bold"), "\n", answer, "\n"]
    if criteria_log:
        parts += ["\n", ("criteria log", "bold"), "\n"]
        parts += [f"{line}\n" for line in criteria_log[-CRITERIA_LOG_LINES:]]
    return Content.assemble(*parts)


class AttemptDetail(Vertical):
    """Tabs for the selected attempt: Agent (live), Result (criteria, error), Patch."""

    DEFAULT_CSS = """
    AttemptDetail { border: round $secondary 50%; border-title-color: $text; }
    AttemptDetail TabbedContent { height: 1fr; }
    AttemptDetail TabPane { padding: 0 1; height: 1fr; }
    AttemptDetail VerticalScroll { height: 1fr; }
    AttemptDetail Log { height: 1fr; overflow: auto auto; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.key: str | None = None
        self.record: AttemptRecord | None = None
        self.criteria_log: list[str] | None = None
        self.following = True
        self.border_title = "attempt"

    def compose(self) -> ComposeResult:
        with TabbedContent(initial="tab-attempt-agent"):
            with TabPane("Agent", id="tab-attempt-agent"):
                yield Log(id="attempt-log", max_lines=MAX_LINES)
            with TabPane("Result", id="tab-attempt-result"), VerticalScroll():
                yield Static("select an attempt", id="attempt-result")
            with TabPane("Patch", id="tab-attempt-patch"), VerticalScroll():
                yield Static(id="attempt-patch")

    @property
    def active_tab(self) -> str:
        return self.query_one(TabbedContent).active

    def show(
        self, key: str, record: AttemptRecord | None, running: RunningAttempt | None, now: float
    ) -> None:
        """Show attempt `key` as it stands: finished (`record`), running, or not started."""
        moved = key != self.key
        ended = not moved and self.record is None and record is not None
        if moved:
            self.key, self.criteria_log = key, None
            self.query_one("#attempt-log", Log).clear()
            self.following = True
            self.query_one("#attempt-patch", Static).update("loading…" if record else "")
        self.record = record
        result = self.query_one("#attempt-result", Static)
        if record is not None:
            self.border_title = f"{key} · {record.status}"
            result.update(result_content(record, self.criteria_log))
        elif running is not None:
            stage = running.stage or "starting"
            since = fmt_duration(now - running.started_at) if running.started_at else "—"
            self.border_title = f"{key} · running ({stage})"
            result.update(f"{key} is running: {stage} for {since}; its verdict shows here")
            self.query_one("#attempt-patch", Static).update("no patch yet: the attempt is running")
        else:
            self.border_title = f"{key} · not started"
            result.update(f"{key} has not started yet")
            self.query_one("#attempt-patch", Static).update("no patch: not started")
        if moved or ended:
            tabs = self.query_one(TabbedContent)
            tabs.active = "tab-attempt-result" if record is not None else "tab-attempt-agent"

    def show_files(self, key: str, patch: str | None, criteria_log: list[str] | None) -> None:
        """The attempt's patch and criteria log, once read (None: no such file)."""
        if key != self.key:
            return  # the user moved on while the files were read
        self.criteria_log = criteria_log
        if self.record is not None:
            self.query_one("#attempt-result", Static).update(
                result_content(self.record, criteria_log)
            )
        shown: Content | str
        if patch is None:
            shown = "no patch: the attempt changed nothing" if self.record else "no patch yet"
        else:
            shown = patch_content(patch) if patch.strip() else "empty patch"
        self.query_one("#attempt-patch", Static).update(shown)

    def append_log(self, key: str, lines: Iterable[str], *, reset: bool = False) -> None:
        """Lines of attempt `key`'s agent log; it follows the tail only while the view is there."""
        if key != self.key:
            return
        log = self.query_one("#attempt-log", Log)
        if reset:
            log.clear()
            self.following = True
        if log.size.height > 0:  # a hidden log (another tab) keeps its choice
            self.following = log.is_vertical_scroll_end and not log.is_vertical_scrollbar_grabbed
        log.write_lines([line or " " for line in lines], scroll_end=False)
        if self.following:
            log.scroll_end(animate=False, x_axis=False)

    @property
    def log_lines(self) -> list[str]:
        return list(self.query_one("#attempt-log", Log).lines)
