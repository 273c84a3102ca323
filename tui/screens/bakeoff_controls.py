"""The bakeoff dashboard's requests to the daemon: stop and abort, each after a confirmation.

A request goes through `control.json` with an id (written in a thread worker) and shows in the
header as "requested…" until the daemon acknowledges the id in `state.json`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual import work

from shared import control
from shared.bakeoffs.schema import BakeoffState
from shared.errors import ContractError
from tui.screens.confirm import ConfirmScreen

if TYPE_CHECKING:
    from textual.app import App

    from shared.runs import RunRef


class BakeoffControls:
    """Mixed into BakeoffScreen (a Screen), which owns `ref`, `state` and `refresh_header`."""

    ref: RunRef
    state: BakeoffState | None
    requested: dict[str, str]
    """Sent, not yet acknowledged: request id → what the header calls it."""

    if TYPE_CHECKING:
        app: App[object]

        def notify(self, message: str, **kwargs: object) -> None: ...
        def refresh_header(self) -> None: ...

    def action_stop(self) -> None:
        self.ask(
            "Stop the bakeoff?",
            "No new attempts start; those in flight finish and are recorded. "
            f"Continue later with: expd bakeoff resume {self.ref.run_id}",
            "Stop",
            "stop",
        )

    def action_abort(self) -> None:
        self.ask(
            "Abort the bakeoff now?",
            "Attempts in flight are killed and recorded as cancelled (a resume runs them again).",
            "Abort",
            "abort",
        )

    def ask(self, question: str, detail: str, yes: str, action: str) -> None:
        def answered(ok: bool | None) -> None:
            if ok:
                self.send(action)

        self.app.push_screen(ConfirmScreen(question, detail, yes=yes), answered)

    @work(thread=True, group="control", exit_on_error=False)
    def send(self, action: str) -> None:
        """Write the request (a locked read-modify-write of control.json) off the event loop."""
        try:
            request_id = control.send(self.ref.paths, action, source="tui")
        except (OSError, ContractError, ValueError) as exc:
            self.app.call_from_thread(
                self.notify, f"could not send {action}: {exc}", severity="error"
            )
            return
        self.app.call_from_thread(self.sent, request_id, action)

    def sent(self, request_id: str, label: str) -> None:
        if self.state is not None and request_id in self.state.acked:
            return  # the acknowledgement overtook us
        self.requested[request_id] = label
        self.refresh_header()

    def collect_acks(self, state: BakeoffState) -> None:
        for request_id in [r for r in self.requested if r in state.acked]:
            label = self.requested.pop(request_id)
            self.notify(f"{label}: acknowledged by the daemon", timeout=4)
