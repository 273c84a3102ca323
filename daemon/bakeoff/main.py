"""The bakeoff daemon process: take the run's locks, report alive, rebuild the state, then run the
matrix in an anyio task group beside the heartbeat, the control listener and the signal receiver.

A bakeoff run holds its directory's lock and `daemon.lock`; runs of the same bakeoff may run side
by side (their slots, trees and refs are their own). Everything before "alive" is kept cheap.
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from pathlib import Path

from daemon.ops.reaper import harden_daemon
from daemon.service.heartbeat import Heart
from daemon.service.log import install, log, redactor
from daemon.service.main import innermost, take_lock
from shared import codec, seal
from shared.atomic import write_atomic
from shared.bakeoffs.paths import BakeoffRunPaths
from shared.bakeoffs.schema import BakeoffManifest, BakeoffState
from shared.errors import ContractError
from shared.locking import try_lock, try_lock_dir
from shared.redact import Redactor, known_names

HIDDEN_VARS = ("EXPD_DAEMON_LOG", "EXPD_RUN_DIR", "EXPD_FAULT")
"""Not passed on to agents or criteria: the first two name the run directory."""


def run_redactor(manifest: BakeoffManifest) -> Redactor:
    """The secrets of this run: the daemon's environment and every variant's `env`."""
    secrets: dict[str, str] = {}
    for variant in manifest.spec.variants:
        agent = variant.agent
        extra = {str(k): str(v) for k, v in (agent.get("env") or {}).items()}
        found = Redactor.from_env({**os.environ, **extra}, known_names(agent.get("api_key_env")))
        for value, name in found.pairs:
            label = name if secrets.get(name, value) == value else f"{name}@{variant.id}"
            secrets[label] = value
    if not manifest.spec.variants:
        return Redactor.from_env(os.environ, known_names())
    return Redactor(secrets)


def mark_crashed(
    paths: BakeoffRunPaths, manifest: BakeoffManifest, message: str, *, internal: bool = True
) -> None:
    """Record why the daemon stopped (an internal error by default) for `expd status`."""
    try:
        state = codec.read_optional(paths.state_json, BakeoffState)
    except ContractError:
        state = None
    state = state or BakeoffState(run_id=manifest.run_id, name=manifest.name)
    state.phase = "crashed"
    state.termination_reason = "error"
    state.message = f"internal error: {message}" if internal else message
    state.updated_at = time.time()
    data = seal.seal(seal.load_key(paths), redactor().data(codec.encode(state)))
    write_atomic(paths.state_json, data)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m daemon RUN_DIR", file=sys.stderr)
        return 1
    paths = BakeoffRunPaths(Path(args[0]).resolve())
    try:
        manifest = codec.read(paths.run_json, BakeoffManifest)
    except Exception as exc:
        log(f"cannot read the bakeoff manifest: {exc}")
        return 1
    install(run_redactor(manifest))
    for name in HIDDEN_VARS:
        os.environ.pop(name, None)
    if take_lock(try_lock_dir, paths.dir) is None or take_lock(try_lock, paths.daemon_lock) is None:
        log("another daemon already owns this run; exiting")
        return 1
    harden_daemon()  # orphans of its children come back to it; its environment stays its own
    heart = Heart(paths)
    heart.beat()
    # After "alive": not on the fast path.
    from daemon.service.recovery import KeyLost, open_key

    try:
        key = open_key(paths, paths.attempts)
    except KeyLost as exc:
        log(str(exc))
        mark_crashed(paths, manifest, str(exc), internal=False)
        return 1
    if not paths.state_json.exists():
        from daemon.bakeoff.recovery import initial_state

        initial = initial_state(manifest, heart.info.started_at)
        write_atomic(paths.state_json, seal.seal(key, redactor().data(codec.encode(initial))))
    log(f"daemon {os.getpid()} started for bakeoff run {manifest.run_id}")
    try:
        from daemon.bakeoff.supervisor import supervise

        return supervise(paths, manifest, heart, key)
    except Exception as exc:
        log("internal error:\n" + traceback.format_exc())
        try:
            mark_crashed(paths, manifest, innermost(exc))
        except Exception:
            log("could not record the crash in state.json:\n" + traceback.format_exc())
        return 2
