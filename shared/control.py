"""Control requests (stop, abort, set) from the CLI and TUI to the daemon, with ids and acks.

Each request is sealed with the run's key (shared/seal.py) when the run has one, and the daemon
acts only on requests whose seal verifies: a request written into control.json by anything but
this writer is acknowledged and ignored.
"""

from __future__ import annotations

import hmac
import os
import time
import uuid
from typing import Any

import msgspec

from shared import codec, seal
from shared.atomic import write_atomic
from shared.errors import ContractError
from shared.locking import lock_blocking, unlock
from shared.paths import RunPaths
from shared.redact import Redactor, known_names
from shared.schema import ControlFile, ControlRequest, RunState

ACTIONS = ("stop", "abort", "set", "replay", "retry")
"""`replay` and `retry` are for bakeoff runs (`expd bakeoff replay`, `resume --retry-errors`)."""
SETTABLE = ("max_experiments", "guidance")
MAX_KEPT = 32


def send(
    paths: RunPaths, action: str, key: str | None = None, value: Any = None, source: str = "cli"
) -> str:
    """Add a request to `control.json` (read-modify-write under a lock) and return its id."""
    if action not in ACTIONS:
        raise ValueError(f"unknown control action {action!r}")
    if isinstance(value, str):  # guidance: no secret value is written into the run directory
        value = Redactor.from_env(os.environ, known_names()).text(value)
    request = signed(
        seal.load_key(paths),
        ControlRequest(
            id=uuid.uuid4().hex[:12],
            action=action,
            key=key,
            value=value,
            created_at=time.time(),
            source=source,
        ),
    )
    fd = lock_blocking(paths.control_lock)
    try:
        try:
            current = codec.read_optional(paths.control, ControlFile) or ControlFile()
        except ContractError:
            current = ControlFile()
        acked = _acked(paths)
        pending = [r for r in current.requests if r.id not in acked][-MAX_KEPT:]
        pending.append(request)
        write_atomic(paths.control, codec.encode(ControlFile(requests=pending)))
    finally:
        unlock(fd)
    return request.id


def _mac(key: bytes, request: ControlRequest) -> str:
    return seal.mac(key, msgspec.json.encode(msgspec.structs.replace(request, seal="")))


def signed(key: bytes | None, request: ControlRequest) -> ControlRequest:
    """`request` with its seal (unchanged in a run without a key)."""
    if key is None:
        return request
    return msgspec.structs.replace(request, seal=_mac(key, request))


def verified(key: bytes | None, request: ControlRequest) -> bool:
    """Whether expd's writer sealed `request` (every request counts in a run without a key)."""
    if key is None:
        return True
    return hmac.compare_digest(request.seal, _mac(key, request))


def _acked(paths: RunPaths) -> set[str]:
    try:
        state = codec.read_optional(paths.state_json, RunState)
    except ContractError:
        return set()
    return set(state.acked) if state else set()


def pending(paths: RunPaths, acked: set[str]) -> list[ControlRequest]:
    """Requests not yet acknowledged, oldest first (what the daemon acts on)."""
    try:
        current = codec.read_optional(paths.control, ControlFile)
    except ContractError:
        return []
    if current is None:
        return []
    return [r for r in current.requests if r.id not in acked]


def is_acked(paths: RunPaths, request_id: str) -> bool:
    return request_id in _acked(paths)
