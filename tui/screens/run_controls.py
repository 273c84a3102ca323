"""The dashboard's requests to the daemon: stop, abort, guidance, max experiments, and the last resort.

Every request goes through `control.json` with an id (written in a thread worker) and shows as
"requested…" until the daemon acknowledges the id in `state.json`. An abort the daemon ignores is
escalated: after `abort_timeout` seconds the screen offers to SIGKILL the daemon's pid.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from typing import TYPE_CHECKING

from textual import work

from shared import control
from shared.errors import ContractError
from shared.schema import TERMINAL_PHASES, RunState
from tui.screens.confirm import ConfirmScreen
from tui.screens.prompt import PromptScreen, non_negative_int
from tui.widgets.phase_bar import PhaseView

if TYPE_CHECKING:
    from shared.runs import RunRef
    from tui.source import Source

ABORT_TIMEOUT_S = 5.0
"""A daemon acknowledges within a second or two (its control watch has a 1 s backstop)."""

Kill = Callable[[int, int], None]
CONTROL_ACTIONS = ("stop", "abort", "guidance", "max_experiments")


class RunControls:
    """Mixed into RunScreen (a Screen): it owns `view`, `requested` and the control actions."""

    ref: RunRef
    source: Source
    state: RunState | None
    view: PhaseView
    requested: dict[str, str]
    """Sent, not yet acknowledged: request id → what the phase bar calls it."""

    if TYPE_CHECKING:
        from textual.app import App
        from textual.timer import Timer

        app: App[object]

        def notify(self, message: str, **kwargs: object) -> None: ...
        def set_timer(self, delay: float, callback: Callable[[], object]) -> Timer: ...
        def refresh_phase(self) -> None: ...

    def init_controls(self, *, abort_timeout: float, kill: Kill) -> None:
        self.view = PhaseView()
        self.requested = {}
        self.aborts: set[str] = set()
        self.abort_timeout = abort_timeout
        self.kill_process = kill

    def check_control(self, action: str) -> bool | None:
        """Footer and palette: kill only when it is the way out; requests not to a finished run."""
        if action == "kill":
            return self.view.killable
        if action in CONTROL_ACTIONS and (self.view.finished or self.view.newer_version):
            return None  # shown disabled: there is no daemon to listen
        return True

    # ------------------------------------------------------------------ the actions

    def action_stop(self) -> None:
        question = "Stop the run?"
        detail = "The current experiment finishes and is recorded, then the run ends."
        self.ask(question, detail, "Stop", lambda: self.send("stop", label="stop"))

    def action_abort(self) -> None:
        question = "Abort the run now?"
        detail = (
            "The agent is killed, the worktree reverted, and the experiment recorded as a crash."
        )
        self.ask(question, detail, "Abort", lambda: self.send("abort", label="abort"))

    def action_guidance(self) -> None:
        def done(text: str | None) -> None:
            if text is not None:
                text = text.strip()
                self.send("set", "guidance", text, label="guidance" if text else "clear guidance")

        current = self.state.guidance if self.state is not None else ""
        self.app.push_screen(
            PromptScreen(
                "Guidance for the next agent",
                hint="The next experiment's agent receives this text. Empty clears it.",
                value=current,
                placeholder="e.g. try caching the parsed config; do not touch the tests",
            ),
            done,
        )

    def action_max_experiments(self) -> None:
        def done(text: str | None) -> None:
            if text is not None:
                value = int(text.strip())
                self.send("set", "max_experiments", value, label=f"max experiments {value}")

        state = self.state
        hint = (
            f"Now {state.max_experiments}; experiment {state.experiment} is the latest."
            if state is not None
            else "The run ends after this many experiments."
        )
        self.app.push_screen(
            PromptScreen("Max experiments", hint=hint, check=non_negative_int), done
        )

    def action_kill(self) -> None:
        if not self.view.killable:
            return
        probe = self.view.probe
        pid = probe.pid if probe is not None else None
        shown = f" (pid {pid})" if pid else ""
        detail = (
            "Nothing recorded is lost: the experiment in flight is recorded as interrupted "
            f"when you resume with: expd resume {self.ref.run_id}"
        )
        self.ask(f"Kill the daemon{shown} with SIGKILL?", detail, "Kill", lambda: self.kill(pid))

    def ask(self, question: str, detail: str, yes: str, then: Callable[[], object]) -> None:
        def answered(ok: bool | None) -> None:
            if ok:
                then()

        self.app.push_screen(ConfirmScreen(question, detail, yes=yes), answered)

    # ------------------------------------------------------------------ requests and acks

    @work(thread=True, group="control", exit_on_error=False)
    def send(
        self, action: str, key: str | None = None, value: object = None, *, label: str
    ) -> None:
        """Write the request (a locked read-modify-write of control.json) off the event loop."""
        try:
            request_id = control.send(self.ref.paths, action, key, value, source="tui")
        except (OSError, ContractError, ValueError) as exc:
            self.app.call_from_thread(
                self.notify, f"could not send {label}: {exc}", severity="error"
            )
            return
        self.app.call_from_thread(self.sent, request_id, action, label)

    def sent(self, request_id: str, action: str, label: str) -> None:
        if self.state is not None and request_id in self.state.acked:
            return  # the acknowledgement overtook us
        self.requested[request_id] = label
        if action == "abort":
            self.aborts.add(request_id)
            self.set_timer(self.abort_timeout, lambda: self.abort_overdue(request_id))
        self.refresh_phase()

    def abort_overdue(self, request_id: str) -> None:
        if request_id not in self.requested or self.view.finished:
            return
        self.view.abort_unacked = True
        self.notify(
            f"the daemon has not acknowledged the abort after {self.abort_timeout:g}s — "
            "press K to kill it",
            severity="warning",
            timeout=10,
        )
        self.refresh_phase()

    def collect_acks(self, state: RunState) -> None:
        acked = set(state.acked)
        for request_id in [r for r in self.requested if r in acked]:
            label = self.requested.pop(request_id)
            self.aborts.discard(request_id)
            self.notify(f"{label}: acknowledged by the daemon", timeout=4)
        if not self.aborts or state.phase in TERMINAL_PHASES:
            self.view.abort_unacked = False

    # ------------------------------------------------------------------ the last resort

    @work(thread=True, group="control", exit_on_error=False)
    def kill(self, pid: int | None) -> None:
        if not pid:
            pid = self.source.daemon_pid()  # a blocking read: this is a thread worker
        if not pid or pid == os.getpid():
            self.app.call_from_thread(
                self.notify, "no daemon pid known: see daemon.json", severity="error"
            )
            return
        try:
            self.kill_process(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass  # already gone: the outcome the user asked for
        except OSError as exc:
            self.app.call_from_thread(self.notify, f"could not kill {pid}: {exc}", severity="error")
            return
        self.app.call_from_thread(self.killed, pid)

    def killed(self, pid: int) -> None:
        self.view.abort_unacked = False
        self.notify(
            f"daemon (pid {pid}) killed — resume with: expd resume {self.ref.run_id}",
            severity="warning",
            timeout=15,
        )
        self.refresh_phase()
