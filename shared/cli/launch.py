"""Commands that create or launch runs: init, start, resume, demo.

`daemon` is imported inside the handlers, so the read commands never pay for it (or for what it
imports: anyio, pygit2, Optuna).
"""

from __future__ import annotations

import argparse
import contextlib
import shlex
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec

from shared import drafts, runs
from shared.cli import render
from shared.cli.follow import follow_progress
from shared.cli.read import emit_json, warn
from shared.display import sandbox_line
from shared.errors import ContractError, UserError
from shared.locking import lock_blocking, unlock
from shared.paths import RepoPaths, RunPaths, check_program_name, find_repo_root
from shared.programs import load_program, scaffold
from shared.queue import QueuePaths
from shared.status import StatusReport, build_status

ATTACH_OK = frozenset({"max_experiments", "stagnation", "budget", "stopped"})
DEMO_OK = frozenset({"max_experiments", "stagnation"})


DRAFT_ONLY = ("command", "yes")


def cmd_init(args: argparse.Namespace) -> int:
    if args.draft:
        from shared.cli.draft import cmd_draft

        return cmd_draft(args)
    missing = [f"--{k}" for k in ("metric", "direction") if getattr(args, k) is None]
    if missing:
        raise UserError(f"the following arguments are required: {', '.join(missing)} (or --draft)")
    for key in DRAFT_ONLY:
        if getattr(args, key):
            raise UserError(f"--{key} goes with --draft")
    args.agent = args.agent or "command"
    root = find_repo_root()
    paths = scaffold(
        RepoPaths(root),
        args.name,
        measure=args.measure,
        metric=args.metric,
        direction=args.direction,
        agent=args.agent,
        model=args.model,
    )
    if args.json:
        emit_json({"program": args.name, "dir": str(paths.dir)})
        return 0
    lines = [
        f"created program {args.name} in {paths.dir}",
        "  program.md    instructions for the agent: goal, files in scope, rules (edit it)",
        "  measure.sh    prints the metric"
        + ("" if args.measure else " (replace the placeholder)"),
        "  program.toml  metric, direction, limits, agent",
    ]
    if args.agent == "command":
        lines.append(
            "  the agent is [agent] command in program.toml (it reads the prompt on stdin)"
        )
    if args.agent == "tune":
        lines.append("  declare the values to tune in [tune.params.NAME] tables of program.toml")
    lines.append(f"next: expd start {args.name}")
    print("\n".join(lines))
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    """Exit 0 when the measurement can support decisions, 1 (with the reason) when not."""
    root = find_repo_root()
    check_program_name(args.name)
    load_program(RepoPaths(root).program(args.name))  # a clear error before the daemon import

    from daemon.commands.validate import unprotected, validate

    if not args.json:
        print(f"measuring {args.name} at HEAD: build, 1 warm-up, {args.runs} runs…", flush=True)
    shown = None if args.json else (lambda done, total, message: print(f"  {message}", flush=True))
    result = validate(root, args.name, args.runs, shown)
    if result["usable"]:
        drafts.accept(RepoPaths(root).program(args.name))  # a fixed draft becomes startable
    if args.json:
        emit_json(result)
    else:
        print(render.calibration_text(result))
    if not result["usable"]:
        if args.json:
            print(f"expd: error: {result['reason']}", file=sys.stderr)
            return 1
        raise UserError(result["reason"])
    for warning in unprotected(root, args.name):
        warn(warning)
    return 0


class StartReply(msgspec.Struct):
    """What `expd start --json` (and `resume --json`) prints once the daemon is alive."""

    run_id: str
    pid: int
    worktree: str
    branch: str
    sandbox: str


def start_reply(started: Any) -> StartReply:
    return StartReply(
        run_id=started.run_id,
        pid=started.pid,
        worktree=str(started.worktree),
        branch=started.branch,
        sandbox=started.sandbox,
    )


def start_program(
    root: Path,
    name: str,
    *,
    max_experiments: int | None = None,
    agent: str | None = None,
    model: str | None = None,
    fresh: bool = False,
) -> Any:
    """Start a run of program `name` in a detached daemon (`expd start`); its `Started`."""
    check_program_name(name)
    load_program(RepoPaths(root).program(name))  # a clear error before the daemon import
    drafts.check_startable(RepoPaths(root).program(name))

    from daemon.commands.spawn import start_run

    with _beside_the_queue(root):
        return start_run(
            root, name, max_experiments=max_experiments, agent=agent, model=model, fresh=fresh
        )


@contextlib.contextmanager
def _beside_the_queue(root: Path) -> Iterator[None]:
    """A start by hand in a repository with a queue takes the queue's start lock, as its starters
    do: a starter checks that no run is live and starts its entry under that lock, so a run
    started by hand at the same moment is either seen by it or starts after its entry."""
    queue = QueuePaths(root)
    if not queue.file.exists():
        yield
        return
    fd = lock_blocking(queue.start_lock)
    try:
        yield
    finally:
        unlock(fd)


def resume_program_run(ref: runs.RunRef) -> Any:
    """Relaunch the daemon of an interrupted program run (`expd resume`); its `Started`."""
    try:
        status: StatusReport | None = build_status(ref.paths, run_id=ref.run_id)
    except ContractError:
        # An unreadable state.json: resume_run still checks the lock; the daemon rebuilds it.
        status = None
    if status is not None and status.daemon in ("running", "starting"):
        raise UserError(f"run {ref.run_id} is already running (pid {status.pid})")
    if status is not None and status.daemon == "hung":
        raise UserError(
            f"run {ref.run_id} has an unresponsive daemon (pid {status.pid}): "
            f"kill {status.pid} first, then resume"
        )

    from daemon.commands.spawn import resume_run

    return resume_run(ref.paths.dir)


def _ref(started: Any, repo: Path | None) -> runs.RunRef:
    program, _, stamp = str(started.run_id).partition("/")
    return runs.RunRef(program, stamp, RunPaths(Path(started.run_dir)), repo)


def _announce(args: argparse.Namespace, verb: str, started: Any) -> None:
    if args.json:
        emit_json(start_reply(started))
        return
    lines = [
        f"{verb} run {started.run_id} (pid {started.pid})",
        f"  worktree {started.worktree} (branch {started.branch})",
        f"  sandbox  {sandbox_line(started.sandbox)}",
    ]
    if started.sandbox_detail:
        lines.append(f"           ({started.sandbox_detail})")
    print("\n".join([*lines, f"  watch: expd status {started.run_id}"]))


def follow_to_end(ref: runs.RunRef, look: str) -> StatusReport | None:
    """Progress lines until the daemon finishes, then a summary; None when the user detached."""
    try:
        final = follow_progress(ref, sys.stdout, interval=0.25 if sys.stdout.isatty() else 1.0)
    except KeyboardInterrupt:
        print(f"\ndetached; the run continues (see: expd status {ref.run_id})")
        return None
    print()
    print(render.summary_text(final, look))
    return final


def watch_to_end(ref: runs.RunRef, look: str, *, tui: bool = True) -> StatusReport | None:
    """The dashboard on a terminal (else plain progress lines); the final status if the run
    ended while watched, None if the user left it running."""
    from shared.cli.tui import goodbye, on_terminal, open_tui

    if not (tui and on_terminal()):
        return follow_to_end(ref, look)
    open_tui(run=ref)
    final = goodbye(ref)
    if final is not None and final.daemon == "finished":
        print(render.summary_text(final, look))
    return final


def _ended_well(final: StatusReport | None, ok: frozenset[str]) -> bool:
    if final is None:
        return True
    return final.phase == "complete" and final.termination_reason in ok


def _ending(final: StatusReport) -> str:
    reason = final.termination_reason or f"daemon {final.daemon}"
    message = f": {final.message}" if final.message else ""
    return f"run {final.run_id} ended {final.phase} ({reason}){message}"


def cmd_start(args: argparse.Namespace) -> int:
    root = find_repo_root()
    started = start_program(
        root,
        args.name,
        max_experiments=args.max_experiments,
        agent=args.agent,
        model=args.model,
        fresh=args.fresh,
    )
    _announce(args, "started", started)
    if started.noise:
        warn(started.noise)
    if not args.attach:
        return 0
    final = watch_to_end(_ref(started, root), f"expd results {started.run_id}")
    if not _ended_well(final, ATTACH_OK):
        assert final is not None
        raise UserError(_ending(final))
    return 0


def cmd_resume(args: argparse.Namespace) -> int:
    ref = runs.resolve(args.run)
    if ref.is_bakeoff:
        from shared.cli.bakeoff_launch import cmd_resume as resume_bakeoff

        args.run, args.retry_errors = str(ref.paths.dir), False
        return resume_bakeoff(args)
    started = resume_program_run(ref)
    _announce(args, "resumed", started)
    if not args.attach:
        return 0
    final = watch_to_end(_ref(started, ref.repo), f"expd results {started.run_id}")
    if not _ended_well(final, ATTACH_OK):
        assert final is not None
        raise UserError(_ending(final))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """A fresh repository with a `tune` program, one run followed to its end, and a summary."""
    if args.dir:
        directory = Path(args.dir).expanduser().resolve()
    else:
        directory = Path(tempfile.mkdtemp(prefix="expd-demo-"))

    from daemon.commands.demo import write_demo_repo
    from daemon.commands.spawn import start_run

    name = write_demo_repo(directory)
    print(f"demo repository {directory} (program {name}): the built-in offline tuner, no API key")
    started = start_run(directory, name)
    print(f"started run {started.run_id} (pid {started.pid})\n")
    sys.stdout.flush()
    look = f"cd {shlex.quote(str(directory))} && expd results"
    final = watch_to_end(_ref(started, directory), look, tui=not args.no_tui)
    if not _ended_well(final, DEMO_OK):
        assert final is not None
        raise UserError(_ending(final))
    return 0
