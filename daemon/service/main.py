"""The daemon process: take the locks, report alive, then run the loop in an anyio task group.

Everything before "alive" is kept cheap (no GitPython, no Optuna) so `expd start` returns fast.
"""

from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path

from daemon.ops.reaper import harden_daemon
from daemon.service.heartbeat import Heart
from daemon.service.log import log
from shared import codec
from shared.atomic import write_atomic
from shared.locking import try_lock
from shared.paths import ProgramPaths, RunPaths
from shared.schema import RunManifest, RunState


def _innermost(exc: BaseException) -> str:
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return f"{type(exc).__name__}: {exc}"


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
    run_lock = try_lock(paths.daemon_lock)
    if run_lock is None:
        log("another daemon already owns this run; exiting")
        return 1
    program = ProgramPaths(Path(manifest.repo), manifest.program)
    program_lock = try_lock(program.active_lock)
    if program_lock is None:
        log(f"another run of program {manifest.program!r} is active; exiting")
        return 1
    harden_daemon()  # orphans of its children come back to it; its environment stays its own
    heart = Heart(paths)
    heart.beat()
    if not paths.state_json.exists():
        initial = RunState(
            run_id=manifest.run_id,
            program=manifest.program,
            metric=str(manifest.config.get("metric", "")),
            direction=str(manifest.config.get("direction", "lower")),
            max_experiments=manifest.max_experiments,
            started_at=heart.info.started_at,
            updated_at=heart.info.started_at,
        )
        write_atomic(paths.state_json, codec.encode(initial))
    log(f"daemon {os.getpid()} started for run {manifest.run_id}")
    try:
        from daemon.service.supervisor import supervise

        return supervise(paths, manifest, heart)
    except Exception as exc:
        log("internal error:\n" + traceback.format_exc())
        try:
            from daemon.service.supervisor import mark_crashed

            mark_crashed(paths, manifest, _innermost(exc))
        except Exception:
            log("could not record the crash in state.json:\n" + traceback.format_exc())
        return 2
