"""The queue's next run, launched by a daemon that is finishing.

The daemon does not start it itself: it cannot import `daemon/commands` (where starts live), and
the next run must not start while this daemon still holds its locks. It launches
`expd queue resume --after RUN_DIR` detached (its own session, re-parented to init when the daemon
exits), which waits for this daemon's locks to be released and then does exactly what
`expd queue resume` does. Nothing is launched for a repository that has no queue.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from daemon.service.log import log
from shared.atomic import open_own
from shared.paths import RunPaths
from shared.queue import QueuePaths, read_queue
from shared.schema import RunManifest

LOG_LIMIT = 1 << 20
"""`.expd/queue.log` past this size becomes `queue.log.1` (the one before is dropped): a queue
that runs every night keeps at most about two of these."""


def _rotate(log_file: Path) -> None:
    try:
        if log_file.stat().st_size > LOG_LIMIT:
            os.replace(log_file, log_file.with_name(log_file.name + ".1"))
    except FileNotFoundError:
        pass


def chain_queue(paths: RunPaths, manifest: RunManifest) -> int | None:
    """Launch the detached starter when the repository's queue has entries; its pid."""
    repo = Path(manifest.repo)
    queue = QueuePaths(repo)
    try:
        if not queue.file.exists() or not read_queue(repo).pending():
            return None
        env = {k: v for k, v in os.environ.items() if k not in ("EXPD_FAULT", "EXPD_DAEMON_LOG")}
        _rotate(queue.log)
        fd = open_own(queue.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        try:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "shared.cli.main",
                    "queue",
                    "resume",
                    "--after",
                    str(paths.dir),
                ],
                cwd=repo,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=fd,
                stderr=fd,
                start_new_session=True,
                close_fds=True,
            )
        finally:
            os.close(fd)
    except Exception as exc:  # the run is over either way; `expd queue resume` does it by hand
        log(f"could not launch the queue's next run: {type(exc).__name__}: {exc}")
        return None
    log(f"queue: launched the starter of the next entry (pid {proc.pid})")
    return proc.pid
