"""Ask for one line of text (guidance, a new limit), checked before the modal closes."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static

Check = Callable[[str], str | None]
"""Returns an error message for an unacceptable value, or None."""


def non_negative_int(text: str) -> str | None:
    """The check for limits such as max experiments."""
    try:
        value = int(text.strip())
    except ValueError:
        return "enter a whole number (0 or more)"
    return "enter a whole number (0 or more)" if value < 0 else None


class PromptScreen(ModalScreen[str | None]):
    """Dismisses with the entered text (enter) or None (escape); a failed check keeps it open."""

    DEFAULT_CSS = """
    PromptScreen { align: center middle; }
    PromptScreen > Vertical {
        width: 72;
        max-width: 100%;
        height: auto;
        border: thick $primary 80%;
        background: $surface;
        padding: 1 2;
    }
    PromptScreen #prompt-title { text-style: bold; }
    PromptScreen #prompt-hint { color: $text-muted; margin-bottom: 1; }
    PromptScreen #prompt-error { color: $text-error; text-style: bold; height: auto; }
    PromptScreen #prompt-keys { color: $text-muted; margin-top: 1; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(
        self,
        title: str,
        *,
        hint: str = "",
        value: str = "",
        placeholder: str = "",
        check: Check | None = None,
    ) -> None:
        super().__init__()
        self.title_text = title
        self.hint = hint
        self.value = value
        self.placeholder = placeholder
        self.check = check

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(self.title_text, id="prompt-title", markup=False)
            if self.hint:
                yield Static(self.hint, id="prompt-hint", markup=False)
            yield Input(self.value, placeholder=self.placeholder, id="prompt-input")
            yield Static("", id="prompt-error", markup=False)
            yield Static("enter to send · escape to cancel", id="prompt-keys")

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        error = self.check(event.value) if self.check is not None else None
        if error is not None:
            self.query_one("#prompt-error", Static).update(error)
            return
        self.dismiss(event.value)

    @on(Input.Changed)
    def _changed(self) -> None:
        self.query_one("#prompt-error", Static).update("")

    def action_cancel(self) -> None:
        self.dismiss(None)
