"""The TUI's file reads on request rather than by watching, all off the event loop: an experiment's
files, the daemon's pid and the home screen's listing, read in thread workers and posted back as
`tui.messages` (the daemon's pid is for a control worker, which calls for it from its thread).

Screens hold a source and call its methods; they never call a reader themselves.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from functools import partial
from pathlib import Path

from textual.message import Message
from textual.message_pump import MessagePump
from textual.worker import get_current_worker

from shared import codec
from shared.errors import ContractError
from shared.listing import BakeoffListing, ProgramListing, bakeoff_listing, program_listing
from shared.paths import RepoPaths, RunPaths
from shared.schema import DaemonInfo
from shared.tail import last_bytes
from tui.messages import ExperimentLoaded, ProgramsListed

LOG_TAIL_BYTES = 512 * 1024
"""How much of a finished experiment's agent log to show (its end); `expd logs` shows the rest."""
PATCH_BYTES = 512 * 1024


def read_tail(path: Path, max_bytes: int) -> list[str] | None:
    """The last complete lines within `max_bytes` of `path`, or None if it does not exist."""
    got = last_bytes(path, max_bytes)
    if got is None:
        return None
    data, start = got
    lines = data.decode("utf-8", errors="replace").splitlines()
    if start > 0 and lines:
        lines[0] = f"… {start} earlier bytes not shown (expd logs shows them) …"
    return lines


def read_head(path: Path, max_bytes: int) -> str | None:
    """The patch's first `max_bytes`, marked when there is more."""
    try:
        with path.open("rb") as f:
            data = f.read(max_bytes + 1)
    except FileNotFoundError:
        return None
    text = data[:max_bytes].decode("utf-8", errors="replace")
    return text + "\n… (truncated)" if len(data) > max_bytes else text


def read_experiment(paths: RunPaths, experiment: int) -> tuple[str | None, list[str] | None]:
    """An experiment's patch (its head) and agent log (its tail); None for a missing file."""
    log = read_tail(paths.agent_log(experiment), LOG_TAIL_BYTES)
    patch = read_head(paths.patch(experiment), PATCH_BYTES)
    return patch, log


def read_daemon_pid(paths: RunPaths) -> int | None:
    """The pid `daemon.json` names, or None when it is missing, unreadable or names none."""
    try:
        info = codec.read_optional(paths.daemon_json, DaemonInfo)
    except ContractError:
        return None
    return info.pid if info is not None and info.pid else None


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


class RunFiles:
    """A run's files read on request, in thread workers of the target: shared by `RunSource`
    and the scripted sources of tests, so those read exactly what the real one would."""

    paths: RunPaths
    target: MessagePump | None
    """Where `load_experiment` posts (the attached screen); None while detached."""

    def load_experiment(self, experiment: int) -> None:
        target = self.target
        if target is None:
            return
        target.run_worker(  # type: ignore[attr-defined]
            partial(self._load_experiment, target, experiment),
            name=f"experiment-files {experiment}",
            group="experiment-files",
            thread=True,
            exclusive=True,
            exit_on_error=False,
        )

    def _load_experiment(self, target: MessagePump, experiment: int) -> None:
        patch, log = read_experiment(self.paths, experiment)
        if not get_current_worker().is_cancelled:
            target.post_message(ExperimentLoaded(experiment, patch, log))

    def daemon_pid(self) -> int | None:
        return read_daemon_pid(self.paths)


class RepoReader(ABC):
    """Re-reads something of the repository on each `refresh` in a thread worker of the target and
    posts what `read` returns; a refresh while one is under way is dropped."""

    name = "repo"

    def __init__(self, root: Path) -> None:
        self.root = root
        self._busy = threading.Lock()

    def refresh(self, target: MessagePump) -> None:
        if not self._busy.acquire(blocking=False):
            return
        target.run_worker(  # type: ignore[attr-defined]
            partial(self._run, target),
            name=self.name,
            group=f"home-{self.name}",
            thread=True,
            exit_on_error=False,
        )

    @abstractmethod
    def read(self) -> Message:
        """What to post: runs in the worker thread, never on the event loop."""

    def _run(self, target: MessagePump) -> None:
        try:
            message = self.read()
        finally:
            self._busy.release()
        target.post_message(message)


class ListingSource(RepoReader):
    """The home screen's programs, bakeoffs and runs, posted as `ProgramsListed`."""

    name = "refresh"

    def read(self) -> Message:
        programs, max_experiments = read_listing(self.root)
        bakeoffs: list[BakeoffListing] = bakeoff_listing(self.root)
        return ProgramsListed(programs, max_experiments, bakeoffs)
