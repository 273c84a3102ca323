"""`[loop] notify`: a user command run once when a run ends, so a human hears about it.

It runs in a background thread (the loop never waits on it) with a 30 s timeout; the thread is
not a daemon thread, so the process reaps the command before it exits. Failures are logged and
recorded as an event, never raised: a broken notifier must not turn a finished run into a crash.
"""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Callable

from shared.schema import RunManifest, RunState
from shared.status import headline_improvement

TIMEOUT_S = 30.0


def notify_env(manifest: RunManifest, state: RunState, run_dir: str) -> dict[str, str]:
    pct = headline_improvement(state)
    ci = state.improvement_ci
    return {
        "EXPD_RUN_ID": manifest.run_id,
        "EXPD_REASON": state.termination_reason or "",
        "EXPD_IMPROVEMENT_PCT": "" if pct is None else f"{pct:.4g}",
        "EXPD_BEST": "" if state.best is None else f"{state.best:.10g}",
        "EXPD_BASELINE": "" if state.baseline is None else f"{state.baseline:.10g}",
        "EXPD_RUN_DIR": run_dir,
        "EXPD_IMPROVEMENT_CI": "" if not ci else f"{ci[0]:.4g} {ci[1]:.4g}",
    }


def _run(command: str, env: dict[str, str], cwd: str, report: Callable[[str], None]) -> None:
    try:
        proc = subprocess.run(
            command,
            shell=True,
            cwd=cwd,
            env={**os.environ, **env},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=TIMEOUT_S,
            start_new_session=True,
            check=False,
        )
    except subprocess.TimeoutExpired:
        report(f"notify command timed out after {TIMEOUT_S:.0f}s")
    except OSError as exc:
        report(f"notify command could not run: {exc}")
    else:
        if proc.returncode != 0:
            report(f"notify command exited {proc.returncode}: {proc.stderr.strip()[-300:]}")


def notify(
    command: str, env: dict[str, str], cwd: str, report: Callable[[str], None]
) -> threading.Thread:
    """Start the command in the background; `report` receives a failure message, if any."""
    thread = threading.Thread(target=_run, args=(command, env, cwd, report), name="expd-notify")
    thread.start()
    return thread
