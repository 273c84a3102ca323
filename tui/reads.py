"""The TUI's file reads on request, off the event loop: the home screen's listing, read in a
thread worker and posted back as a `tui.messages` message.

Screens hold a source and call its methods; they never call a reader themselves.
"""

from __future__ import annotations

import threading
from functools import partial
from pathlib import Path

from textual.message_pump import MessagePump

from shared.listing import ProgramListing, program_listing
from shared.paths import RepoPaths
from tui.messages import ProgramsListed


def read_listing(root: Path) -> tuple[list[ProgramListing], dict[str, int]]:
    """`expd list`'s programs and runs (a few small files per run), and each valid program's
    default number of experiments (what the new-run dialog proposes)."""
    from shared.programs import load_program

    programs = program_listing(root)
    limits: dict[str, int] = {}
    for entry in programs:
        try:
            config = load_program(RepoPaths(root).program(entry.program))
        except Exception:  # an invalid program.toml is already reported in entry.error
            continue
        limits[entry.program] = config.loop.max_experiments
    return programs, limits


class ListingSource:
    """The home screen's programs and runs, re-read on each `refresh` in a thread worker of the
    target and posted as `ProgramsListed`; a refresh while one is under way is dropped."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._busy = threading.Lock()

    def refresh(self, target: MessagePump) -> None:
        if not self._busy.acquire(blocking=False):
            return
        target.run_worker(  # type: ignore[attr-defined]
            partial(self._list, target),
            name="listing",
            group="home-refresh",
            thread=True,
            exit_on_error=False,
        )

    def _list(self, target: MessagePump) -> None:
        try:
            programs, max_experiments = read_listing(self.root)
        finally:
            self._busy.release()
        target.post_message(ProgramsListed(programs, max_experiments))
