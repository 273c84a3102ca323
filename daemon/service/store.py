"""The daemon's writes to the run directory: state, results, events. One writer per file."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, BinaryIO

from shared import codec
from shared.atomic import append_line, write_atomic
from shared.paths import RunPaths
from shared.schema import Event, ResultRecord, RunState

MAX_ACKED = 64


class RunStore:
    """Holds the live `RunState` and persists every change atomically."""

    def __init__(self, paths: RunPaths, state: RunState) -> None:
        self.paths = paths
        self.state = state
        self._agent_log: BinaryIO | None = None
        self._agent_log_n: int | None = None
        for directory in (paths.agent_dir, paths.patches_dir, paths.prompts_dir):
            directory.mkdir(exist_ok=True)

    def save(self, *, durable: bool = False) -> None:
        """Replace state.json atomically; `durable` adds the fsyncs that survive a power cut.

        Every replace survives a killed daemon (rename is atomic). Only the saves that open or
        close an experiment are fsynced: results.jsonl is the durable record, state.json a cache.
        """
        self.state.updated_at = time.time()
        write_atomic(self.paths.state_json, codec.encode(self.state), durable=durable)

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
        line = codec.encode_line(Event(t=time.time(), kind=kind, experiment=experiment, data=data))
        append_line(self.paths.events, line, durable=False)

    def append_result(self, record: ResultRecord) -> None:
        """Durably; only `Recorder.record` calls it, and counts the result into the state."""
        append_line(self.paths.results, codec.encode_line(record), durable=True)

    # --- the agent's live stream ------------------------------------------------------------------

    def agent_log(self, experiment: int, text: str) -> None:
        if self._agent_log_n != experiment:
            self.close_agent_log()
            self._agent_log = open(self.paths.agent_log(experiment), "ab", buffering=0)  # noqa: SIM115
            self._agent_log_n = experiment
        assert self._agent_log is not None
        self._agent_log.write(text.encode(errors="replace") + b"\n")

    def close_agent_log(self) -> None:
        if self._agent_log is not None:
            self._agent_log.close()
        self._agent_log = None
        self._agent_log_n = None

    def write_file(self, path: Path, text: str) -> None:
        write_atomic(path, text.encode(errors="replace"), durable=False)


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
