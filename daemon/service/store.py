"""The daemon's writes to the run directory: state, results, events. One writer per file.

Every write passes the run's `Redactor` (no secret value reaches a file). Results lines and
state.json carry the run's seal (shared/seal.py), and results.jsonl is checked against what this
daemon wrote before each append: whatever someone else changed in it is put back, with an event.
The agent's stream is bounded per experiment: its log at `AGENT_LOG_CAP` bytes, its events at
`AGENT_EVENTS_CAP` lines and `AGENT_EVENT_BYTES` bytes, each with a visible marker.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, BinaryIO

import anyio

from shared import codec, seal
from shared.atomic import append_line, open_own, write_atomic
from shared.paths import RunPaths
from shared.redact import NONE, Redactor
from shared.schema import Event, ResultRecord, RunState

MAX_ACKED = 64
AGENT_LOG_CAP = 8 << 20
AGENT_EVENTS_CAP = 2000
AGENT_EVENT_BYTES = 4 << 20
STREAMS_KEPT = 512
"""Experiments whose agent-event counts are remembered (lanes interleave; the oldest go first)."""


class RunStore:
    """Holds the live `RunState` and persists every change atomically."""

    def __init__(
        self,
        paths: RunPaths,
        state: RunState,
        *,
        key: bytes | None = None,
        redactor: Redactor = NONE,
    ) -> None:
        self.paths = paths
        self.state = state
        self.key = key
        self.redactor = redactor
        self._logs: dict[int, _Log] = {}
        self._streams: dict[int, _Stream] = {}
        self._results = _read(paths.results)
        """results.jsonl as this daemon knows it: what it read at start plus what it appended."""
        self._coalescing = False
        self._dirty = False
        self._wake: anyio.Event | None = None
        for directory in (paths.agent_dir, paths.patches_dir, paths.prompts_dir):
            directory.mkdir(exist_ok=True)

    def redact(self, text: str) -> str:
        return self.redactor.text(text)

    def save(self, *, durable: bool = False, now: bool = False) -> None:
        """Replace state.json atomically; `durable` adds the fsyncs that survive a power cut.

        Every replace survives a killed daemon (rename is atomic). Only the saves that open or
        close a run's phase are fsynced: results.jsonl is the durable record, state.json a cache.
        While `coalesce` runs (lanes), a plain save only marks the state changed and the changes
        of a short window go out in one write; `now` (or `durable`) writes at once.
        """
        if self._coalescing and not (durable or now):
            self._dirty = True
            if self._wake is not None:
                self._wake.set()
            return
        self._write(durable)

    def _write(self, durable: bool) -> None:
        self._dirty = False
        self.state.updated_at = time.time()
        data = seal.seal(self.key, self.redactor.data(codec.encode(self.state)))
        write_atomic(self.paths.state_json, data, durable=durable)

    async def coalesce(self, window: float) -> None:
        """Until cancelled, batch plain saves: at most one write of state.json per `window`
        seconds (with many lanes every phase change would rewrite every lane's state). What is
        still pending is written when it ends."""
        self._coalescing, self._wake = True, anyio.Event()
        try:
            while True:
                await self._wake.wait()
                self._wake = anyio.Event()
                await anyio.sleep(window)
                if self._dirty:
                    self._write(False)
        finally:
            self._coalescing, self._wake = False, None
            if self._dirty:
                self._write(False)

    def phase(
        self, phase: str, detail: str = "", *, experiment: int | None = None, durable: bool = False
    ) -> None:
        changed = phase != self.state.phase
        self.state.phase = phase
        self.state.detail = detail
        self.save(durable=durable)
        if changed:
            self.event("phase", experiment, phase=phase, detail=detail)

    def detail(self, detail: str) -> None:
        self.state.detail = detail
        self.save()

    def ack(self, request_id: str) -> None:
        self.state.acked = [*self.state.acked, request_id][-MAX_ACKED:]

    def event(self, kind: str, experiment: int | None = None, /, **data: Any) -> None:
        """Append to the transcript; flushed, not fsynced (results and state are the record)."""
        self._append_event(Event(t=time.time(), kind=kind, experiment=experiment, data=data))

    def _append_event(self, event: Event) -> int:
        line = self.redactor.data(codec.encode_line(event))
        append_line(self.paths.events, line, durable=False)
        return len(line)

    def append_result(self, record: ResultRecord) -> None:
        """Durably; only `Recorder.record` calls it, and counts the result into the state."""
        self.restore_results()
        line = seal.seal(self.key, self.redactor.data(codec.encode(record))) + b"\n"
        append_line(self.paths.results, line, durable=True)
        self._results += line

    def restore_results(self) -> bool:
        """Put results.jsonl back to what this daemon wrote if anyone else changed it; True if so."""
        if _read(self.paths.results) == self._results:
            return False
        write_atomic(self.paths.results, bytes(self._results))
        self.state.message = "results.jsonl was changed outside expd: restored what expd wrote"
        self.event("record_restored", None, file=self.paths.results.name)
        return True

    # --- the agent's live stream ------------------------------------------------------------------

    def agent_log(self, experiment: int, text: str) -> None:
        """One line of the agent's log; past `AGENT_LOG_CAP` bytes only a marker, once. Several
        experiments' logs may be open at once (lanes), each with its own cap."""
        log = self._logs.get(experiment)
        if log is None:
            path = self.paths.agent_log(experiment)
            fd = open_own(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
            log = self._logs[experiment] = _Log(open(fd, "ab", buffering=0), path.stat().st_size)  # noqa: SIM115
        data = self.redactor.data(text.encode(errors="replace") + b"\n")
        if log.bytes >= AGENT_LOG_CAP:
            log.dropped += len(data)
            return
        if log.bytes + len(data) > AGENT_LOG_CAP:
            log.dropped += len(data)
            data = f"[expd] agent output truncated: this log keeps {AGENT_LOG_CAP >> 20} MiB\n"
            data = data.encode()
        log.file.write(data)
        log.bytes = AGENT_LOG_CAP if log.dropped else log.bytes + len(data)

    def close_agent_log(self, experiment: int | None = None) -> None:
        """Close experiment `experiment`'s log (None: every open one)."""
        for n in [experiment] if experiment is not None else list(self._logs):
            log = self._logs.pop(n, None)
            if log is None:
                continue
            if log.dropped:
                log.file.write(f"[expd] {log.dropped} bytes of agent output not logged\n".encode())
            log.file.close()

    def agent_event(self, experiment: int, data: dict[str, Any]) -> None:
        """One of the agent's events; past the caps only a marker event, once per experiment."""
        stream = self._streams.get(experiment)
        if stream is None:
            if len(self._streams) >= STREAMS_KEPT:
                self._streams.pop(next(iter(self._streams)))
            stream = self._streams[experiment] = _Stream(experiment=experiment)
        if stream.events >= AGENT_EVENTS_CAP or stream.bytes >= AGENT_EVENT_BYTES:
            if not stream.marked:
                stream.marked = True
                self.event(
                    "agent_truncated",
                    experiment,
                    events=stream.events,
                    bytes=stream.bytes,
                    detail="the agent's further events are in its log only (up to its cap)",
                )
            return
        stream.events += 1
        stream.bytes += self._append_event(
            Event(t=time.time(), kind="agent", experiment=experiment, data=data)
        )

    def write_file(self, path: Path, text: str) -> None:
        write_atomic(path, self.redactor.data(text.encode(errors="replace")), durable=False)


class _Log:
    """One experiment's open agent log and what it holds (for the cap)."""

    def __init__(self, file: BinaryIO, size: int) -> None:
        self.file = file
        self.bytes = size
        self.dropped = 0


class _Stream:
    """What the current experiment's agent has written so far (for the caps)."""

    def __init__(self, experiment: int | None = None) -> None:
        self.experiment = experiment
        self.events = 0
        self.bytes = 0
        self.marked = False


def _read(path: Path) -> bytearray:
    try:
        return bytearray(path.read_bytes())
    except FileNotFoundError:
        return bytearray()


def repair_results(path: Path) -> int:
    """Cut a torn last line (a crash mid-append) so the next append starts on a fresh line."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return 0
    if size == 0:
        return 0
    with open(path, "rb") as handle:
        handle.seek(max(0, size - 1))
        if handle.read(1) == b"\n":
            return 0
        handle.seek(0)
        data = handle.read()
    keep = data.rfind(b"\n") + 1
    os.truncate(path, keep)
    return size - keep
