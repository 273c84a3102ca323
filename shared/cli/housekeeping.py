"""`clean` and `delete`: the CLI side (arguments, confirmation, output); the work is
`daemon/commands/clean.py` and `daemon/commands/delete.py`, imported only by these commands."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from shared import runs
from shared.cli.read import emit_json
from shared.errors import UserError
from shared.footprint import run_disk_bytes
from shared.housekeeping import fmt_bytes, parse_age
from shared.liveness import held
from shared.paths import find_repo_root
from shared.status import ACTIVE, run_status


def add_clean_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", metavar="RUN", nargs="?", help="only this run (id or unique prefix)")
    p.add_argument("--older-than", metavar="DURATION", help="only runs that ended before, e.g. 7d")
    p.add_argument("--dry-run", action="store_true", help="print what would be removed")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    p.add_argument(
        "--include-dead", action="store_true", help="also runs that could still be resumed"
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")


def add_delete_arguments(p: argparse.ArgumentParser) -> None:
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("run", metavar="RUN", nargs="?", help="the run (id or unique prefix)")
    which.add_argument("--program", metavar="NAME", help="a program and all its runs")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def confirm(question: str, yes: bool, command: str) -> bool:
    """True when the user agreed (or passed --yes); off a terminal without --yes: an error."""
    if yes:
        return True
    if not sys.stdin.isatty():
        raise UserError(f"{command} cannot be undone: pass --yes to confirm (no terminal to ask)")
    print(f"{question} [y/N] ", end="", file=sys.stderr, flush=True)
    try:
        answer = sys.stdin.readline().strip().lower()
    except (OSError, EOFError):
        answer = ""
    return answer in ("y", "yes")


# --------------------------------------------------------------------------- clean


def cmd_clean(args: argparse.Namespace) -> int:
    older = parse_age(args.older_than) if args.older_than else None
    root = find_repo_root()
    named = runs.resolve(args.run) if args.run else None
    if named is not None:  # named by its path, it may be another repository's run
        root = named.repo or named.paths.dir.resolve().parents[4]
        named = runs.RunRef(named.program, named.stamp, named.paths, root, named.kind)
    from daemon.commands.clean import clean  # git and tree removal: only this command

    def run(dry: bool) -> Any:
        return clean(root, named, older_than=older, include_dead=args.include_dead, dry_run=dry)

    if args.dry_run:
        _print_clean(run(True), args.json)
        return 0
    if not args.yes:
        preview = run(True)
        if not preview.cleaned:
            _print_clean(preview, args.json)
            return 0
        if not args.json:
            _print_clean(preview, False)
        count = len(preview.cleaned)
        question = f"Clean {count} run{'s' if count != 1 else ''} (trees, discarded refs)?"
        if not confirm(question, args.yes, "expd clean"):
            print("nothing cleaned", file=sys.stderr)
            return 1
    _print_clean(run(False), args.json)
    return 0


def _trees(paths: list[str]) -> int:
    """How many of the removed paths are trees (the rest is the run directory's `git/`)."""
    return sum(1 for p in paths if not p.endswith("/git"))


def _n(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _print_clean(report: Any, as_json: bool) -> None:
    if as_json:
        emit_json(
            {
                "dry_run": report.dry_run,
                "cleaned": [
                    {
                        "run_id": c.run_id,
                        "trees": c.trees,
                        "tree_bytes": c.tree_bytes,
                        "refs": c.refs,
                        "objects": c.objects,
                        "object_bytes": c.object_bytes,
                        "finished_interrupted": c.finishing,
                        "note": c.note,
                    }
                    for c in report.cleaned
                ],
                "skipped": [{"run_id": r, "reason": why} for r, why in report.skipped],
                "deletes_finished": report.deletes_finished,
                "objects_before": report.objects_before,
                "objects_after": report.objects_after,
                "reclaimed_bytes": report.reclaimed,
            }
        )
        return
    verb = "would clean" if report.dry_run else "cleaned"
    for run_id in report.deletes_finished:
        print(f"finished the interrupted delete of {run_id}")
    for c in report.cleaned:
        again = " (finishing an interrupted clean)" if c.finishing else ""
        up_to = "up to " if report.dry_run else ""  # those nothing else reaches, when it runs
        objects = f", {up_to}{_n(c.objects, 'object')}" if c.objects else ""
        print(
            f"{verb} {c.run_id}: {_n(_trees(c.trees), 'tree')} and expd's git dirs "
            f"({fmt_bytes(c.tree_bytes)}), {_n(c.refs, 'ref')} of experiments not kept"
            f"{objects}{again}"
        )
        if c.note:
            print(f"  note: {c.note}")
    for run_id, why in report.skipped:
        print(f"left {run_id}: {why}")
    if not report.cleaned:
        print("nothing to clean")
        return
    if report.dry_run:
        total = sum(c.tree_bytes for c in report.cleaned)
        print(f"would reclaim {fmt_bytes(total)} of trees, plus unreferenced objects")
        return
    before, after = report.objects_before, report.objects_after
    print(f"repository objects: {fmt_bytes(before)} → {fmt_bytes(after)}")
    if report.note:
        print(f"note: {report.note}")
    print(f"reclaimed {fmt_bytes(report.reclaimed)}")


# --------------------------------------------------------------------------- delete


def _refuse_active(ref: runs.RunRef) -> None:
    status = run_status(ref.paths, run_id=ref.run_id, kind=ref.kind)
    if status.daemon in ACTIVE or held(ref.paths):
        stop = f"expd bakeoff stop {ref.run_id}" if ref.is_bakeoff else f"expd stop {ref.run_id}"
        raise UserError(f"run {ref.run_id} is running; stop it first: {stop}")


def cmd_delete(args: argparse.Namespace) -> int:
    root = find_repo_root()
    from daemon.commands import delete  # git and tree removal: only this command

    finished = delete.finish_pending(root)
    for done in finished:
        if not args.json:
            print(f"finished the interrupted delete of {done.run_id}")
    if args.program is not None:
        refs = delete.program_runs(root, args.program)
        question = (
            f"Delete program {args.program} and its {len(refs)} runs "
            "(program files, trees, branches, refs, run directories)? This cannot be undone."
        )
        if not confirm(question, args.yes, "expd delete"):
            print("nothing deleted", file=sys.stderr)
            return 1
        out = delete.delete_program(root, args.program)
        _print_deleted([*finished, *out], args.json, program=args.program)
        return 0
    if any(d.run_id == args.run for d in finished):
        _print_deleted(finished, args.json)
        return 0
    ref = runs.resolve(args.run, root)
    repo = ref.repo or ref.paths.dir.resolve().parents[4]  # named by its path: its own repository
    ref = runs.RunRef(ref.program, ref.stamp, ref.paths, repo, ref.kind)
    _refuse_active(ref)
    size = run_disk_bytes(ref.paths.dir, repo, ref.program, ref.stamp, ref.kind)
    question = (
        f"Delete run {ref.run_id} (its trees, branch, refs and run directory, "
        f"{fmt_bytes(size)})? This cannot be undone."
    )
    if not confirm(question, args.yes, "expd delete"):
        print("nothing deleted", file=sys.stderr)
        return 1
    _print_deleted([*finished, delete.delete_run(ref)], args.json)
    return 0


def _print_deleted(done: list[Any], as_json: bool, program: str | None = None) -> None:
    if as_json:
        emit_json(
            {
                "program": program,
                "deleted": [
                    {
                        "run_id": d.run_id,
                        "trees": d.removed.trees,
                        "refs": d.removed.refs,
                        "objects": d.removed.objects,
                        "bytes": d.removed.bytes,
                        "index_entries": d.index_entries,
                        "finished_interrupted": d.interrupted,
                    }
                    for d in done
                ],
            }
        )
        return
    for d in done:
        if d.interrupted:
            continue
        r = d.removed
        print(
            f"deleted {d.run_id}: {_n(_trees(r.trees), 'tree')} and expd's git dirs, "
            f"{_n(r.refs, 'ref')} and branches, {_n(r.objects, 'object')}, its run directory "
            f"({fmt_bytes(r.bytes)} of trees and objects)"
        )
        if r.note:
            print(f"  note: {r.note}")
    if program is not None:
        print(f"deleted program {program}")
