"""`expd bakeoff init`, `start`, `resume` and `replay`: the commands that create or launch
bakeoff runs. The work is `daemon/commands/bakeoff.py`, imported inside the handlers so the read
commands never pay for it.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import msgspec

from shared import codec, runs
from shared.bakeoffs.config import load_bakeoff, scaffold
from shared.bakeoffs.grading import read_records
from shared.bakeoffs.paths import BakeoffPaths, BakeoffRunPaths, check_id
from shared.bakeoffs.schema import BakeoffManifest, BakeoffSpec, attempt_key
from shared.bakeoffs.status import BakeoffStatus, build_bakeoff_status, read_state
from shared.cli.bakeoff_follow import follow_attempts, summary_lines
from shared.cli.read import emit_json
from shared.display import sandbox_line
from shared.errors import ContractError, UserError
from shared.liveness import held
from shared.paths import find_repo_root
from shared.programs import exclude_expd
from shared.status import ACTIVE

ENDED_WELL = frozenset({"finished", "budget", "stopped"})
ACK_TIMEOUT_S = 60.0
"""How long `replay` waits for the daemon (relaunched if need be) to take the request."""
POLL_S = 0.1
QUEUE_GRACE_S = 5.0
"""How long after the acknowledgement the queued replay may take to appear."""


def cmd_init(args: argparse.Namespace) -> int:
    root = find_repo_root()
    toml = scaffold(BakeoffPaths(root, args.name))
    exclude_expd(root)
    if args.json:
        emit_json({"bakeoff": args.name, "path": str(toml)})
        return 0
    print(
        f"created bakeoff {args.name}: {toml}\n"
        "  [[variant]]  the agent setups to compare (any [agent] key, plus prompt_prefix)\n"
        "  [[task]]     what each variant does: prompt, base, criteria\n"
        f"next: edit it, then: expd bakeoff start {args.name}"
    )
    return 0


def _matrix(spec: BakeoffSpec) -> str:
    def n(count: int, word: str) -> str:
        return f"{count} {word}{'' if count == 1 else 's'}"

    return (
        f"{n(len(spec.tasks), 'task')} × {n(len(spec.variants), 'variant')} × "
        f"{n(spec.attempts, 'attempt')} = {n(spec.total(), 'attempt')}, {spec.concurrency} at once"
    )


class BakeoffStartReply(msgspec.Struct):
    """What `expd bakeoff start --json` (and `resume --json`) prints once the daemon is alive."""

    run_id: str
    pid: int
    run_dir: str


def start_bakeoff_run(root: Path, name: str) -> Any:
    """Start a run of bakeoff `name` in a detached daemon (`expd bakeoff start`); its start."""
    load_bakeoff(BakeoffPaths(root, name))  # a clear error before the daemon import

    from daemon.commands.bakeoff import start_bakeoff

    return start_bakeoff(root, name)


def _announce(args: argparse.Namespace, verb: str, started: Any) -> None:
    if args.json:
        emit_json(BakeoffStartReply(started.run_id, started.pid, str(started.run_dir)))
        return
    lines = [f"{verb} bakeoff run {started.run_id} (pid {started.pid})"]
    try:
        manifest = codec.read(BakeoffRunPaths(Path(started.run_dir)).run_json, BakeoffManifest)
        lines.append(f"  matrix   {_matrix(manifest.spec)}")
    except ContractError:
        pass
    if started.sandbox:
        lines.append(f"  sandbox  {sandbox_line(started.sandbox, bakeoff=True)}")
    if started.sandbox_detail:
        lines.append(f"           ({started.sandbox_detail})")
    lines.append(
        f"  watch:   expd attach {started.run_id}   or   expd status {started.run_id} --watch"
    )
    print("\n".join(lines))


def _status(ref: runs.RunRef) -> BakeoffStatus | None:
    try:
        return build_bakeoff_status(BakeoffRunPaths(ref.paths.dir), run_id=ref.run_id)
    except ContractError:
        return None


def watch_to_end(ref: runs.RunRef, *, from_start: bool) -> BakeoffStatus | None:
    """The dashboard on a terminal, else a line per attempt; the final status if the run ended
    while watched, None if the user left it running."""
    from shared.cli.tui import on_terminal, open_tui, reattach_hint

    if on_terminal():
        open_tui(run=ref)
        final = _status(ref)
        if final is not None and final.daemon in ACTIVE:
            print(f"The bakeoff keeps going in the background. Reattach with: {reattach_hint(ref)}")
            return None
    else:
        try:
            interval = 0.25 if sys.stdout.isatty() else 1.0
            final = follow_attempts(ref, sys.stdout, interval=interval, from_start=from_start)
        except KeyboardInterrupt:
            print(f"\ndetached; the bakeoff continues (see: expd status {ref.run_id})")
            return None
    if final is not None and final.daemon == "finished":
        print("\n".join(["", *summary_lines(final), f"report: expd bakeoff report {ref.run_id}"]))
    return final


def _attach(ref: runs.RunRef, *, from_start: bool) -> int:
    final = watch_to_end(ref, from_start=from_start)
    if final is None:
        return 0
    if final.phase == "complete" and final.termination_reason in ENDED_WELL:
        return 0
    reason = final.termination_reason or f"daemon {final.daemon}"
    message = f": {final.message}" if final.message else ""
    raise UserError(f"bakeoff run {final.run_id} ended {final.phase} ({reason}){message}")


def cmd_start(args: argparse.Namespace) -> int:
    root = find_repo_root()
    started = start_bakeoff_run(root, args.name)
    _announce(args, "started", started)
    if not args.attach:
        return 0
    return _attach(runs.ref_for_dir(Path(started.run_dir), root), from_start=True)


def _not_running(ref: runs.RunRef) -> None:
    status = _status(ref)  # an unreadable state: resume still checks the lock
    if status is not None and status.daemon in ("running", "starting"):
        raise UserError(f"bakeoff run {ref.run_id} is already running (pid {status.pid})")
    if status is not None and status.daemon == "hung":
        raise UserError(
            f"bakeoff run {ref.run_id} has an unresponsive daemon (pid {status.pid}): "
            f"kill {status.pid} first, then resume"
        )


def cmd_resume(args: argparse.Namespace) -> int:
    ref = runs.resolve(args.run, kind="bakeoff")
    _not_running(ref)

    from daemon.commands.bakeoff import resume_bakeoff

    started = resume_bakeoff(ref.paths.dir, retry_errors=args.retry_errors)
    _announce(args, "resumed", started)
    if not args.attach:
        return 0
    return _attach(runs.ref_for_dir(Path(started.run_dir), ref.repo), from_start=False)


# --------------------------------------------------------------------------- replay


def _listed(values: list[str] | set[str]) -> str:
    return ", ".join(sorted(values)) or "none"


def check_replay(
    paths: BakeoffRunPaths, *, task: str, variant: str, attempt: int, as_variant: str
) -> str:
    """The original attempt's key, once the task, variant and recorded attempt exist in the run
    and `as_variant` names a variant of the run or of the bakeoff's current bakeoff.toml."""
    try:
        manifest = codec.read(paths.run_json, BakeoffManifest)
    except ContractError as exc:
        raise UserError(f"cannot replay: {exc}") from None
    spec, run_id = manifest.spec, manifest.run_id or paths.dir.name
    tasks, variants = [t.id for t in spec.tasks], [v.id for v in spec.variants]
    if task not in tasks:
        raise UserError(f"no task {task!r} in bakeoff run {run_id} (tasks: {_listed(tasks)})")
    if variant not in variants:
        raise UserError(
            f"no variant {variant!r} in bakeoff run {run_id} (variants: {_listed(variants)})"
        )
    records = read_records(paths)
    done = {r.attempt for r in records if (r.task, r.variant) == (task, variant)}
    if attempt not in done:
        listed = ", ".join(str(n) for n in sorted(done)) or "none yet"
        raise UserError(
            f"attempt {attempt_key(task, variant, attempt)} is not recorded in bakeoff run "
            f"{run_id} (recorded attempts of {task} by {variant}: {listed})"
        )
    check_id(as_variant, "variant id")
    if as_variant not in variants:
        current: list[str] = []
        if manifest.repo and manifest.name:
            try:
                bakeoff = BakeoffPaths(Path(manifest.repo), manifest.name)
                current = [v.id for v in load_bakeoff(bakeoff).variants]
            except UserError as exc:
                raise UserError(
                    f"--as {as_variant!r} is not a variant of bakeoff run {run_id}, and its "
                    f"bakeoff.toml cannot be read: {exc}"
                ) from None
        if as_variant not in current:
            raise UserError(
                f"--as {as_variant!r} is not a variant of bakeoff run {run_id} "
                f"({_listed(variants)}) nor of its bakeoff.toml ({_listed(set(current))})"
            )
    return attempt_key(task, variant, attempt)


def _acked(paths: BakeoffRunPaths, request_id: str) -> bool:
    try:
        state = read_state(paths)
    except ContractError:
        return False
    return state is not None and request_id in state.acked


def replay_key(paths: BakeoffRunPaths, original: str, as_variant: str) -> str | None:
    """The newest attempt that replays `original` with `as_variant`: queued or recorded."""
    try:
        state = read_state(paths)
    except ContractError:
        state = None
    found = [
        r.attempt
        for r in (state.replays if state else [])
        if (r.of, r.variant) == (original, as_variant)
    ]
    found += [
        r.attempt for r in read_records(paths) if (r.replay_of, r.variant) == (original, as_variant)
    ]
    if not found:
        return None
    task = original.split("/", 1)[0]
    return attempt_key(task, as_variant, max(found))


def cmd_replay(args: argparse.Namespace) -> int:
    ref = runs.resolve(args.run, kind="bakeoff")
    paths = BakeoffRunPaths(ref.paths.dir)
    original = check_replay(
        paths,
        task=args.task,
        variant=args.variant,
        attempt=args.attempt,
        as_variant=args.as_variant,
    )

    from daemon.commands.bakeoff import request_replay

    request_id, relaunched = request_replay(
        paths.dir,
        task=args.task,
        variant=args.variant,
        attempt=args.attempt,
        as_variant=args.as_variant,
    )
    if relaunched is not None and not args.json:
        print(f"the daemon was not running: relaunched it (pid {relaunched.pid})")
    deadline = time.monotonic() + ACK_TIMEOUT_S
    while not _acked(paths, request_id):
        # The lock, not the phase: a relaunched daemon shows the last run's end until it writes.
        if not held(paths) and not _acked(paths, request_id):
            raise UserError(
                f"the daemon of {ref.run_id} ended before it took replay request {request_id} "
                f"(resume with: expd bakeoff resume {ref.run_id})"
            )
        if time.monotonic() > deadline:
            raise UserError(
                f"the daemon did not acknowledge replay request {request_id} within "
                f"{ACK_TIMEOUT_S:g} s (see: expd status {ref.run_id})"
            )
        time.sleep(POLL_S)
    # The acknowledgement and the queued replay may land in two writes of the state.
    key = replay_key(paths, original, args.as_variant)
    deadline = time.monotonic() + QUEUE_GRACE_S
    while key is None and time.monotonic() < deadline:
        time.sleep(POLL_S)
        key = replay_key(paths, original, args.as_variant)
    if key is None:
        message = getattr(_status(ref), "message", "")
        raise UserError(
            f"the daemon took replay request {request_id} but queued no attempt"
            + (f": {message}" if message else f" (see: expd status {ref.run_id})")
        )
    if args.json:
        emit_json(
            {
                "run_id": ref.run_id,
                "request_id": request_id,
                "relaunched": relaunched is not None,
                "attempt": key,
            }
        )
        return 0
    print(
        f"replay of {original} as {args.as_variant} queued (request {request_id}): attempt {key}\n"
        f"  watch: expd status {ref.run_id}   results: expd bakeoff results {ref.run_id} "
        f"--task {args.task}"
    )
    return 0
