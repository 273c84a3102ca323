"""The daemon's log lines: stderr, which the spawner points at `daemon.log`.

Every line passes the run's redactor (installed once the manifest is read): daemon.log is a file
expd writes, so no secret value may reach it, not even inside an error's traceback.
"""

from __future__ import annotations

import sys
import time

from shared.redact import NONE, Redactor

_redactor = NONE


def install(redactor: Redactor) -> None:
    global _redactor
    _redactor = redactor


def redactor() -> Redactor:
    return _redactor


def log(message: str) -> None:
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    print(f"{stamp} {_redactor.text(message)}", file=sys.stderr, flush=True)
