"""`expd clean`: finished runs give their disk back and stay readable.

For each finished run (complete or crashed; a dead, resumable one only with `include_dead`; never
one a daemon holds) it removes the trees and expd's git dirs for them, drops the pinned refs of
experiments that were not kept, removes the objects only those refs reached, and records the clean
in `cleaned.json`. The run directory, the run's branch and the kept commits stay, so `results`,
`report`, `finalize` (which measures in a tree of its own) and the dashboard still work. Last, the
repository's loose objects are packed (`git repack -d`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from daemon.commands.delete import finish_pending
from daemon.commands.reclaim_steps import (
    Removed,
    ended_at,
    fault,
    is_active,
    kept_experiments,
    last_alive,
    pin_prefix,
    refuse_active,
    replay,
    repo_of,
    start_lock,
    status_of,
    write_intent,
)
from daemon.ops.git import reclaim
from shared import codec
from shared.atomic import write_atomic
from shared.errors import UserError
from shared.footprint import disk_bytes, run_trees
from shared.housekeeping import CLEANED, CLEANING, CleanRecord, Intent, read_cleaned, read_intent
from shared.runs import RunRef, repo_runs


@dataclass
class Cleaned:
    """One run cleaned (or, in a dry run, what cleaning it would do)."""

    run_id: str
    trees: list[str]
    tree_bytes: int
    refs: int
    objects: int
    object_bytes: int = 0
    finishing: bool = False
    """It finished a clean that was interrupted."""
    note: str = ""


@dataclass
class Report:
    dry_run: bool
    cleaned: list[Cleaned] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    """(run id, why) of runs left alone."""
    deletes_finished: list[str] = field(default_factory=list)
    objects_before: int = 0
    objects_after: int = 0
    note: str = ""

    @property
    def reclaimed(self) -> int:
        """Trees and git dirs, plus what the repository's objects shrank by (prune and pack)."""
        trees = sum(c.tree_bytes for c in self.cleaned)
        return trees + max(0, self.objects_before - self.objects_after)


def _number(name: str, prefix: str) -> int | None:
    tail = name.removeprefix(prefix)
    return int(tail) if tail.isdigit() else None


def plan(ref: RunRef, status: Any, now: float) -> Intent | None:
    """What cleaning `ref` removes (an interrupted clean's record first), or None: nothing left."""
    pending = read_intent(ref.paths.dir / CLEANING)
    if pending is not None and pending.run_id == ref.run_id and pending.kind == ref.kind:
        return pending
    repo = repo_of(ref)
    trees = run_trees(repo, ref.program, ref.stamp, ref.kind)
    has_git = (ref.paths.dir / "git").exists()
    drop: list[str] = []
    if not ref.is_bakeoff:  # a bakeoff's attempt refs are its record: they stay
        prefix = pin_prefix(ref)
        kept = kept_experiments(ref)
        for name in reclaim.refs_under(repo, prefix):
            number = _number(name, prefix)
            if number is not None and number not in kept:
                drop.append(name)
    if not trees and not has_git and not drop:
        return None
    return Intent(
        action="clean",
        run_id=ref.run_id,
        kind=ref.kind,
        repo=str(repo),
        run_dir=str(ref.paths.dir),
        started_at=now,
        trees=[str(t) for t in trees],
        refs=drop,
        objects=reclaim.introduced_objects(repo, drop),
        untouched_since=last_alive(ref, status),
    )


def _eligible(
    ref: RunRef, status: Any, named: bool, older_than: float | None, dead: bool, now: float
) -> str:
    """Why `ref` is left alone, or "" to clean it; a run named on the command line that cannot
    be cleaned is an error instead."""
    if is_active(ref, status):
        if named:
            refuse_active(ref, status)
        return "running"
    if (ref.paths.dir / CLEANING).exists():
        return ""  # an interrupted clean is always finished
    if status is None:
        return "unreadable"
    if status.daemon == "dead" and not dead:
        if named:
            raise UserError(
                f"run {ref.run_id} can still be resumed (expd resume {ref.run_id}); "
                "clean it anyway with --include-dead"
            )
        return "resumable (--include-dead cleans it)"
    if older_than is not None and now - ended_at(ref, status) < older_than:
        return "newer than --older-than"
    return ""


def _clean_one(ref: RunRef, older_than: float | None, dead: bool, named: bool, now: float) -> Any:
    """Clean one run under its program's start lock; a reason string when it was left alone."""
    with start_lock(ref):
        status = status_of(ref)
        why = _eligible(ref, status, named, older_than, dead, now)
        if why:
            return why
        intent = plan(ref, status, now)
        if intent is None:
            return ""
        finishing = (ref.paths.dir / CLEANING).exists()
        write_intent(ref.paths.dir / CLEANING, intent)
        fault("clean_after_intent")
        removed: Removed = replay(intent, ref.paths.dir, repo_of(ref))
        record = read_cleaned(ref.paths.dir) or CleanRecord()
        record.cleaned_at = time.time()
        record.reclaimed_bytes += removed.bytes
        record.trees_removed = sorted({*record.trees_removed, *intent.trees})
        record.refs_dropped += removed.refs
        record.objects_pruned += removed.objects
        write_atomic(ref.paths.dir / CLEANED, codec.encode(record))
        (ref.paths.dir / CLEANING).unlink(missing_ok=True)
    return Cleaned(
        run_id=ref.run_id,
        trees=removed.trees,
        tree_bytes=removed.tree_bytes,
        refs=removed.refs,
        objects=removed.objects,
        object_bytes=removed.object_bytes,
        finishing=finishing,
        note=removed.note,
    )


def _preview(ref: RunRef, older_than: float | None, dead: bool, named: bool, now: float) -> Any:
    status = status_of(ref)
    why = _eligible(ref, status, named, older_than, dead, now)
    if why:
        return why
    intent = plan(ref, status, now)
    if intent is None:
        return ""
    seen: set[tuple[int, int]] = set()
    paths = [*intent.trees, str(ref.paths.dir / "git")]
    size = sum(disk_bytes(Path(p), seen, allocated=True) for p in paths)
    return Cleaned(
        run_id=ref.run_id,
        trees=[p for p in paths if Path(p).exists()],
        tree_bytes=size,
        refs=len(intent.refs),
        objects=len(intent.objects),
        finishing=(ref.paths.dir / CLEANING).exists(),
    )


def clean(
    repo: Path,
    named: RunRef | None = None,
    *,
    older_than: float | None = None,
    include_dead: bool = False,
    dry_run: bool = False,
) -> Report:
    """Clean the finished runs of `repo` (or the one `named`); see the module's docstring."""
    now = time.time()
    report = Report(dry_run=dry_run)
    if not dry_run:
        report.deletes_finished = [o.run_id for o in finish_pending(repo)]
    targets = [named] if named is not None else repo_runs(repo)
    where = reclaim.objects_dir(repo)
    report.objects_before = disk_bytes(where, allocated=True)
    step = _preview if dry_run else _clean_one
    for ref in targets:
        ref = RunRef(ref.program, ref.stamp, ref.paths, ref.repo or repo, ref.kind)
        outcome = step(ref, older_than, include_dead, named is not None, now)
        if isinstance(outcome, Cleaned):
            report.cleaned.append(outcome)
        elif outcome:
            report.skipped.append((ref.run_id, outcome))
    if not dry_run and any(c.refs or c.objects for c in report.cleaned):
        report.note = reclaim.repack(repo)
    report.objects_after = (
        disk_bytes(where, allocated=True) if not dry_run else report.objects_before
    )
    return report
