"""The live stream of the experiment in flight: bounded, and it follows the tail only at the tail."""

from __future__ import annotations

from collections.abc import Iterable

from textual.widgets import Log

MAX_LINES = 5000
"""An agent can talk for hours; memory stays flat and the newest lines are what matter."""


class AgentLog(Log):
    """Follows the tail while the view is at the bottom (or hidden); a user who scrolled up stays."""

    DEFAULT_CSS = """
    AgentLog {
        border: round $primary 50%;
        border-title-color: $text;
        padding: 0 1;
        overflow: auto auto;
    }
    AgentLog:focus { border: round $primary; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(max_lines=MAX_LINES, auto_scroll=True, id=id)
        self.experiment: int | None = None
        self.following = True
        self.border_title = "agent"

    def append(self, experiment: int, lines: Iterable[str], *, reset: bool = False) -> None:
        """Add lines of `experiment`'s log; a reset or another experiment starts over."""
        if reset or experiment != self.experiment:
            self.clear()
            self.experiment = experiment
            self.border_title = f"agent · #{experiment}" if experiment else "agent"
            self.following = True
        if self.size.height > 0:  # a hidden log (narrow layout, detail open) keeps its choice
            self.following = self.is_vertical_scroll_end and not self.is_vertical_scrollbar_grabbed
        # Log drops empty strings (splitlines of ""), so blank lines keep one space.
        self.write_lines([line or " " for line in lines], scroll_end=False)
        if self.following:
            # After the layout: with `overflow: auto` the scrollbar (and so scrolling) appears then.
            self.scroll_end(animate=False, x_axis=False)
