"""Commands that open the Textual UI: `expd` on a terminal, `expd attach`, and `--attach` (a
program run's dashboard, or a bakeoff run's).

Textual is imported inside `open_tui` only: this module is loaded by the read paths' dispatcher,
and `expd status` must not pay for it. Leaving the UI never stops a run; on the way out it says
how to come back.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from shared import runs
from shared.errors import ContractError, UserError
from shared.paths import find_repo_root
from shared.status import ACTIVE, run_status

NEEDS_TERMINAL = "expd attach needs a terminal; use expd status --watch"


def on_terminal() -> bool:
    """The UI needs both ends of a terminal; a pipe or a file gets the plain-text forms."""
    try:
        return sys.stdin.isatty() and sys.stdout.isatty()
    except (AttributeError, ValueError):
        return False


def open_tui(*, repo: Path | None = None, run: runs.RunRef | None = None) -> runs.RunRef | None:
    """Run the app until the user leaves it; the run shown last (or None)."""
    from tui.app import ExpdApp

    app = ExpdApp(repo=repo, run=run)
    app.run()
    sys.stdout.flush()
    return app.last_run


def final_status(ref: runs.RunRef) -> Any:
    """The run's status (a program's StatusReport or a bakeoff's BakeoffStatus), or None."""
    try:
        return run_status(ref.paths, run_id=ref.run_id, kind=ref.kind)
    except ContractError:
        return None


def reattach_hint(ref: runs.RunRef) -> str:
    """How to come back: `expd attach RUN`, from the run's repository if we are elsewhere."""
    try:
        here = find_repo_root()
    except UserError:
        here = None
    repo = ref.repo.resolve() if ref.repo else None
    where = "" if repo is None or here == repo else f"cd {repo} && "
    return f"{where}expd attach {ref.run_id}"


def resume_command(ref: runs.RunRef) -> str:
    return f"expd bakeoff resume {ref.run_id}" if ref.is_bakeoff else f"expd resume {ref.run_id}"


def goodbye(ref: runs.RunRef | None) -> Any:
    """After the UI: say the run keeps going (if it does); the run's final status otherwise."""
    if ref is None:
        return None
    status = final_status(ref)
    if status is not None and status.daemon in ACTIVE:
        print(f"The run keeps going in the background. Reattach with: {reattach_hint(ref)}")
        return None
    return status


def cmd_attach(args: argparse.Namespace) -> int:
    if not on_terminal():
        raise UserError(NEEDS_TERMINAL)
    ref = runs.resolve(args.run)
    last = open_tui(run=ref)
    status = goodbye(last)
    if last is not None and status is not None and status.daemon == "dead":
        print(f"The daemon of {status.run_id} is not running: {resume_command(last)}")
    return 0


def home_tui(root: Path) -> int:
    """`expd` alone on a terminal: the home screen of the repository."""
    last = open_tui(repo=root)
    if last is None:  # no run opened: still say how to come back to the newest active one
        for ref in reversed(runs.repo_runs(root)):
            status = final_status(ref)
            if status is not None and status.daemon in ACTIVE:
                last = ref
                break
    goodbye(last)
    return 0
