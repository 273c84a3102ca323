"""The user's requests to a bakeoff daemon: `control.json` (sealed by expd's writer) and signals.

stop: start nothing new, let the running attempts finish. abort: cancel the running attempts (their
process groups are killed) and record them `cancelled`. replay: run a recorded attempt's prompt
with another variant. retry: run the errored and timed-out attempts again. SIGTERM/SIGINT stop; a
second one aborts.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass, field
from typing import Protocol

import anyio
import watchfiles

from daemon.bakeoff.store import BakeoffStore
from shared import control
from shared.bakeoffs.paths import BakeoffRunPaths
from shared.schema import ControlRequest

CONTROL_POLL_S = 1.0


@dataclass
class Controls:
    stop: bool = False
    abort: bool = False
    scopes: set[anyio.CancelScope] = field(default_factory=set)
    """The running attempts' cancel scopes: an abort cancels them all."""

    def request_abort(self) -> None:
        self.abort = True
        for scope in self.scopes:
            scope.cancel()


class Work(Protocol):
    """What requests change in the matrix (daemon/bakeoff/matrix.py)."""

    def add_replay(self, value: object) -> str: ...

    def retry_errors(self) -> str: ...

    def wake(self) -> None: ...


@dataclass
class Listener:
    paths: BakeoffRunPaths
    store: BakeoffStore
    controls: Controls
    work: Work

    def handle_pending(self) -> None:
        """Act on every request not acknowledged yet, oldest first, and acknowledge it."""
        requests = control.pending(self.paths, set(self.store.state.acked))
        if not requests:
            return
        for request in requests:
            if control.verified(self.store.key, request):
                outcome = self.apply(request)
            else:
                outcome = "ignored: not written by expd (no valid seal)"
                self.store.state.message = (
                    f"ignored a control request ({request.action}) not written by expd"
                )
            self._record(request, outcome)
            self.store.ack(request.id)
        self.store.save()
        self.work.wake()

    def apply(self, request: ControlRequest) -> str:
        state = self.store.state
        match request.action:
            case "stop":
                self.controls.stop = True
                state.message = "stop requested: the running attempts finish, nothing new starts"
                return "ok"
            case "abort":
                self.controls.request_abort()
                state.message = "abort requested: cancelling the running attempts"
                return "ok"
            case "replay":
                outcome = self.work.add_replay(request.value)
            case "retry" if request.value in (None, "errors"):
                outcome = self.work.retry_errors()
            case _:
                outcome = f"rejected: {request.action} is not a request for a bakeoff run"
        state.message = outcome
        return outcome

    def _record(self, request: ControlRequest, outcome: str) -> None:
        self.store.event(
            "control",
            id=request.id,
            action=request.action,
            key=request.key,
            value=request.value,
            outcome=outcome,
        )

    async def listen(self) -> None:
        """Watch the run directory (an atomic replace arrives as a new file); poll as a backstop."""
        self.handle_pending()

        def only_control(_change: watchfiles.Change, path: str) -> bool:
            return path.endswith("control.json")

        async for _ in watchfiles.awatch(
            self.paths.dir,
            watch_filter=only_control,
            debounce=50,
            step=20,
            rust_timeout=int(CONTROL_POLL_S * 1000),
            yield_on_timeout=True,
            recursive=False,
        ):
            self.handle_pending()

    async def signals(self) -> None:
        """SIGTERM/SIGINT: stop; a second one aborts."""
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as received:
            async for signum in received:
                name = signal.Signals(signum).name
                if self.controls.stop:
                    self.controls.request_abort()
                    self.store.state.message = f"{name} again: aborting"
                else:
                    self.controls.stop = True
                    self.store.state.message = f"{name}: the running attempts finish first"
                self.store.event("control", action="signal", signal=name)
                self.store.save()
                self.work.wake()
