"""Starting the run queue's next entry: the one code path behind `expd queue resume`, `expd queue
add` (which starts an idle queue) and the detached starter a finishing daemon launches.

One starter works at a time (`queue.start.lock`), and a chained one first waits until the daemon
that launched it has released its locks, so queued runs never overlap. Under the start lock the
starter settles what the queue believes (a run that ended makes its entry done or failed; an abort
pauses the queue unless the entry says `--continue-on-abort`), then starts the first queued entry
through `start_run`, exactly as `expd start` would, if no run of the repository is live. A start
that fails is tried again, at most MAX_ATTEMPTS times in all, then the entry is failed with the
reason and the next one is tried.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import msgspec

from daemon.commands.spawn import start_run
from shared import codec
from shared.errors import ContractError, UserError
from shared.liveness import held
from shared.locking import lock_blocking, unlock
from shared.paths import RepoPaths, RunPaths, find_repo_root
from shared.queue import (
    MAX_ATTEMPTS,
    QueueEntry,
    QueueFile,
    QueuePaths,
    active_runs,
    editing,
    run_dir,
)
from shared.schema import RunManifest
from shared.status import ACTIVE, build_status

RETRY_DELAY_S = 1.0
"""Pause before starting an entry again (a daemon slow to come up on a loaded machine)."""
RELEASE_TIMEOUT_S = 300.0
"""How long a chained starter waits for the finishing daemon to release its locks."""

ENDED_WELL = frozenset({"max_experiments", "stagnation", "budget", "stopped"})
"""Endings whose message says nothing the reason does not."""

Action = Literal["started", "busy", "waiting", "paused", "empty"]


class Outcome(msgspec.Struct, kw_only=True):
    """What a starter did: `action` and a sentence for people; the entry it is about, the run it
    started, and the entries it failed or skipped on the way."""

    action: Action
    message: str
    entry: QueueEntry | None = None
    run_id: str | None = None
    given_up: list[QueueEntry] = msgspec.field(default_factory=list)


def resume_queue(
    root: Path,
    *,
    after: Path | None = None,
    unpause: bool = False,
    say: Callable[[str], None] = lambda _: None,
) -> Outcome:
    """Start the next entry if the queue is idle. `after`: the run directory of the daemon that
    launched this starter (waited for); `unpause`: the user asked (`expd queue resume`), so a
    pause after an abort is lifted and an entry whose daemon died is given up on."""
    root = find_repo_root(root)
    if after is not None and not _released(RunPaths(after)):
        return Outcome(action="busy", message=f"the daemon of {after} still holds its locks")
    fd = lock_blocking(QueuePaths(root).start_lock)
    try:
        return _next(root, after=after, unpause=unpause, say=say)
    finally:
        unlock(fd)


def _released(paths: RunPaths) -> bool:
    deadline = time.monotonic() + RELEASE_TIMEOUT_S
    while held(paths):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _next(root: Path, *, after: Path | None, unpause: bool, say: Callable[[str], None]) -> Outcome:
    given_up: list[QueueEntry] = []
    while True:
        with editing(root) as queue:
            busy = settle(root, queue, after=after, unpause=unpause, given_up=given_up)
            if unpause:
                queue.paused = ""
            outcome = _blocked(root, queue, busy)
            if outcome is not None:
                outcome.given_up = given_up
                return outcome
            entry = next(e for e in queue.entries if e.state == "queued")
            if not RepoPaths(root).program(entry.program).toml.is_file():
                _give_up(entry, "skipped", f"program {entry.program!r} no longer exists")
                given_up.append(entry)
                say(f"entry {entry.id} ({entry.program}): skipped: {entry.reason}")
                continue
            entry.state, entry.attempts = "starting", entry.attempts + 1
            entry.started_at, entry.reason = time.time(), ""
            entry_id, program, options, attempt = (
                entry.id,
                entry.program,
                entry.options,
                entry.attempts,
            )
        say(f"entry {entry_id} ({program}): starting (attempt {attempt} of {MAX_ATTEMPTS})")
        try:
            started = start_run(
                root,
                program,
                max_experiments=options.max_experiments,
                agent=options.agent,
                model=options.model,
                fresh=options.fresh,
            )
            error = ""
        except UserError as exc:
            started, error = None, str(exc)
        except Exception as exc:  # the queue must move on; the reason says what happened
            started, error = None, f"internal error: {type(exc).__name__}: {exc}"
        with editing(root) as queue:
            current = queue.find(entry_id)
            if current is None:  # removed while it was starting
                if started is not None:
                    return Outcome(
                        action="started",
                        message=f"started run {started.run_id}",
                        run_id=started.run_id,
                    )
                continue
            if started is not None:
                current.state, current.run_id = "running", started.run_id
                say(f"entry {entry_id} ({program}): started run {started.run_id}")
                return Outcome(
                    action="started",
                    message=f"entry {entry_id}: started run {started.run_id}",
                    entry=current,
                    run_id=started.run_id,
                    given_up=given_up,
                )
            if attempt >= MAX_ATTEMPTS:
                _give_up(current, "failed", f"start failed {attempt} times: {error}")
                given_up.append(current)
                say(f"entry {entry_id} ({program}): failed: {current.reason}")
                continue
            current.state = "queued"
            current.reason = f"start failed (attempt {attempt} of {MAX_ATTEMPTS}): {error}"
            say(f"entry {entry_id} ({program}): {current.reason}")
        time.sleep(RETRY_DELAY_S)


def _blocked(root: Path, queue: QueueFile, busy: QueueEntry | None) -> Outcome | None:
    """Why nothing starts now (None: the first queued entry may start)."""
    if busy is not None:
        why = f": {busy.reason}" if busy.reason else ""
        message = f"entry {busy.id} is {busy.state} (run {busy.run_id}){why}"
        return Outcome(action="busy", message=message, entry=busy)
    waiting = [e for e in queue.entries if e.state == "queued"]
    if not waiting:
        return Outcome(action="empty", message="the queue has no entry waiting")
    if queue.paused:
        message = f"the queue is paused: {queue.paused}"
        return Outcome(action="paused", message=message, entry=waiting[0])
    live = active_runs(root)
    if live:
        waiting[0].reason = f"waiting for run {live[0]} to finish"
        message = f"entry {waiting[0].id}: {waiting[0].reason}"
        return Outcome(action="waiting", message=message, entry=waiting[0])
    return None


def settle(
    root: Path,
    queue: QueueFile,
    *,
    after: Path | None = None,
    unpause: bool = False,
    given_up: list[QueueEntry] | None = None,
) -> QueueEntry | None:
    """Bring the entries the queue thinks are starting or running up to date with their runs
    (the caller holds the start lock); the entry whose run is still live, if any."""
    busy: QueueEntry | None = None
    for entry in queue.entries:
        if entry.state == "starting":
            # Its starter died before it could say how the start went (we hold the start lock).
            adopted = _adopt(root, entry)
            if adopted is None:
                entry.state = "queued" if entry.attempts < MAX_ATTEMPTS else "failed"
                entry.reason = "the starter was interrupted"
                continue
            entry.state, entry.run_id = "running", adopted
        if entry.state != "running" or not entry.run_id:
            continue
        try:
            status = build_status(run_dir(root, entry.run_id), run_id=entry.run_id)
        except ContractError as exc:
            _give_up(entry, "failed", f"its run cannot be read: {exc}")
            continue
        if status.daemon in ACTIVE:
            busy = entry
        elif status.daemon == "finished":
            _finish(queue, entry, status.phase, status.termination_reason, status.message)
        elif unpause:  # dead: interrupted, and the user asked the queue to go on
            _give_up(
                entry,
                "failed",
                f"interrupted: its daemon died (`expd resume {entry.run_id}` continues the run)",
            )
            if given_up is not None:
                given_up.append(entry)
        else:
            entry.reason = (
                f"interrupted: `expd resume {entry.run_id}` continues it, "
                "`expd queue resume` moves on"
            )
            busy = entry
    if after is not None and busy is None:
        _manual_abort(root, queue, RunPaths(after))
    return busy


def _finish(
    queue: QueueFile, entry: QueueEntry, phase: str, reason: str | None, message: str
) -> None:
    ended_well = phase == "complete" and reason in ENDED_WELL
    entry.state = "done" if phase == "complete" and reason != "error" else "failed"
    entry.reason = (reason or phase) + (f": {message}" if message and not ended_well else "")
    entry.finished_at = time.time()
    waiting = any(e.state == "queued" for e in queue.entries)
    if reason == "aborted" and waiting and not entry.options.continue_on_abort:
        queue.paused = f"run {entry.run_id} was aborted (`expd queue resume` goes on)"


def _manual_abort(root: Path, queue: QueueFile, paths: RunPaths) -> None:
    """A run outside the queue that was aborted holds the queue too: an abort means stop."""
    try:
        status = build_status(paths)
    except ContractError:
        return
    waiting = any(e.state == "queued" for e in queue.entries)
    if waiting and queue.by_run(status.run_id) is None and status.termination_reason == "aborted":
        queue.paused = f"run {status.run_id} was aborted (`expd queue resume` goes on)"


def _adopt(root: Path, entry: QueueEntry) -> str | None:
    """The live run an interrupted starter may have launched for `entry` (its program's newest run
    created since the attempt began and held by a daemon)."""
    program = RepoPaths(root).program(entry.program)
    for stamp_dir in sorted(program.runs_dir.glob("*"), reverse=True):
        paths = RunPaths(stamp_dir)
        if not held(paths):
            continue
        try:
            manifest = codec.read_optional(paths.run_json, RunManifest)
        except ContractError:
            manifest = None
        if manifest is None or manifest.created_at < (entry.started_at or 0.0) - 1.0:
            return None
        return manifest.run_id
    return None


def _give_up(entry: QueueEntry, state: Literal["failed", "skipped"], reason: str) -> None:
    entry.state, entry.reason, entry.finished_at = state, reason, time.time()
