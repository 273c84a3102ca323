"""What the dashboard shows and what each key does, for someone opening it the first time."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Markdown

HELP = """\
# The run dashboard

Everything here is read from the run's files: closing this window (**q**) never stops the run.

| key | what it does |
|---|---|
| **s** | stop: finish the current experiment, then end the run (asks first) |
| **a** | abort: kill the agent now, revert, end the run (asks first) |
| **g** | guidance: free text the next agent receives (empty clears it) |
| **m** | max experiments: change the limit of this run |
| **K** | kill the daemon (only offered when it is hung or ignores an abort); then `expd resume RUN` |
| **enter** | open the selected experiment: its evidence, patch and agent log |
| **escape** | back to the live agent stream (narrow terminals) |
| **q** | detach: leave the dashboard, the daemon keeps running |
| **ctrl+p** | command palette: every action by name |

Requests go to the daemon through `control.json`; the phase bar shows *requested…* until the
daemon acknowledges them.

**Statuses**: `baseline` (experiment 0), `keep` (better beyond noise), `discard` (not better
enough), `crash` (the agent failed or produced nothing), `measure-fail` (the build or the
measurement failed).
"""


class HelpScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll {
        width: 90;
        max-width: 100%;
        height: auto;
        max-height: 100%;
        border: thick $primary 80%;
        background: $surface;
        padding: 0 1;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "dismiss", "Close"),
        Binding("q", "dismiss", "Close", show=False),
        Binding("question_mark", "dismiss", "Close", show=False),
    ]

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Markdown(HELP)
