"""Read-only commands: status, results, logs, list (program and bakeoff runs alike).

Everything here reads run files directly and imports only the standard library, msgspec and
`shared`, so these commands answer in milliseconds and work while the daemon runs.
"""

from __future__ import annotations

import argparse
import codecs
import contextlib
import sys
import time
from pathlib import Path
from typing import Any

import msgspec

from shared import codec, display, runs
from shared.cli import render
from shared.cli.follow import decode_results, follow_progress, watch_screen
from shared.errors import ContractError, UserError
from shared.housekeeping import fmt_bytes
from shared.listing import ProgramListing, UnreadableRun, bakeoff_listing, program_listing
from shared.paths import RunPaths, find_repo_root
from shared.schema import ResultRecord
from shared.status import StatusReport, build_status, exit_code, read_state, run_status
from shared.tail import head_lines, last_lines, read_complete_lines, read_from

LOG_POLL_S = 0.5


def emit_json(obj: Any) -> None:
    """Indented UTF-8 JSON on stdout (msgspec is loaded anyway; the json module is not)."""
    print(msgspec.json.format(msgspec.json.encode(obj), indent=2).decode())


def warn(message: str) -> None:
    print(f"expd: warning: {message}", file=sys.stderr)


# --------------------------------------------------------------------------- status


def cmd_status(args: argparse.Namespace) -> int:
    if args.all:
        if args.run or args.watch:
            raise UserError("--all lists every active run: it takes no RUN and no --watch")
        return _status_all(args.json)
    ref = runs.resolve(args.run)
    if args.watch and args.json:
        raise UserError("--watch redraws for people: it cannot be combined with --json")
    if ref.is_bakeoff:
        return _bakeoff_status(ref, watch=args.watch, as_json=args.json)
    if args.watch:
        return _watch(ref)
    status = build_status(ref.paths, run_id=ref.run_id)
    if args.json:
        emit_json(status)
    else:
        print(render.status_text(status))
    return exit_code(status)


def _status_all(as_json: bool) -> int:
    """Runs (programs' and bakeoffs') of every repository that are not finished (the dead ones
    need a resume)."""
    statuses: list[Any] = []
    refs = runs.indexed_runs()
    for ref in refs:
        try:
            status = run_status(ref.paths, run_id=ref.run_id, kind=ref.kind)
        except ContractError as exc:
            warn(str(exc))
            continue
        if status.daemon == "finished":
            continue
        status.repo = status.repo or (str(ref.repo) if ref.repo else None)
        statuses.append(status)
    queued = _queued(refs)
    if as_json:
        emit_json([*statuses, *queued])
        return 0
    if statuses:
        from shared.cli import bakeoff_render

        print(bakeoff_render.status_table(statuses))
    else:
        print("no active runs")
    if queued:
        from shared.cli.queue_text import queued_table

        print(f"\n{queued_table(queued)}")
    return 0


def _queued(refs: list[runs.RunRef]) -> list[Any]:
    """Entries waiting in the queues of the repositories the index knows and of this one."""
    from shared.queue import queued_statuses

    repos = [ref.repo for ref in refs if ref.repo is not None]
    with contextlib.suppress(UserError):
        repos.append(find_repo_root())
    try:
        return list(queued_statuses(repos))
    except ContractError as exc:
        warn(str(exc))
        return []


def _bakeoff_status(ref: runs.RunRef, *, watch: bool, as_json: bool) -> int:
    from shared.cli import bakeoff_render

    if watch:
        try:
            final = bakeoff_render.watch(ref, sys.stdout)
        except KeyboardInterrupt:
            print()
            final = bakeoff_render.read_status(ref)
        return exit_code(final)
    status = bakeoff_render.read_status(ref)
    if as_json:
        emit_json(status)
    else:
        print(bakeoff_render.status_text(status))
    return exit_code(status)


def _watch(ref: runs.RunRef) -> int:
    """Redraw on a terminal; elsewhere (a pipe, a log) print one line per change."""
    try:
        if sys.stdout.isatty():
            final = watch_screen(ref, sys.stdout)
        else:
            print(render.status_text(build_status(ref.paths, run_id=ref.run_id)))
            final = follow_progress(ref, sys.stdout, from_start=False)
    except KeyboardInterrupt:
        print()
        return exit_code(build_status(ref.paths, run_id=ref.run_id))
    return exit_code(final)


# --------------------------------------------------------------------------- results


def _baseline(paths: RunPaths, records: list[ResultRecord]) -> float | None:
    """The run's first baseline (experiment 0), so Δ% means the same in every view."""
    for rec in records:
        if rec.status == "baseline":
            return rec.metric
    head, _ = decode_results(head_lines(paths.results, 65536))
    for rec in head:
        if rec.status == "baseline":
            return rec.metric
    try:
        state = read_state(paths)
    except ContractError:
        return None
    return state.baseline if state else None


def cmd_results(args: argparse.Namespace) -> int:
    ref = runs.resolve(args.run, kind="program")
    path = ref.paths.results
    if args.limit is not None:
        lines = last_lines(path, args.limit) if args.limit > 0 else []
    else:
        lines = read_complete_lines(path)
    records, bad = decode_results(lines)
    if bad:
        warn(f"{path}: skipped {bad} unreadable line(s)")
    if args.json:
        emit_json([codec.to_builtins(r) for r in records])
        return 0
    baseline = _baseline(ref.paths, records)
    if args.tsv:
        print(render.results_tsv(records, baseline))
    else:
        print(render.results_table(records, baseline, render.terminal_width(sys.stdout)))
    return 0


# --------------------------------------------------------------------------- logs


def _newest_agent_log(paths: RunPaths) -> Path | None:
    if not paths.agent_dir.is_dir():
        return None
    logs = [p for p in paths.agent_dir.glob("*.log") if p.stem.isdigit()]
    return max(logs, key=lambda p: int(p.stem)) if logs else None


def _current_log(paths: RunPaths) -> Path | None:
    """The in-flight experiment's agent log, else the last one, else None."""
    try:
        state = read_state(paths)
    except ContractError:
        state = None
    if state is not None:
        number = state.in_flight.experiment if state.in_flight else state.experiment
        candidate = paths.agent_log(number)
        if candidate.exists():
            return candidate
    return _newest_agent_log(paths)


def find_log(ref: runs.RunRef, experiment: int | None, *, required: bool = True) -> Path | None:
    """Experiment `experiment`'s agent log, or (None) the in-flight or last one, else the daemon
    log; None when there is none yet and it is not `required`."""
    paths = ref.paths
    if experiment is not None:
        log = paths.agent_log(experiment)
        if not log.exists() and experiment == 0:
            raise UserError(f"experiment 0 of {ref.run_id} is the baseline: it has no agent log")
        if not log.exists():
            raise UserError(f"no agent log for experiment {experiment} of {ref.run_id} ({log})")
        return log
    log = _current_log(paths) or (paths.daemon_log if paths.daemon_log.exists() else None)
    if log is None and required:
        raise UserError(f"no logs yet for run {ref.run_id} (in {paths.dir})")
    return log


def cmd_logs(args: argparse.Namespace) -> int:
    ref = runs.resolve(args.run, kind="program")
    log = find_log(ref, args.experiment, required=not args.follow)
    if log is not None:
        print(f"expd: {log}", file=sys.stderr)
    if args.follow:
        _follow_log(ref, log, only=args.experiment)
        return 0
    assert log is not None
    _copy(log, 0, codecs.getincrementaldecoder("utf-8")("replace"))
    return 0


def _copy(path: Path, offset: int, decoder: codecs.IncrementalDecoder) -> int:
    """Write what `path` holds past `offset` to stdout; the new offset."""
    for chunk in read_from(path, offset):
        offset += len(chunk)
        sys.stdout.write(decoder.decode(chunk))
    sys.stdout.flush()
    return offset


def _experiment_over(status: StatusReport, experiment: int) -> bool:
    in_flight = status.in_flight
    busy = in_flight is not None and in_flight.experiment == experiment
    return not busy and status.experiment >= experiment


def _follow_log(ref: runs.RunRef, log: Path | None, *, only: int | None) -> None:
    """Tail by byte offset until the run (or experiment `only`) is over; without `only`, move on
    to each newer experiment's log as it starts."""
    switch = only is None
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    offset = 0
    while True:
        if log is not None:
            offset = _copy(log, offset, decoder)
        status = build_status(ref.paths, run_id=ref.run_id)
        if switch:
            newer = _current_log(ref.paths)
            if (
                newer is not None
                and newer != log
                and (log is None or log.parent != newer.parent or int(newer.stem) > int(log.stem))
            ):
                if log is not None:
                    _copy(log, offset, decoder)
                print(f"\n--- experiment {int(newer.stem)} ({newer}) ---", flush=True)
                log, offset = newer, 0
                decoder = codecs.getincrementaldecoder("utf-8")("replace")
                continue
        over = only is not None and _experiment_over(status, only)
        if over or status.daemon in ("finished", "dead"):
            if log is not None:
                _copy(log, offset, decoder)
            sys.stdout.write(decoder.decode(b"", final=True))
            if status.daemon == "dead":
                print(render.alert(status), file=sys.stderr)
            return
        time.sleep(LOG_POLL_S)


# --------------------------------------------------------------------------- list


def listing_text(root: Path, programs: list[ProgramListing]) -> str:
    if not programs:
        return (
            f"no programs in {root} (create one with: "
            "expd init NAME --measure CMD --metric F --direction lower|higher)"
        )
    lines = []
    for p in programs:
        head = p.program
        if p.error:
            head += f"  (invalid: {p.error})"
        else:
            head += f"  {p.metric} ({p.direction} is better) · agent {p.agent}"
        lines.append(head)
        if not p.runs:
            lines.append(f"  no runs — start one with: expd start {p.program}")
        for s in p.runs:
            if isinstance(s, UnreadableRun):
                lines.append(f"  {s.run_id}  unreadable: {s.error}")
                continue
            best = f"best {display.fmt_num(s.best)}" if s.best is not None else "no best yet"
            better = display.better_word(s.improvement_pct)
            disk = "" if s.disk_bytes is None else f"  {fmt_bytes(s.disk_bytes)}"
            cleaned = "  cleaned" if s.cleaned_at else ""
            lines.append(
                f"  {s.run_id}  {s.phase:<13} {s.daemon:<9} "
                f"{display.progress_of(s):>7}  {best}{'  ' + better if better else ''}"
                f"{disk}{cleaned}"
            )
    return "\n".join(lines)


def cmd_list(args: argparse.Namespace) -> int:
    """Programs and their runs, then bakeoffs and theirs (`kind` tells them apart in JSON)."""
    root = find_repo_root()
    programs = program_listing(root, disk=True)
    bakeoffs = bakeoff_listing(root, disk=True)
    if args.json:
        emit_json([*programs, *bakeoffs])
    elif bakeoffs:
        from shared.cli import bakeoff_render

        text = bakeoff_render.listing_text(bakeoffs)
        print(f"{listing_text(root, programs)}\n\n{text}" if programs else text)
    else:
        print(listing_text(root, programs))
    return 0
