"""The run queue of a repository: `.expd/queue.json`, its entries, and the edits people make to it.

The queue chains runs back to back: one entry runs at a time, and it starts only when no run of
the repository has a live daemon (two measured runs on one machine would make each other noisy).
Every change is a read-modify-write under `queue.lock`, written atomically, so `expd queue add`,
a finishing daemon's starter and the TUI never lose each other's edits. Starting entries is
`daemon/commands/queue_runner.py`'s work; this module is the contract and the plain edits, usable
without argparse (they return structs).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import msgspec

from shared import codec
from shared.atomic import write_atomic
from shared.errors import UserError
from shared.locking import is_locked, lock_blocking, unlock
from shared.paths import RepoPaths, RunPaths, check_program_name, run_id
from shared.schema import AGENT_KINDS

EntryState = Literal["queued", "starting", "running", "done", "failed", "skipped"]
PENDING = frozenset({"queued", "starting", "running"})
"""States of an entry the queue has not finished with."""
MAX_ATTEMPTS = 3
"""A start that fails is retried at most twice, then the entry is marked failed."""


class QueueOptions(msgspec.Struct, kw_only=True, omit_defaults=True):
    """What `expd start` would be given for the entry, and whether an abort lets the queue go on."""

    max_experiments: int | None = None
    agent: str | None = None
    model: str | None = None
    fresh: bool = False
    continue_on_abort: bool = False


class QueueEntry(msgspec.Struct, kw_only=True):
    """One queued run: `state` moves queued → starting → running → done | failed (or skipped)."""

    id: int
    program: str
    options: QueueOptions = msgspec.field(default_factory=QueueOptions)
    state: EntryState = "queued"
    run_id: str | None = None
    attempts: int = 0
    """Starts tried so far (at most MAX_ATTEMPTS)."""
    reason: str = ""
    """Why it failed, was skipped or is waiting; how its run ended once done."""
    added_at: float = 0.0
    started_at: float | None = None
    """When its run was started (the last attempt)."""
    finished_at: float | None = None
    """When the queue saw its run over (the daemon's locks released) or gave up on it."""


class QueueFile(msgspec.Struct, kw_only=True):
    """`.expd/queue.json`: the entries in order, and why the queue is paused (empty when not)."""

    schema_version: int = 1
    next_id: int = 1
    paused: str = ""
    entries: list[QueueEntry] = msgspec.field(default_factory=list)

    def pending(self) -> list[QueueEntry]:
        return [e for e in self.entries if e.state in PENDING]

    def find(self, entry_id: int) -> QueueEntry | None:
        return next((e for e in self.entries if e.id == entry_id), None)

    def by_run(self, rid: str) -> QueueEntry | None:
        return next((e for e in self.entries if e.run_id == rid), None)


class QueuedStatus(msgspec.Struct, kw_only=True):
    """A queued entry in `expd status --all --json`, after the runs. `kind` tells it from a run
    (as it tells a bakeoff run from a program run); it has no run yet, so `run_id` and `daemon`
    are null and `phase` is "queued", which no run ever has."""

    kind: Literal["queued"] = "queued"
    run_id: None = None
    program: str
    phase: Literal["queued"] = "queued"
    daemon: None = None
    queue_id: int
    position: int
    """1 for the next entry to start."""
    repo: str
    attempts: int
    reason: str
    added_at: float
    options: QueueOptions


@dataclass(frozen=True)
class QueuePaths:
    """A repository's queue files, all in `.expd/`."""

    root: Path

    @property
    def file(self) -> Path:
        return RepoPaths(self.root).expd / "queue.json"

    @property
    def lock(self) -> Path:
        """Held for each read-modify-write of `queue.json` (briefly)."""
        return RepoPaths(self.root).expd / "queue.lock"

    @property
    def start_lock(self) -> Path:
        """Held by the one starter at work (for as long as it takes to start an entry)."""
        return RepoPaths(self.root).expd / "queue.start.lock"

    @property
    def log(self) -> Path:
        """What the detached starters a finishing daemon launches print."""
        return RepoPaths(self.root).expd / "queue.log"


def read_queue(root: Path) -> QueueFile:
    """The queue as it is now (an atomic replace: no lock needed to read); empty if none."""
    return codec.read_optional(QueuePaths(root).file, QueueFile) or QueueFile()


@contextlib.contextmanager
def editing(root: Path) -> Iterator[QueueFile]:
    """The queue, locked, written back atomically when the block ends without an error."""
    paths = QueuePaths(root)
    paths.file.parent.mkdir(parents=True, exist_ok=True)
    fd = lock_blocking(paths.lock)
    try:
        queue = read_queue(root)
        yield queue
        write_atomic(paths.file, codec.encode(queue))
    finally:
        unlock(fd)


def check_options(options: QueueOptions) -> None:
    if options.max_experiments is not None and options.max_experiments < 0:
        raise UserError("--max-experiments must be ≥ 0")
    if options.agent is not None and options.agent not in AGENT_KINDS:
        raise UserError(
            f"unknown agent kind {options.agent!r}: use one of {', '.join(AGENT_KINDS)}"
        )


def add(root: Path, program: str, options: QueueOptions | None = None) -> QueueEntry:
    """Append an entry; a program already waiting or running in the queue cannot be added again."""
    from shared.programs import load_program

    options = options or QueueOptions()
    check_options(options)
    load_program(RepoPaths(root).program(check_program_name(program)))  # exists and is valid
    with editing(root) as queue:
        for entry in queue.pending():
            if entry.program == program:
                raise UserError(
                    f"program {program!r} is already in the queue (entry {entry.id}, "
                    f"{entry.state}): remove it first (expd queue remove {entry.id})"
                )
        entry = QueueEntry(id=queue.next_id, program=program, options=options, added_at=time.time())
        queue.next_id += 1
        queue.entries.append(entry)
    return entry


def list_queue(root: Path) -> QueueFile:
    """Every entry, the finished ones too, oldest first."""
    return read_queue(root)


def remove(root: Path, entry_id: int) -> QueueEntry:
    """Take an entry out of the queue; one whose run is live is refused (stop the run instead)."""
    with editing(root) as queue:
        entry = queue.find(entry_id)
        if entry is None:
            known = ", ".join(str(e.id) for e in queue.entries) or "none"
            raise UserError(f"no queue entry {entry_id} (entries: {known})")
        if entry.state in ("starting", "running") and run_is_live(root, entry.run_id):
            raise UserError(
                f"entry {entry_id} is {entry.state} (run {entry.run_id}): stop the run with "
                f"`expd stop {entry.run_id}` instead"
            )
        queue.entries.remove(entry)
    return entry


def clear(root: Path) -> list[QueueEntry]:
    """Remove every entry except the one whose run is live; the removed entries."""
    with editing(root) as queue:
        kept = [
            e
            for e in queue.entries
            if e.state in ("starting", "running") and run_is_live(root, e.run_id)
        ]
        removed = [e for e in queue.entries if e not in kept]
        queue.entries = kept
        queue.paused = ""
    return removed


def queued_statuses(repos: Iterable[Path]) -> list[QueuedStatus]:
    """The entries waiting in each repository's queue (a repository without one costs a stat)."""
    out: list[QueuedStatus] = []
    for repo in dict.fromkeys(r.resolve() for r in repos):
        if not QueuePaths(repo).file.is_file():
            continue
        waiting = [e for e in read_queue(repo).entries if e.state == "queued"]
        for position, entry in enumerate(waiting, 1):
            out.append(
                QueuedStatus(
                    program=entry.program,
                    queue_id=entry.id,
                    position=position,
                    repo=str(repo),
                    attempts=entry.attempts,
                    reason=entry.reason,
                    added_at=entry.added_at,
                    options=entry.options,
                )
            )
    return out


def run_dir(root: Path, rid: str) -> RunPaths:
    program, _, stamp = rid.partition("/")
    return RepoPaths(root).program(program).run(stamp)


def run_is_live(root: Path, rid: str | None) -> bool:
    """Whether a daemon holds the run `rid` (through either of its locks)."""
    if not rid:
        return False
    paths = run_dir(root, rid)
    return is_locked(paths.daemon_lock) or is_locked(paths.dir)


def active_runs(root: Path) -> list[str]:
    """The program runs of the repository whose daemon is alive now (the queue waits for them)."""
    repo = RepoPaths(root)
    out = []
    for name in repo.program_names():
        program = repo.program(name)
        if not is_locked(program.active_lock):
            continue
        for stamp_dir in sorted(program.runs_dir.glob("*"), reverse=True):
            paths = RunPaths(stamp_dir)
            if is_locked(paths.daemon_lock) or is_locked(paths.dir):
                out.append(run_id(name, stamp_dir.name))
                break
        else:
            out.append(f"{name}/(starting)")
    return out


def describe(entry: QueueEntry) -> str:
    """The entry's start options as the command line would spell them."""
    o = entry.options
    words = []
    if o.max_experiments is not None:
        words.append(f"--max-experiments {o.max_experiments}")
    if o.agent:
        words.append(f"--agent {o.agent}")
    if o.model:
        words.append(f"--model {o.model}")
    if o.fresh:
        words.append("--fresh")
    if o.continue_on_abort:
        words.append("--continue-on-abort")
    return " ".join(words)
