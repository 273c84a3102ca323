"""The daemon process: take the locks, report alive, then run the loop in an anyio task group.

Everything before "alive" is kept cheap (no pygit2, no Optuna) so `expd start` returns fast.
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from daemon.ops.reaper import harden_daemon
from daemon.service.chain import chain_queue
from daemon.service.heartbeat import Heart
from daemon.service.log import install, log
from shared import codec, seal
from shared.atomic import write_atomic
from shared.locking import try_lock, try_lock_dir
from shared.paths import ProgramPaths, RunPaths
from shared.redact import Redactor, known_names
from shared.schema import RunManifest

LOCK_RETRY_S = 0.2


def innermost(exc: BaseException) -> str:
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return f"{type(exc).__name__}: {exc}"


def take_lock(lock: Callable[[Path], int | None], path: Path) -> int | None:
    """The lock's fd (held until the process exits), retried briefly: a reader probing it
    (`expd status`) holds it for a moment."""
    deadline = time.monotonic() + LOCK_RETRY_S
    while (fd := lock(path)) is None and time.monotonic() < deadline:
        time.sleep(0.01)
    return fd


def run_redactor(manifest: RunManifest) -> Redactor:
    """The secrets of this run: the daemon's environment, `[agent] env`, and each arm's `env`
    and `api_key_env` (an arm's agent sees its own, so they are the run's secrets too)."""
    agent = manifest.config.get("agent") or {}
    tables = [agent, *(a for a in manifest.config.get("arms") or [] if isinstance(a, dict))]
    secrets: dict[str, str] = {}
    for table in tables:
        extra = {str(k): str(v) for k, v in ({**agent, **table}.get("env") or {}).items()}
        key_env = {**agent, **table}.get("api_key_env")
        found = Redactor.from_env({**os.environ, **extra}, known_names(key_env))
        for value, name in found.pairs:
            label = name if secrets.get(name, value) == value else f"{name}@{table.get('id')}"
            secrets[label] = value
    return Redactor(secrets)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m daemon RUN_DIR", file=sys.stderr)
        return 1
    paths = RunPaths(Path(args[0]).resolve())
    try:
        manifest = codec.read(paths.run_json, RunManifest)
    except Exception as exc:
        log(f"cannot read the run manifest: {exc}")
        return 1
    install(run_redactor(manifest))
    # The directories' own locks first: a lock file can be unlinked, a directory's fd cannot.
    if take_lock(try_lock_dir, paths.dir) is None or take_lock(try_lock, paths.daemon_lock) is None:
        log("another daemon already owns this run; exiting")
        return 1
    program = ProgramPaths(Path(manifest.repo), manifest.program)
    if (
        take_lock(try_lock_dir, program.dir) is None
        or take_lock(try_lock, program.active_lock) is None
    ):
        log(f"another run of program {manifest.program!r} is active; exiting")
        return 1
    harden_daemon()  # orphans of its children come back to it; its environment stays its own
    heart = Heart(paths)
    heart.beat()
    # After "alive": not on the fast path.
    from daemon.service.recovery import KeyLost, initial_state, open_key

    try:
        key = open_key(paths)
    except KeyLost as exc:
        log(str(exc))
        from daemon.service.supervisor import mark_crashed

        mark_crashed(paths, manifest, str(exc), internal=False)
        chain_queue(paths, manifest)
        return 1
    if not paths.state_json.exists():
        initial = initial_state(manifest, now=heart.info.started_at)
        write_atomic(paths.state_json, seal.seal(key, codec.encode(initial)))
    log(f"daemon {os.getpid()} started for run {manifest.run_id}")
    try:
        from daemon.service.supervisor import supervise

        return supervise(paths, manifest, heart, key)
    except Exception as exc:
        log("internal error:\n" + traceback.format_exc())
        try:
            from daemon.service.supervisor import mark_crashed

            mark_crashed(paths, manifest, innermost(exc))
        except Exception:
            log("could not record the crash in state.json:\n" + traceback.format_exc())
        return 2
    finally:
        chain_queue(paths, manifest)  # the queue's next run, once this daemon has exited
