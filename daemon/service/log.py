"""The daemon's log lines: stderr, which the spawner points at `daemon.log`."""

from __future__ import annotations

import sys
import time


def log(message: str) -> None:
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    print(f"{stamp} {message}", file=sys.stderr, flush=True)
