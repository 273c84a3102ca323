"""The file contract in shared/: formats that survive version skew, atomic writes, liveness."""

from __future__ import annotations

import os
import time
from pathlib import Path

import msgspec
import pytest

from shared import codec, control
from shared.atomic import append_line, write_atomic
from shared.errors import ContractError
from shared.liveness import probe
from shared.locking import is_locked, try_lock, unlock
from shared.paths import RunPaths
from shared.schema import ControlFile, DaemonInfo, ResultRecord, RunState

FIXTURES = Path(__file__).parent / "fixtures"


def test_golden_state_with_unknown_fields_decodes() -> None:
    state = codec.read(FIXTURES / "state_v1.json", RunState)
    assert state.phase == "measuring"
    assert state.experiment == 7 and state.keeps == 2 and state.best == 10.25
    assert state.in_flight is not None and state.in_flight.pgid == 4242
    assert state.acked == ["a1b2c3"]


def test_every_daemon_file_decodes_from_an_empty_object() -> None:
    for type_ in (RunState, ResultRecord, DaemonInfo, ControlFile):
        assert msgspec.json.decode(b"{}", type=type_) is not None


def test_corrupt_file_names_itself(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text('{"phase": ')
    with pytest.raises(ContractError, match=r"state\.json"):
        codec.read(path, RunState)


def test_write_atomic_replaces_whole_file_and_leaves_no_temp(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    write_atomic(path, b"old")
    write_atomic(path, b"new contents")
    assert path.read_bytes() == b"new contents"
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


def test_append_line_adds_newline(tmp_path: Path) -> None:
    path = tmp_path / "results.jsonl"
    append_line(path, b'{"a":1}')
    append_line(path, b'{"a":2}\n')
    assert path.read_bytes() == b'{"a":1}\n{"a":2}\n'


def test_flock_is_exclusive_and_released(tmp_path: Path) -> None:
    lock = tmp_path / "daemon.lock"
    assert not is_locked(lock)
    fd = try_lock(lock)
    assert fd is not None
    assert is_locked(lock)
    assert try_lock(lock) is None
    unlock(fd)
    assert not is_locked(lock)
    assert lock.exists()  # never deleted


def _live(paths: RunPaths, *, heartbeat_age: float, phase: str = "idle") -> int:
    fd = try_lock(paths.daemon_lock)
    assert fd is not None
    now = time.time()
    info = DaemonInfo(pid=os.getpid(), started_at=now - 100, heartbeat_at=now - heartbeat_age)
    write_atomic(paths.daemon_json, codec.encode(info))
    write_atomic(paths.state_json, codec.encode(RunState(phase=phase)))
    return fd


def test_liveness_running_hung_dead_finished(tmp_path: Path) -> None:
    paths = RunPaths(tmp_path)
    fd = _live(paths, heartbeat_age=1)
    state = codec.read(paths.state_json, RunState)
    assert probe(paths, state).daemon == "running"
    assert probe(paths, state, now=time.time() + 60).daemon == "hung"
    unlock(fd)
    assert probe(paths, state).daemon == "dead"
    assert probe(paths, RunState(phase="complete")).daemon == "finished"


def test_control_requests_get_ids_and_pending_skips_acked(tmp_path: Path) -> None:
    paths = RunPaths(tmp_path)
    first = control.send(paths, "stop")
    second = control.send(paths, "set", key="max_experiments", value=5)
    assert first != second
    pending = control.pending(paths, set())
    assert [(r.id, r.action) for r in pending] == [(first, "stop"), (second, "set")]
    assert [r.id for r in control.pending(paths, {first})] == [second]
    write_atomic(paths.state_json, codec.encode(RunState(acked=[first])))
    assert control.is_acked(paths, first) and not control.is_acked(paths, second)
    third = control.send(paths, "abort")  # acked requests are pruned on the next write
    stored = codec.read(paths.control, ControlFile)
    assert [r.id for r in stored.requests] == [second, third]
