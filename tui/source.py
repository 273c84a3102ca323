"""The one place the TUI watches a run directory: a source that turns file changes into messages.

Screens and widgets never touch files. A `Source` posts `tui.messages` to a screen: `RunOpened`
first, then state, results, log and liveness changes, and `ExperimentLoaded` when the screen asks
for an experiment's files. `RunSource` does it for real, from thread workers, with byte-offset
reads only, so watching a run costs the same with ten results or ten thousand. What is read on
request rather than watched (and the home screen's listing) is in `tui.reads`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import msgspec
from textual.message_pump import MessagePump

from shared import codec
from shared.errors import ContractError
from shared.liveness import Liveness, probe
from shared.paths import RunPaths
from shared.schema import PHASES, SCHEMA_VERSION, ResultRecord, RunManifest, RunState
from shared.tail import TailReader, tail_lines
from tui.messages import (
    LivenessChanged,
    LogAppended,
    ResultsAppended,
    RunOpened,
    SourceProblem,
    StateChanged,
)
from tui.reads import RunFiles
from tui.watcher import DirectoryWatcher, signature

LOG_BACKLOG_LINES = 2000
"""How much of an existing agent log is shown when switching to it."""

LOG_MESSAGE_LINES = 5000
"""At most this many lines per LogAppended (the log view keeps no more); older ones are noted."""

LOG_SKIP_BYTES = 4 * 1024 * 1024
"""A log that grew by more than this since the last read is skipped to its tail, not read whole."""


class Source(Protocol):
    """What a run screen is fed by; tests substitute one that posts scripted messages."""

    def attach(self, target: MessagePump) -> None:
        """Start posting messages (RunOpened first, then the others) to `target` (a Screen)."""

    def detach(self) -> None:
        """Stop posting; safe to call twice or before `attach`."""

    def load_experiment(self, experiment: int) -> None:
        """Read the experiment's patch and agent log off the event loop; post `ExperimentLoaded`
        to the attached target (a newer request supersedes an unfinished one)."""

    def daemon_pid(self) -> int | None:
        """The pid `daemon.json` names. Blocking: call it from a thread worker."""


def newer_version_problem(state: RunState) -> str | None:
    """Why this state cannot be shown by this expd, or None if it can."""
    if state.schema_version > SCHEMA_VERSION:
        return (
            f"this run was written by a newer expd (schema {state.schema_version}); "
            "upgrade expd to watch it"
        )
    if state.phase not in PHASES:
        return (
            f"this run was written by a newer expd (phase {state.phase!r}); "
            "upgrade expd to watch it"
        )
    return None


class RunSource(RunFiles, DirectoryWatcher):
    """Watches one run directory with watchfiles in a thread worker of the target screen."""

    WORKER = "run-source"

    def __init__(self, paths: RunPaths, *, liveness_poll_s: float = 2.0) -> None:
        self.paths = paths
        self._decoder = msgspec.json.Decoder(ResultRecord)
        DirectoryWatcher.__init__(
            self,
            paths.dir,
            liveness_poll_s=liveness_poll_s,
            timeout_s=max(0.02, min(0.25, liveness_poll_s)),
        )
        self._reset()

    def _reset(self) -> None:
        """Forget what was read: every attach starts with a full RunOpened."""
        self._results = TailReader(self.paths.results)
        self._state: RunState | None = None
        self._state_sig: tuple[int, int, int] | None = None
        self._log: TailReader | None = None
        self._log_experiment: int | None = None
        self._liveness: Liveness | None = None
        self._problem: str | None = None

    # ------------------------------------------------------------------ the worker

    def _open(self) -> None:
        """The first full read, posted as one RunOpened so the screen builds in one go."""
        problems: list[SourceProblem] = []
        try:
            manifest = codec.read_optional(self.paths.run_json, RunManifest) or RunManifest()
        except ContractError as exc:
            manifest = RunManifest()
            problems.append(SourceProblem(str(exc)))
        state = self._read_state(problems)
        results = self._read_results()
        shown = state if state is not None and newer_version_problem(state) is None else None
        self._post(RunOpened(manifest, shown, results))
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
            self._post(StateChanged(state))
            self._check_liveness()  # a terminal phase turns "dead" into "finished"
        results = self._read_results()
        if results:
            self._post(ResultsAppended(results))
        self._sync_log()

    def _read_state(self, problems: list[SourceProblem]) -> RunState | None:
        """state.json if it changed since the last read (else the last one), checked for version."""
        sig = signature(self.paths.state_json)
        if sig == self._state_sig:
            return self._state
        try:
            state = codec.read_optional(self.paths.state_json, RunState)
        except ContractError as exc:
            self._state_sig = sig
            if str(exc) != self._problem:
                self._problem = str(exc)
                problems.append(SourceProblem(str(exc)))
            return self._state
        self._state_sig = sig
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

    def _read_results(self) -> list[ResultRecord]:
        out: list[ResultRecord] = []
        bad = 0
        for line in self._results.read_lines():
            try:
                out.append(self._decoder.decode(line))
            except (msgspec.DecodeError, msgspec.ValidationError):
                bad += 1
        if bad:
            self._post(SourceProblem(f"{self.paths.results}: skipped {bad} unreadable line(s)"))
        return out

    def _sync_log(self) -> None:
        """Follow the log of the experiment in flight (or the last one), switching when it moves."""
        state = self._state
        if state is None:
            return
        experiment = state.in_flight.experiment if state.in_flight else state.experiment
        path = self.paths.agent_log(experiment)
        if experiment != self._log_experiment or self._log is None:
            lines, offset = tail_lines(path, LOG_BACKLOG_LINES)
            self._log_experiment = experiment
            self._log = TailReader(path, offset)
            self._post(LogAppended(experiment, _text(lines), reset=True))
            return
        pending = (signature(path) or (0, 0, 0))[1] - self._log.offset
        if pending > LOG_SKIP_BYTES:
            lines, offset = tail_lines(path, LOG_BACKLOG_LINES)
            self._log.offset = offset
            note = f"… {pending - sum(len(x) + 1 for x in lines)} bytes of log skipped …"
            self._post(LogAppended(experiment, [note, *_text(lines)]))
            return
        lines = self._log.read_lines()
        text = _text(lines[-LOG_MESSAGE_LINES:])
        if len(lines) > LOG_MESSAGE_LINES:
            text.insert(0, f"… {len(lines) - LOG_MESSAGE_LINES} lines of log skipped …")
        if self._log.truncated:
            self._post(LogAppended(experiment, text, reset=True))
        elif text:
            self._post(LogAppended(experiment, text))

    def _check_liveness(self) -> None:
        live = probe(self.paths, self._state)
        if live.daemon != self._liveness:
            self._liveness = live.daemon
            self._post(LivenessChanged(live))


def _text(lines: list[bytes]) -> list[str]:
    return [line.decode("utf-8", errors="replace") for line in lines]


SourceFactory = Callable[[RunPaths], Source]
