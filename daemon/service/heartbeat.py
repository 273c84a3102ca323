"""`daemon.json`: who the daemon is, and a heartbeat proving its event loop is responsive."""

from __future__ import annotations

import os
import socket
import time
import uuid

from shared import __version__, codec
from shared.atomic import write_atomic
from shared.paths import RunPaths
from shared.schema import DaemonInfo

HEARTBEAT_S = 2.0


class Heart:
    """Writes `daemon.json`; every beat proves the event loop is responsive."""

    def __init__(self, paths: RunPaths) -> None:
        now = time.time()
        self.paths = paths
        self.info = DaemonInfo(
            pid=os.getpid(),
            token=uuid.uuid4().hex,
            started_at=now,
            heartbeat_at=now,
            heartbeat_interval=HEARTBEAT_S,
            version=__version__,
            hostname=socket.gethostname(),
        )

    def beat(self) -> None:
        self.info.heartbeat_at = time.time()
        write_atomic(self.paths.daemon_json, codec.encode(self.info), durable=False)
