"""The home screen's `d`: delete the selected run after a confirmation, through the headless CLI.

The work is `expd delete RUN --yes --json` in a subprocess started from a thread worker, like the
home's start and resume: nothing blocks the event loop and the TUI never imports the daemon. An
active run is refused before anything is asked (stop it first).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from textual.message import Message
from textual.screen import Screen

from shared.runs import RunRef
from shared.status import ACTIVE
from tui.screens.confirm import ConfirmScreen


class RunDeleted(Message):
    """An `expd delete` subprocess finished (successfully or not)."""

    def __init__(self, run_id: str, code: int, stderr: str) -> None:
        super().__init__()
        self.run_id, self.code, self.stderr = run_id, code, stderr


def ask_to_delete(screen: Screen[Any], repo: Path, ref: RunRef | None, status: Any) -> None:
    """Confirm, then delete `ref` in a worker; hints instead when nothing can be deleted."""
    if ref is None:
        screen.notify("select a run to delete it")
        return
    daemon = getattr(status, "daemon", None)
    if daemon in ACTIVE:
        screen.notify(
            f"run {ref.run_id} is {daemon}; stop it first (open it and press s)", severity="warning"
        )
        return
    detail = (
        "Its trees, branch, pinned refs, run directory and results go; a review branch "
        "named by --branch stays. This cannot be undone."
    )

    def chosen(yes: bool | None) -> None:
        if yes:
            screen.notify(f"deleting {ref.run_id}…")
            screen.run_worker(
                lambda: _delete_blocking(screen, repo, ref.run_id),
                thread=True,
                group="home-delete",
                exit_on_error=False,
            )

    screen.app.push_screen(ConfirmScreen(f"Delete run {ref.run_id}?", detail), chosen)


def _delete_blocking(screen: Screen[Any], repo: Path, run_id: str) -> None:
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "shared.cli.main", "delete", run_id, "--yes", "--json"],
            cwd=repo,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        screen.post_message(RunDeleted(run_id, proc.returncode, proc.stderr))
    except (OSError, subprocess.TimeoutExpired) as exc:
        screen.post_message(RunDeleted(run_id, -1, str(exc)))


def report(screen: Screen[Any], message: RunDeleted) -> None:
    """Tell the user how the delete went."""
    if message.code == 0:
        screen.notify(f"deleted {message.run_id}")
        return
    error = (message.stderr.strip().splitlines() or [f"exit {message.code}"])[-1]
    screen.notify(f"deleting {message.run_id} failed: {error}", severity="error", timeout=10)
