"""What expd writes into the user's repository: objects, and refs in its own namespace.

Objects are copied from expd's private stores (a candidate is published only after its check);
refs go only under `refs/expd/…` and `refs/heads/expd/…`, plus the review branch `expd finalize` is
asked for. Never the user's index, HEAD, config, hooks or worktree list.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import pygit2

from daemon.ops.git.store import common_dir

OWN_REFS = ("refs/expd/", "refs/heads/expd/")
"""The only refs of the user's repository a run writes."""


def _copy(src: pygit2.Repository, dst: pygit2.Repository, oid: pygit2.Oid) -> None:
    kind, data = src.odb.read(oid)
    dst.odb.write(kind, data)


def new_objects(
    repo: pygit2.Repository,
    new: pygit2.Tree,
    old: pygit2.Tree | None,
    skip: Callable[[pygit2.Oid], bool] = lambda oid: False,
) -> Iterator[pygit2.Oid]:
    """The trees and blobs of `new` that `old` does not share (what writing `new` added), children
    before their tree; a tree or blob `skip` accepts is passed over (a tree with all below it)."""
    if (old is not None and new.id == old.id) or skip(new.id):
        return
    before = {e.name: e for e in old} if old is not None else {}
    for entry in new:
        was = before.get(entry.name)
        if was is not None and was.id == entry.id:
            continue
        if entry.type_str == "tree":
            was_tree = repo[was.id] if was is not None and was.type_str == "tree" else None
            yield from new_objects(repo, repo[entry.id], was_tree, skip)  # type: ignore[arg-type]
        elif entry.type_str == "blob" and not skip(entry.id):
            yield entry.id
    yield new.id


def copy_commits(src: pygit2.Repository, dst: pygit2.Repository, tip: str, stop: str) -> None:
    """Copy commit `tip` and its first-parent ancestors down to `stop` (with their new trees and
    blobs) from expd's private store into the user's repository: oldest first, commit last."""
    chain: list[pygit2.Commit] = []
    commit = src[tip].peel(pygit2.Commit)
    while str(commit.id) != stop and commit.id not in dst.odb:
        chain.append(commit)
        if not commit.parents:
            break
        commit = commit.parents[0]
    for c in reversed(chain):
        # Children before their tree: a tree found in `dst` always has all below it.
        old = c.parents[0].tree if c.parents else None
        for oid in new_objects(src, c.tree, old, lambda o: o in dst.odb):
            _copy(src, dst, oid)
        _copy(src, dst, c.id)


def set_own_ref(user: pygit2.Repository, name: str, commit: str) -> None:
    """Point one of expd's own refs at `commit`; any other ref of the user's is refused."""
    if not name.startswith(OWN_REFS):
        raise ValueError(f"{name} is not one of expd's refs")
    with contextlib.suppress(FileNotFoundError):
        (common_dir(user) / f"{name}.lock").unlink()  # only expd writes its refs: a lock is stale
    user.references.create(name, pygit2.Oid(hex=commit), force=True)


def delete_own_ref(user: pygit2.Repository, name: str) -> None:
    if not name.startswith(OWN_REFS):
        raise ValueError(f"{name} is not one of expd's refs")
    with contextlib.suppress(KeyError, pygit2.GitError):
        user.references.delete(name)
