"""The home screen's `e`: queue a run of the selected program, through the headless CLI.

The work is `expd queue add PROGRAM --json` in a subprocess started from a thread worker, like the
home's start, resume and delete: nothing blocks the event loop and the TUI never imports the
daemon. An idle queue starts its entry at once; otherwise the entry waits for the runs before it
(the queue panel shows it either way).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import msgspec
from textual.message import Message
from textual.screen import Screen


class Queued(msgspec.Struct, kw_only=True):
    """What `expd queue add --json` prints that the home screen tells the user."""

    class Entry(msgspec.Struct, kw_only=True):
        id: int
        program: str

    added: Entry
    action: str
    message: str = ""
    run_id: str | None = None


class ProgramQueued(msgspec.Struct, frozen=True):
    """An `expd queue add` subprocess finished (successfully or not)."""

    program: str
    code: int
    stdout: str
    stderr: str


class QueueAdded(Message):
    def __init__(self, result: ProgramQueued) -> None:
        super().__init__()
        self.result = result


def queue_program(screen: Screen[Any], repo: Path, program: str) -> None:
    """Add `program` to the repository's queue in a worker; `report` tells how it went."""
    screen.notify(f"queueing {program}…")
    screen.run_worker(
        lambda: _add_blocking(screen, repo, program),
        thread=True,
        group="home-queue",
        exit_on_error=False,
    )


def _add_blocking(screen: Screen[Any], repo: Path, program: str) -> None:
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "shared.cli.main", "queue", "add", program, "--json"],
            cwd=repo,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        result = ProgramQueued(program, proc.returncode, proc.stdout, proc.stderr)
    except (OSError, subprocess.TimeoutExpired) as exc:
        result = ProgramQueued(program, -1, "", str(exc))
    screen.post_message(QueueAdded(result))


def report(screen: Screen[Any], result: ProgramQueued) -> None:
    """Tell the user where the entry went: started at once, or waiting (and why)."""
    if result.code != 0:
        error = (result.stderr.strip().splitlines() or [f"exit {result.code}"])[-1]
        screen.notify(f"queueing {result.program} failed: {error}", severity="error", timeout=10)
        return
    try:
        out = msgspec.json.decode(result.stdout, type=Queued)
    except msgspec.DecodeError:
        screen.notify(f"queued {result.program}")
        return
    entry = f"queued {out.added.program} (entry {out.added.id})"
    if out.action == "started" and out.run_id:
        screen.notify(f"{entry}: started run {out.run_id}")
    else:
        screen.notify(f"{entry}: {out.message}" if out.message else entry)
