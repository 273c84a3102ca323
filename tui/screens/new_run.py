"""The "new run" dialog: how many experiments and which agent, then the home screen starts it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select

from shared.schema import AGENT_KINDS


@dataclass(frozen=True)
class NewRun:
    program: str
    max_experiments: int
    agent: str


class NewRunScreen(ModalScreen[NewRun | None]):
    """Dismisses with the choice, or None when cancelled."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, program: str, max_experiments: int, agent: str) -> None:
        super().__init__()
        self.program = program
        self.default_max = max_experiments
        self.default_agent = agent

    def compose(self) -> ComposeResult:
        kinds = list(dict.fromkeys([self.default_agent, *AGENT_KINDS]))
        with Vertical(id="new-run-dialog"):
            yield Label(f"New run of {self.program}", id="new-run-title")
            yield Label("Max experiments")
            yield Input(str(self.default_max), type="integer", id="new-run-max")
            yield Label("Agent")
            yield Select(
                [(k, k) for k in kinds],
                value=self.default_agent,
                allow_blank=False,
                id="new-run-agent",
            )
            yield Label("", id="new-run-error")
            with Horizontal(id="new-run-buttons"):
                yield Button("Start", variant="primary", id="new-run-start")
                yield Button("Cancel", id="new-run-cancel")

    def on_mount(self) -> None:
        self.query_one("#new-run-max", Input).focus()

    @on(Input.Submitted)
    @on(Button.Pressed, "#new-run-start")
    def action_start(self) -> None:
        text = self.query_one("#new-run-max", Input).value.strip()
        if not text.isdigit() or int(text) < 1:
            self.query_one("#new-run-error", Label).update("max experiments: a whole number ≥ 1")
            return
        agent = self.query_one("#new-run-agent", Select).value
        self.dismiss(NewRun(self.program, int(text), str(agent)))

    @on(Button.Pressed, "#new-run-cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
