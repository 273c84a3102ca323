"""Deterministic crash points for the crash-safety tests.

`EXPD_FAULT=name` (or `name@N` for experiment N only) makes the daemon SIGKILL itself when it
reaches that point, exactly as an out-of-memory kill or a power cut would stop it.
"""

from __future__ import annotations

import os
import signal

_SPEC = os.environ.get("EXPD_FAULT", "")
_NAME, _, _AT = _SPEC.partition("@")


def point(name: str, experiment: int | None = None) -> None:
    if not _NAME or name != _NAME:
        return
    if _AT and (experiment is None or str(experiment) != _AT):
        return
    os.kill(os.getpid(), signal.SIGKILL)
