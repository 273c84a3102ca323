"""The user's requests as the loop sees them: set by control.json and signals, read at safe points."""

from __future__ import annotations

from dataclasses import dataclass, field

import anyio


@dataclass
class Controls:
    """Requests from control.json and signals, read by the loop at safe points."""

    stop: bool = False
    abort: bool = False
    scope: anyio.CancelScope | None = None
    """The experiment's cancel scope while one runs: an abort cancels it."""
    scopes: set[anyio.CancelScope] = field(default_factory=set)
    """With lanes: every lane's turn and every measurement running now; an abort cancels all."""

    def request_abort(self) -> None:
        self.abort = True
        if self.scope is not None:
            self.scope.cancel()
        for scope in self.scopes:
            scope.cancel()
