"""The bakeoff daemon's writes to its run directory: state, attempt records, events, attempt files.

As a program run's (daemon/service/store.py): one writer per file, every write redacted, never
through a planted symlink. state.json and every line of attempts.jsonl carry the run's seal, each
record is fsynced before anything else happens, and attempts.jsonl is put back to what this daemon
wrote whenever someone else changed it (checked before every append and at the end). Each
attempt's agent log and criteria log are bounded like a program run's agent log.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, BinaryIO

from daemon.service.store import AGENT_LOG_CAP, MAX_ACKED
from shared import codec, seal
from shared.atomic import append_line, open_own, write_atomic
from shared.bakeoffs.paths import AttemptPaths, BakeoffRunPaths
from shared.bakeoffs.progress import ranked_only
from shared.bakeoffs.schema import FINISHED, AttemptRecord, BakeoffState
from shared.redact import NONE, Redactor
from shared.schema import Event


class CappedLog:
    """One attempt's log (agent.log, criteria.log): redacted lines up to `cap` bytes, then one
    marker; what was dropped is counted at the end."""

    def __init__(self, path: Path, redactor: Redactor, cap: int = AGENT_LOG_CAP) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = open_own(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        self._file: BinaryIO | None = open(fd, "ab", buffering=0)  # noqa: SIM115
        self._redactor = redactor
        self._cap = cap
        self._size = path.stat().st_size
        self._dropped = 0

    def write(self, text: str) -> None:
        if self._file is None:
            return
        data = self._redactor.data(text.encode(errors="replace") + b"\n")
        if self._size >= self._cap:
            self._dropped += len(data)
            return
        if self._size + len(data) > self._cap:
            self._dropped += len(data)
            data = f"[expd] output truncated: this log keeps {self._cap >> 20} MiB\n".encode()
            self._size = self._cap
        else:
            self._size += len(data)
        self._file.write(data)

    def close(self) -> None:
        if self._file is None:
            return
        if self._dropped:
            self._file.write(f"[expd] {self._dropped} bytes of output not logged\n".encode())
        self._file.close()
        self._file = None


class BakeoffStore:
    """Holds the live `BakeoffState` and the newest record of each attempt; persists changes."""

    def __init__(
        self,
        paths: BakeoffRunPaths,
        state: BakeoffState,
        records: list[AttemptRecord],
        *,
        key: bytes | None = None,
        redactor: Redactor = NONE,
    ) -> None:
        self.paths = paths
        self.state = state
        self.key = key
        self.redactor = redactor
        self.latest: dict[str, AttemptRecord] = {}
        for record in records:
            self.latest[record.key] = record
        self._written = _read(paths.attempts)
        """attempts.jsonl as this daemon knows it: what recovery left plus what it appended."""
        self.count_done()

    # --- state ---------------------------------------------------------------------------------

    def save(self, *, durable: bool = False) -> None:
        """Replace state.json atomically; `durable` when an attempt starts or is recorded."""
        self.state.updated_at = time.time()
        data = seal.seal(self.key, self.redactor.data(codec.encode(self.state)))
        write_atomic(self.paths.state_json, data, durable=durable)

    def phase(self, phase: str, detail: str = "", *, durable: bool = False) -> None:
        changed = phase != self.state.phase
        self.state.phase = phase
        self.state.detail = detail
        self.save(durable=durable)
        if changed:
            self.event("phase", phase=phase, detail=detail)

    def ack(self, request_id: str) -> None:
        self.state.acked = [*self.state.acked, request_id][-MAX_ACKED:]

    def count_done(self) -> None:
        """`done`: attempts of the matrix (not replays) whose newest record is finished."""
        matrix = ranked_only(list(self.latest.values()))
        self.state.done = sum(1 for r in matrix if r.status in FINISHED)

    def event(self, kind: str, /, **data: Any) -> None:
        """Append to the transcript; flushed, not fsynced (the records and state are the record)."""
        line = self.redactor.data(codec.encode_line(Event(t=time.time(), kind=kind, data=data)))
        append_line(self.paths.events, line, durable=False)

    # --- the record ----------------------------------------------------------------------------

    def append(self, record: AttemptRecord) -> None:
        """Record one attempt durably (sealed), then count it into the state."""
        self.restore()
        line = seal.seal(self.key, self.redactor.data(codec.encode(record))) + b"\n"
        append_line(self.paths.attempts, line, durable=True)
        self._written += line
        self.latest.pop(record.key, None)
        self.latest[record.key] = record
        self.count_done()

    def restore(self) -> bool:
        """Put attempts.jsonl back to what this daemon wrote if anyone else changed it."""
        if _read(self.paths.attempts) == self._written:
            return False
        write_atomic(self.paths.attempts, bytes(self._written))
        self.state.message = "attempts.jsonl was changed outside expd: restored what expd wrote"
        self.event("record_restored", file=self.paths.attempts.name)
        return True

    # --- files ---------------------------------------------------------------------------------

    def attempt_files(self, task: str, variant: str, attempt: int) -> AttemptPaths:
        files = self.paths.attempt(task, variant, attempt)
        files.dir.mkdir(parents=True, exist_ok=True)
        return files

    def write_file(self, path: Path, text: str) -> None:
        write_atomic(path, self.redactor.data(text.encode(errors="replace")), durable=False)

    def log(self, path: Path) -> CappedLog:
        """A fresh log at `path` (a re-run's replaces the interrupted one's)."""
        path.unlink(missing_ok=True)
        return CappedLog(path, self.redactor)


def _read(path: Path) -> bytearray:
    try:
        return bytearray(path.read_bytes())
    except FileNotFoundError:
        return bytearray()
