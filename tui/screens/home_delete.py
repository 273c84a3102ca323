"""The home screen's `d`: delete the selected run (or, on a program's row, the program and its
runs) after a confirmation, through the headless CLI.

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
    """An `expd delete` subprocess finished (successfully or not); `run_id` is the run or the
    program it deleted."""

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
    argv = ["delete", ref.run_id, "--yes", "--json"]
    _confirm(screen, repo, f"Delete run {ref.run_id}?", detail, ref.run_id, argv)


def ask_to_delete_program(
    screen: Screen[Any], repo: Path, program: str, statuses: list[Any]
) -> None:
    """Confirm, then delete program `program` and all its runs; refused while one is active."""
    active = [s.run_id for s in statuses if getattr(s, "daemon", None) in ACTIVE]
    if active:
        screen.notify(f"{active[0]} is running; stop it first", severity="warning")
        return
    count = len(statuses)
    detail = (
        f"Its program files and its {count} run{'' if count == 1 else 's'} (trees, branches, refs, "
        "run directories, results) go. This cannot be undone."
    )
    argv = ["delete", "--program", program, "--yes", "--json"]
    _confirm(screen, repo, f"Delete program {program}?", detail, program, argv)


def _confirm(
    screen: Screen[Any], repo: Path, question: str, detail: str, what: str, argv: list[str]
) -> None:
    def chosen(yes: bool | None) -> None:
        if yes:
            screen.notify(f"deleting {what}…")
            screen.run_worker(
                lambda: _delete_blocking(screen, repo, what, argv),
                thread=True,
                group="home-delete",
                exit_on_error=False,
            )

    screen.app.push_screen(ConfirmScreen(question, detail), chosen)


def _delete_blocking(screen: Screen[Any], repo: Path, what: str, argv: list[str]) -> None:
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "shared.cli.main", *argv],
            cwd=repo,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        screen.post_message(RunDeleted(what, proc.returncode, proc.stderr))
    except (OSError, subprocess.TimeoutExpired) as exc:
        screen.post_message(RunDeleted(what, -1, str(exc)))


def report(screen: Screen[Any], message: RunDeleted) -> None:
    """Tell the user how the delete went."""
    if message.code == 0:
        screen.notify(f"deleted {message.run_id}")
        return
    error = (message.stderr.strip().splitlines() or [f"exit {message.code}"])[-1]
    screen.notify(f"deleting {message.run_id} failed: {error}", severity="error", timeout=10)
