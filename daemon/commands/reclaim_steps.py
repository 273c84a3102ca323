"""What `expd clean` and `expd delete` share: a run's liveness and age, the lock that keeps a
resume out, the intent record, and the steps that replay it (each idempotent).

Order of a clean or delete: the intent record (fsynced) first, then the trees and expd's git dirs,
then the refs, then the objects those refs alone reached. A crash anywhere leaves the record; the
next clean or delete replays it from the start and finishes the job.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from daemon.ops.git import reclaim
from daemon.ops.git.store import TreeError
from daemon.ops.tree_removal import remove_leftovers, run_leftovers
from shared import codec, seal
from shared.atomic import write_atomic
from shared.bakeoffs.paths import BakeoffPaths
from shared.errors import ContractError, UserError
from shared.footprint import TREE_FOLDERS, tree_pattern
from shared.housekeeping import Intent
from shared.liveness import held
from shared.locking import lock_blocking, unlock
from shared.paths import ProgramPaths
from shared.runs import RunRef
from shared.schema import DaemonInfo, ResultRecord
from shared.status import ACTIVE, run_status
from shared.tail import read_complete_lines

SLACK_S = 5.0
"""Objects touched this long after a run's daemon last lived are someone else's too."""


@dataclass
class Removed:
    """What replaying an intent removed."""

    trees: list[str] = field(default_factory=list)
    tree_bytes: int = 0
    refs: int = 0
    objects: int = 0
    object_bytes: int = 0
    note: str = ""

    @property
    def bytes(self) -> int:
        return self.tree_bytes + self.object_bytes


def fault(name: str) -> None:
    """`EXPD_FAULT=name`: the command kills itself here (the crash-safety tests' hook)."""
    if os.environ.get("EXPD_FAULT") == name:
        os.kill(os.getpid(), signal.SIGKILL)


def status_of(ref: RunRef) -> Any:
    """The run's status (StatusReport or BakeoffStatus), or None when its files are unreadable."""
    try:
        return run_status(ref.paths, run_id=ref.run_id, kind=ref.kind)
    except ContractError:
        return None


def repo_of(ref: RunRef) -> Path:
    """The repository a run belongs to: `<repo>/.expd/<programs|bakeoffs>/<name>/runs/<stamp>`."""
    return ref.repo if ref.repo is not None else ref.paths.dir.resolve().parents[4]


def is_active(ref: RunRef, status: Any) -> bool:
    """Whether a daemon holds the run (running, starting, hung, or still exiting)."""
    return held(ref.paths) or (status is not None and status.daemon in ACTIVE)


def refuse_active(ref: RunRef, status: Any) -> None:
    """An active run (or one whose daemon still holds it while exiting) is never touched."""
    if is_active(ref, status):
        stop = f"expd bakeoff stop {ref.run_id}" if ref.is_bakeoff else f"expd stop {ref.run_id}"
        raise UserError(f"run {ref.run_id} is running; stop it first: {stop}")


def last_alive(ref: RunRef, status: Any) -> float:
    """When the run's daemon (or `expd finalize`) last wrote, + slack; 0 when unknown."""
    try:
        info = codec.read_optional(ref.paths.daemon_json, DaemonInfo)
    except ContractError:
        info = None
    times = [info.heartbeat_at if info else 0.0, (status.updated_at or 0.0) if status else 0.0]
    with contextlib.suppress(OSError):  # `expd finalize` wrote the review branch's objects
        times.append(ref.paths.summary.stat().st_mtime)
    return max(times) + SLACK_S if max(times) else 0.0


def ended_at(ref: RunRef, status: Any) -> float:
    """The run's age reference: when it last changed (else started, else its directory's mtime)."""
    if status is not None and (status.updated_at or status.started_at):
        return float(status.updated_at or status.started_at)
    try:
        return ref.paths.dir.stat().st_mtime
    except OSError:
        return time.time()


@contextlib.contextmanager
def start_lock(ref: RunRef) -> Iterator[None]:
    """The program's (or bakeoff's) `start.lock`: no `expd resume` of the run while it is held."""
    repo = repo_of(ref)
    owner = BakeoffPaths(repo, ref.program) if ref.is_bakeoff else ProgramPaths(repo, ref.program)
    if not owner.dir.is_dir():
        yield
        return
    fd = lock_blocking(owner.start_lock)
    try:
        yield
    finally:
        unlock(fd)


def kept_experiments(ref: RunRef) -> set[int]:
    """The experiments the run kept, from the lines of `results.jsonl` its daemon sealed."""
    key = seal.load_key(ref.paths)
    kept: set[int] = set()
    for line in read_complete_lines(ref.paths.results):
        if key is not None and seal.unseal(key, line) is None:
            continue
        try:
            record = codec.decode(line, ResultRecord, source=ref.paths.results)
        except ContractError:
            continue
        if record.status == "keep":
            kept.add(record.experiment)
    return kept


def pin_prefix(ref: RunRef) -> str:
    """Where the run's pinned refs live."""
    if ref.is_bakeoff:
        return f"refs/expd/bakeoffs/{ref.run_id}/"
    return f"refs/expd/{ref.run_id}/"


def is_own_ref(kind: str, run_id: str, name: str) -> bool:
    """Whether `name` is one of the run's refs: its pins, its branch, its default review branch
    (a record that lists any other ref is not followed)."""
    if kind == "bakeoff":
        return name.startswith(f"refs/expd/bakeoffs/{run_id}/")
    branch = f"refs/heads/expd/{run_id}"
    return name.startswith(f"refs/expd/{run_id}/") or name in (branch, f"{branch}-final")


def write_intent(path: Path, intent: Intent) -> None:
    write_atomic(path, codec.encode(intent))


def replay(intent: Intent, run_dir: Path, repo: Path) -> Removed:
    """Carry out `intent` in `repo` against the run directory now at `run_dir`: trees, refs,
    objects. Only what belongs to the run is removed, whatever the record says."""
    owner, _, stamp = intent.run_id.partition("/")
    found = run_leftovers(repo, owner, stamp, intent.kind, run_dir)
    pattern = tree_pattern(owner, stamp, intent.kind)
    folders = {repo / ".expd" / folder for folder in TREE_FOLDERS}
    named = {  # only the run's own trees, whatever a damaged record lists
        Path(p)
        for p in intent.trees
        if Path(p).parent in folders and pattern.fullmatch(Path(p).name)
    }
    paths = sorted(named | set(found))
    out = Removed(trees=[str(p) for p in paths if os.path.lexists(p)])
    try:
        out.tree_bytes = remove_leftovers(repo, run_dir, paths)
    except OSError as exc:  # e.g. `.expd/worktrees` made a symlink: refused, never followed
        out.note = str(exc)
    fault(f"{intent.action}_after_trees")
    try:
        own = [r for r in intent.refs if is_own_ref(intent.kind, intent.run_id, r)]
        out.refs = reclaim.drop_refs(repo, own)
        pruned = reclaim.prune_objects(repo, intent.objects, intent.untouched_since)
    except TreeError as exc:
        out.note = str(exc)
        return out
    out.objects, out.object_bytes = pruned.count, pruned.bytes
    out.note = "; ".join(n for n in (out.note, pruned.note) if n)
    return out
