"""The one place the TUI watches a bakeoff run directory, turning file changes into messages.

Like `tui.source.RunSource` for a program run: a thread worker of the screen watches the run
directory with watchfiles (the directory itself, not recursively: the attempts' folders and
expd's git dirs churn, and only the run's own files matter), re-reads `state.json` and
`marks.jsonl` when they change, reads only the bytes appended to `attempts.jsonl`, and follows the
selected attempt's `agent.log` by byte offset. Every wake-up (a change, or `poll_s` without one)
re-checks all of it with a few stats, so a newly selected attempt's log shows within `poll_s`.
Screens never read files; `load_attempt` reads an attempt's patch and criteria log on request.
"""

from __future__ import annotations

import threading
from functools import partial
from typing import Protocol

from textual.message_pump import MessagePump
from textual.worker import get_current_worker

from shared import codec
from shared.bakeoffs.grading import apply_marks, decode_attempt, graded, read_marks
from shared.bakeoffs.paths import AttemptPaths, BakeoffRunPaths
from shared.bakeoffs.schema import PHASES, AttemptRecord, BakeoffManifest, BakeoffState, Mark
from shared.errors import ContractError
from shared.liveness import Liveness, probe
from shared.schema import SCHEMA_VERSION
from shared.tail import TailReader, tail_lines
from tui.bakeoff_messages import (
    AttemptFilesLoaded,
    AttemptLogAppended,
    AttemptsUpdated,
    BakeoffOpened,
    BakeoffStateChanged,
)
from tui.messages import LivenessChanged, SourceProblem
from tui.reads import LOG_TAIL_BYTES, PATCH_BYTES, read_daemon_pid, read_head, read_tail
from tui.source import LOG_BACKLOG_LINES, LOG_MESSAGE_LINES, LOG_SKIP_BYTES
from tui.watcher import DirectoryWatcher, signature


class BakeoffSourceLike(Protocol):
    """What a bakeoff screen is fed by (tests may substitute a scripted one)."""

    def follow(self, key: str | None) -> None:
        """Stream this attempt's agent log (`task/variant/attempt`), its recent past first."""

    def load_attempt(self, key: str) -> None:
        """Read the attempt's patch and criteria log off the event loop; post AttemptFilesLoaded."""

    def daemon_pid(self) -> int | None:
        """The pid daemon.json names. Blocking: call it from a thread worker."""


def split_key(key: str) -> tuple[str, str, int]:
    """`task/variant/attempt` → its parts (ids never contain `/`)."""
    task, variant, attempt = key.rsplit("/", 2)
    return task, variant, int(attempt)


def attempt_files(paths: BakeoffRunPaths, key: str) -> AttemptPaths:
    return paths.attempt(*split_key(key))


def newer_version_problem(state: BakeoffState) -> str | None:
    """Why this state cannot be shown by this expd, or None if it can."""
    if state.schema_version > SCHEMA_VERSION or state.phase not in PHASES:
        return (
            f"this run was written by a newer expd (schema {state.schema_version}, phase "
            f"{state.phase!r}); upgrade expd to watch it"
        )
    return None


def _text(lines: list[bytes]) -> list[str]:
    return [line.decode("utf-8", errors="replace") for line in lines]


class BakeoffSource(DirectoryWatcher):
    """Watches one bakeoff run directory in a thread worker of the target screen."""

    WORKER = "bakeoff-source"
    RECURSIVE = False
    """The attempts' folders and expd's git dirs change all the time: only the run's own files."""

    def __init__(
        self, paths: BakeoffRunPaths, *, liveness_poll_s: float = 2.0, poll_s: float = 0.1
    ) -> None:
        self.paths = paths
        self.poll_s = poll_s
        DirectoryWatcher.__init__(
            self, paths.dir, liveness_poll_s=liveness_poll_s, timeout_s=poll_s
        )
        self._follow: str | None = None
        self._reset()

    def _reset(self) -> None:
        self._attempts = TailReader(self.paths.attempts)
        self._latest: dict[str, AttemptRecord] = {}
        self._marks: list[Mark] = []
        self._marks_sig: tuple[int, int, int] | None = None
        self._state: BakeoffState | None = None
        self._state_sig: tuple[int, int, int] | None = None
        self._problem: str | None = None
        self._log: TailReader | None = None
        self._log_key: str | None = None
        self._liveness: Liveness | None = None

    # ------------------------------------------------------------------ public

    def attach(self, target: MessagePump) -> None:
        self.detach()
        self._reset()
        self._stop = threading.Event()
        self.target = target
        self._worker = target.run_worker(  # type: ignore[attr-defined]
            partial(self._watch, self._stop),
            name=f"bakeoff-source {self.paths.dir.name}",
            group="bakeoff-source",
            thread=True,
            exclusive=True,
            exit_on_error=False,
        )

    def detach(self) -> None:
        self._stop.set()
        self.target = None
        self._thread = None

    def follow(self, key: str | None) -> None:
        self._follow = key  # the worker switches at its next wake-up (within poll_s)

    def load_attempt(self, key: str) -> None:
        target = self.target
        if target is None:
            return
        target.run_worker(  # type: ignore[attr-defined]
            partial(self._load_attempt, target, key),
            name=f"attempt-files {key}",
            group="attempt-files",
            thread=True,
            exclusive=True,
            exit_on_error=False,
        )

    def _load_attempt(self, target: MessagePump, key: str) -> None:
        files = attempt_files(self.paths, key)
        patch = read_head(files.patch, PATCH_BYTES)
        criteria_log = read_tail(files.criteria_log, LOG_TAIL_BYTES)
        if not get_current_worker().is_cancelled:
            target.post_message(AttemptFilesLoaded(key, patch, criteria_log))

    def daemon_pid(self) -> int | None:
        return read_daemon_pid(self.paths)

    # ------------------------------------------------------------------ the worker

    def _open(self) -> None:
        """The first full read, posted as one BakeoffOpened so the screen builds in one go."""
        problems: list[SourceProblem] = []
        try:
            manifest = codec.read_optional(self.paths.run_json, BakeoffManifest)
        except ContractError as exc:
            manifest = None
            problems.append(SourceProblem(str(exc)))
        state = self._read_state(problems)
        self._read_marks()
        self._read_attempts()
        records = graded(self._latest.values(), self._marks)
        shown = state if state is not None and newer_version_problem(state) is None else None
        self._post(BakeoffOpened(manifest or BakeoffManifest(), shown, records))
        for problem in problems:
            self._post(problem)
        self._sync_log()
        self._check_liveness()

    def _sync(self) -> None:
        problems: list[SourceProblem] = []
        before = self._state_sig
        state = self._read_state(problems)
        for problem in problems:
            self._post(problem)
        if state is not None and self._state_sig != before and not problems:
            self._post(BakeoffStateChanged(state))
            self._check_liveness()  # a terminal phase turns "dead" into "finished"
        new = self._read_attempts()
        if self._read_marks():
            self._post(AttemptsUpdated(graded(self._latest.values(), self._marks)))
        elif new:
            self._post(AttemptsUpdated([apply_marks(r, self._marks) for r in new]))
        self._sync_log()

    def _read_state(self, problems: list[SourceProblem]) -> BakeoffState | None:
        sig = signature(self.paths.state_json)
        if sig == self._state_sig:
            return self._state
        self._state_sig = sig
        try:
            state = codec.read_optional(self.paths.state_json, BakeoffState)
        except ContractError as exc:
            if str(exc) != self._problem:
                self._problem = str(exc)
                problems.append(SourceProblem(str(exc)))
            return self._state
        if state is None:
            return None
        problem = newer_version_problem(state)
        if problem is not None:
            if problem != self._problem:
                self._problem = problem
                problems.append(SourceProblem(problem, newer_version=True))
            return self._state
        self._problem = None
        self._state = state
        return state

    def _read_attempts(self) -> list[AttemptRecord]:
        """Records appended since the last read (the newest per attempt), remembered raw."""
        fresh: dict[str, AttemptRecord] = {}
        bad = 0
        for line in self._attempts.read_lines():
            record = decode_attempt(line)
            if record is None:
                bad += 1
                continue
            self._latest.pop(record.key, None)
            self._latest[record.key] = record
            fresh.pop(record.key, None)
            fresh[record.key] = record
        if bad:
            self._post(SourceProblem(f"{self.paths.attempts}: skipped {bad} unreadable line(s)"))
        return list(fresh.values())

    def _read_marks(self) -> bool:
        """Re-read marks.jsonl if it changed (it is small: one line per verdict)."""
        sig = signature(self.paths.marks)
        if sig == self._marks_sig:
            return False
        self._marks_sig = sig
        self._marks = read_marks(self.paths)
        return True

    def _sync_log(self) -> None:
        """Follow the selected attempt's agent log, switching when the selection moves."""
        key = self._follow
        if key is None:
            return
        path = attempt_files(self.paths, key).agent_log
        if key != self._log_key or self._log is None:
            lines, offset = tail_lines(path, LOG_BACKLOG_LINES)
            self._log_key, self._log = key, TailReader(path, offset)
            self._post(AttemptLogAppended(key, _text(lines), reset=True))
            return
        pending = (signature(path) or (0, 0, 0))[1] - self._log.offset
        if pending > LOG_SKIP_BYTES:
            lines, offset = tail_lines(path, LOG_BACKLOG_LINES)
            self._log.offset = offset
            note = f"… {pending - sum(len(x) + 1 for x in lines)} bytes of log skipped …"
            self._post(AttemptLogAppended(key, [note, *_text(lines)]))
            return
        lines = self._log.read_lines()
        text = _text(lines[-LOG_MESSAGE_LINES:])
        if len(lines) > LOG_MESSAGE_LINES:
            text.insert(0, f"… {len(lines) - LOG_MESSAGE_LINES} lines of log skipped …")
        if self._log.truncated:
            self._post(AttemptLogAppended(key, text, reset=True))
        elif text:
            self._post(AttemptLogAppended(key, text))

    def _check_liveness(self) -> None:
        live = probe(self.paths, self._state)  # type: ignore[arg-type]  # reads .phase only
        if live.daemon != self._liveness:
            self._liveness = live.daemon
            self._post(LivenessChanged(live))
