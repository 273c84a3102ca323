"""`expd delete`: everything of a run — its trees, branch, pinned refs, the objects only they
reached, its run directory and its entry in the user-wide index — or of a program and its runs.

The run directory is first moved into `.expd/trash/` (one rename, after the intent record is written
inside it), so from that instant no listing, status or index lookup sees the run, and an interrupted
delete is finished by the next `expd delete` or `expd clean`. The review branch `expd finalize`
made under its default name (`expd/<program>/<stamp>-final`) goes too; a branch the user named
with `--branch`, and anything outside expd's namespace, is never touched.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from daemon.commands.reclaim_steps import (
    Removed,
    fault,
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
from daemon.ops.tree_removal import remove_path
from shared import codec
from shared.atomic import fsync_dir
from shared.errors import ContractError, UserError
from shared.footprint import run_trees
from shared.housekeeping import DELETING, Intent, read_intent, trash_dir
from shared.locking import is_locked
from shared.paths import ProgramPaths, branch_name, check_program_name
from shared.runs import RunRef, repo_runs, unregister
from shared.schema import RunManifest


@dataclass
class Deleted:
    run_id: str
    removed: Removed
    index_entries: int
    interrupted: bool = False
    """It finished a delete that was interrupted."""


def branches(ref: RunRef, repo: Path) -> list[str]:
    """The run's branch and its default review branch, those that exist."""
    if ref.is_bakeoff:
        return []
    run_branch = f"refs/heads/{branch_name(ref.program, ref.stamp)}"
    return reclaim.existing(repo, [run_branch, f"{run_branch}-final"])


def plan(ref: RunRef, status: object) -> Intent:
    """Everything of `ref` to remove; refused when one of its branches is checked out."""
    repo = repo_of(ref)
    pins = reclaim.refs_under(repo, pin_prefix(ref))
    own = branches(ref, repo)
    if where := reclaim.checked_out(repo, own):
        raise UserError(
            f"{where.removeprefix('refs/heads/')} is checked out in {repo}: "
            "switch to another branch first, then delete the run"
        )
    base = None
    with contextlib.suppress(ContractError):
        base = codec.read(ref.paths.run_json, RunManifest).base_commit or None
    objects = set(reclaim.introduced_objects(repo, pins))
    objects |= set(reclaim.introduced_objects(repo, own, base=base))
    return Intent(
        action="delete",
        run_id=ref.run_id,
        kind=ref.kind,
        repo=str(repo),
        run_dir=str(ref.paths.dir.resolve()),
        started_at=time.time(),
        trees=[str(t) for t in run_trees(repo, ref.program, ref.stamp, ref.kind)],
        refs=[*pins, *own],
        objects=sorted(objects),
        untouched_since=last_alive(ref, status),
    )


def delete_run(ref: RunRef) -> Deleted:
    """Delete one run that no daemon holds (UserError otherwise)."""
    repo = repo_of(ref)
    with start_lock(ref):
        status = status_of(ref)
        refuse_active(ref, status)
        intent = plan(ref, status)
        write_intent(ref.paths.dir / DELETING, intent)
        trash = trash_dir(repo)
        trash.mkdir(parents=True, exist_ok=True)
        entry = trash / f"run-{ref.program}-{ref.stamp}-{secrets.token_hex(3)}"
        os.rename(ref.paths.dir, entry)
        fsync_dir(ref.paths.dir.parent)
        fsync_dir(trash)
    fault("delete_after_move")
    done = finish(entry)
    assert done is not None
    return done


def finish(entry: Path, *, interrupted: bool = False) -> Deleted | None:
    """Replay the delete recorded in trash entry `entry`, then remove the entry itself."""
    intent = read_intent(entry / DELETING)
    trash = entry.parent
    if intent is None:  # a program's folder, or a run whose record never made it
        remove_path(entry, trash)
        return None
    removed = replay(intent, entry, trash.parent.parent)
    entries = unregister(intent.run_dir)
    remove_path(entry, trash)
    return Deleted(intent.run_id, removed, entries, interrupted)


def finish_pending(repo: Path) -> list[Deleted]:
    """Finish every delete a crash interrupted (what is left in `.expd/trash/`)."""
    trash = trash_dir(repo)
    if not trash.is_dir():
        return []
    out = []
    for entry in sorted(trash.iterdir()):
        done = finish(entry, interrupted=True)
        if done is not None:
            out.append(done)
    return out


def program_runs(repo: Path, name: str) -> list[RunRef]:
    """The runs of program `name`; UserError when there is no such program or one is active."""
    program = ProgramPaths(repo, check_program_name(name))
    if not program.dir.is_dir():
        raise UserError(f"no program {name!r} in {repo} (see: expd list)")
    refs = repo_runs(repo, name, kind="program")
    for ref in refs:
        refuse_active(ref, status_of(ref))
    if is_locked(program.active_lock):
        raise UserError(f"program {name!r} has an active run; stop it first: expd stop")
    return refs


def delete_program(repo: Path, name: str) -> list[Deleted]:
    """Delete every run of program `name`, then its folder (program.toml and all)."""
    refs = program_runs(repo, name)
    out = [delete_run(ref) for ref in refs]
    program = ProgramPaths(repo, name)
    trash = trash_dir(repo)
    trash.mkdir(parents=True, exist_ok=True)
    entry = trash / f"program-{name}-{secrets.token_hex(3)}"
    os.rename(program.dir, entry)
    fsync_dir(trash)
    remove_path(entry, trash)
    return out
