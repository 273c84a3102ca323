"""Giving a run's space back in the user's repository: its refs dropped, the objects expd wrote for
them removed once nothing reaches them, what remains packed.

Only refs under expd's namespace are ever deleted (`user_writes.delete_own_ref` refuses others).
An object is removed only when all three hold: expd wrote it for one of the dropped refs (the
commit, and the trees and blobs it added to its parent), `git prune --dry-run` lists it as
unreachable from everything (every ref, reflog, index and worktree HEAD), and nothing touched its
file after the run's daemon last lived (libgit2 and git freshen an object they find when writing it,
so another run that has just reused a blob keeps it). The user's own unreachable objects are left
to their `git gc`. Packing is `git repack -d`: loose objects reachable from a ref go into a pack,
and only loose copies of packed objects are deleted.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pygit2

from daemon.ops.git.cli import run_git
from daemon.ops.git.store import TreeError, common_dir, open_user_repo
from daemon.ops.git.user_writes import OWN_REFS, delete_own_ref, new_objects

MAX_CHAIN = 10_000
"""The longest first-parent chain walked from a review branch down to its base."""


@dataclass
class Pruned:
    count: int = 0
    bytes: int = 0
    note: str = ""
    """Why nothing could be pruned (git missing or failing), or empty."""


def objects_dir(repo: Path) -> Path:
    return common_dir(open_user_repo(repo)) / "objects"


def refs_under(repo: Path, prefix: str) -> list[str]:
    """expd's refs whose names start with `prefix` (which must be in expd's namespace)."""
    if not prefix.startswith(OWN_REFS):
        raise ValueError(f"{prefix} is not in expd's namespace")
    user = open_user_repo(repo)
    return sorted(name for name in user.references if name.startswith(prefix))


def existing(repo: Path, names: Iterable[str]) -> list[str]:
    """Those of `names` that are refs of the repository now."""
    user = open_user_repo(repo)
    return [name for name in names if name in user.references]


def introduced_objects(repo: Path, refs: Iterable[str], base: str | None = None) -> list[str]:
    """The objects expd wrote for `refs`: each commit with the trees and blobs it added to its
    first parent; a ref whose chain leads down to `base` (a review branch) is walked to it."""
    user = open_user_repo(repo)
    found: set[str] = set()
    for name in refs:
        try:
            commit = user.references[name].peel(pygit2.Commit)
        except (KeyError, pygit2.GitError, ValueError):
            continue
        for _ in range(MAX_CHAIN):
            if str(commit.id) == base or str(commit.id) in found:
                break
            found.add(str(commit.id))
            parent = commit.parents[0] if commit.parents else None
            old = parent.tree if parent is not None else None
            found.update(str(oid) for oid in new_objects(user, commit.tree, old))
            if parent is None or base is None:
                break
            commit = parent
    return sorted(found)


def checked_out(repo: Path, branches: Iterable[str]) -> str | None:
    """The first of `branches` (full ref names) that the main checkout or a linked worktree has
    checked out, or None: deleting it would leave that checkout on a branch that is gone."""
    common = common_dir(open_user_repo(repo))
    heads = [common / "HEAD", *sorted((common / "worktrees").glob("*/HEAD"))]
    wanted = set(branches)
    for head in heads:
        try:
            text = head.read_text().strip()
        except OSError:
            continue
        if text.startswith("ref:") and text[4:].strip() in wanted:
            return text[4:].strip()
    return None


def drop_refs(repo: Path, names: Iterable[str]) -> int:
    """Delete expd's refs `names` (already gone ones are skipped); how many were deleted."""
    try:
        user = open_user_repo(repo)
    except TreeError:
        return 0
    dropped = 0
    for name in names:
        if name in user.references:
            delete_own_ref(user, name)
            dropped += 1
    return dropped


def unreachable(repo: Path) -> set[str] | str:
    """The loose objects git would prune now (unreachable from every ref, reflog, index and
    worktree HEAD), or why that cannot be known."""
    try:
        proc = run_git(repo, ["prune", "--dry-run", "--expire=now"])
    except OSError as exc:
        return f"git is not available ({exc})"
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines()
        return f"git prune failed: {lines[-1] if lines else f'exit {proc.returncode}'}"
    return {line.split()[0] for line in proc.stdout.splitlines() if line.strip()}


def prune_objects(repo: Path, objects: Iterable[str], untouched_since: float) -> Pruned:
    """Remove those of `objects` (expd's, of dropped refs) that nothing reaches and whose files no
    writer touched after `untouched_since`; loose ones only (a packed object waits for git gc)."""
    wanted = set(objects)
    if not wanted:
        return Pruned()
    gone = unreachable(repo)
    if isinstance(gone, str):
        return Pruned(note=gone)
    where = objects_dir(repo)
    out = Pruned()
    for oid in sorted(wanted & gone):
        path = where / oid[:2] / oid[2:]
        try:
            info = os.lstat(path)
            if info.st_mtime > untouched_since:
                continue  # freshened by another writer since the run ended: it may be in use
            path.unlink()
        except OSError:
            continue
        out.count += 1
        out.bytes += info.st_blocks * 512
    return out


def repack(repo: Path) -> str:
    """`git repack -d`: loose reachable objects into one pack; "" or what went wrong."""
    try:
        proc = run_git(repo, ["repack", "-d", "-q"])
    except OSError as exc:
        return f"git is not available ({exc})"
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines()
        return f"git repack failed: {lines[-1] if lines else f'exit {proc.returncode}'}"
    return ""
