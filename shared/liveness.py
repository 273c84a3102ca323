"""Is a run's daemon alive? Only if its lock is held, its pid exists and its heartbeat is fresh.

The daemon holds two locks: `daemon.lock` (what older readers look at) and the run directory's
own descriptor, which nobody can unlink: a deleted `daemon.lock` does not make a live daemon dead.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Literal

from shared import codec
from shared.errors import ContractError
from shared.locking import is_locked
from shared.paths import RunPaths
from shared.schema import TERMINAL_PHASES, DaemonInfo, RunState

Liveness = Literal["running", "starting", "hung", "dead", "finished"]

HEARTBEAT_STALE_S = 15.0
"""A heartbeat older than this means hung (the daemon beats every 2 s)."""


@dataclass(frozen=True)
class Probe:
    daemon: Liveness
    pid: int | None
    heartbeat_age: float | None


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def held(paths: RunPaths) -> bool:
    """Whether a daemon holds the run (through either of its locks)."""
    return is_locked(paths.daemon_lock) or is_locked(paths.dir)


def probe(paths: RunPaths, state: RunState | None, now: float | None = None) -> Probe:
    now = time.time() if now is None else now
    try:
        info = codec.read_optional(paths.daemon_json, DaemonInfo)
    except ContractError:
        info = None
    locked = held(paths)
    pid = info.pid if info else None
    age = (now - info.heartbeat_at) if info and info.heartbeat_at else None
    if state is not None and state.phase in TERMINAL_PHASES:
        # The run is over even while its daemon is still exiting (e.g. running the notifier).
        return Probe("finished", pid, age)
    if not locked:
        return Probe("dead", pid, age)
    if info is None or (pid is not None and not pid_alive(pid)):
        return Probe("starting", pid, age)
    stale = max(HEARTBEAT_STALE_S, 5 * info.heartbeat_interval)
    if age is None or age > stale:
        return Probe("hung", pid, age)
    if state is None or state.phase == "starting":
        return Probe("starting", pid, age)
    return Probe("running", pid, age)
