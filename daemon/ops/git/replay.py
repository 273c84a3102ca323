"""Replays: `expd finalize`'s kept commits cherry-picked onto the base, in memory, and a lane's
candidate replayed onto the incumbent that moved while its agent worked.

The replayed commits are written into a temporary tree's private store; they reach the user's
repository only with the review branch, once the final tree was re-measured.
"""

from __future__ import annotations

from dataclasses import dataclass

import pygit2

from daemon.ops.git.diff import diff_patch
from daemon.ops.git.eval_tree import EvalTree
from daemon.ops.git.lookup import signature
from daemon.ops.git.user_writes import copy_commits, set_own_ref
from shared.schema import DiffStat


@dataclass
class Conflict(Exception):
    """Commit `index` of the list did not apply; `files` are the conflicting paths (maybe none)."""

    index: int
    files: list[str]


def replay(tree: EvalTree, base: str, commits: list[str]) -> str:
    """Cherry-pick `commits` in order onto `base`; the final commit (raises Conflict)."""
    user, repo = tree.open()
    committer = signature(user)
    head = repo[base].peel(pygit2.Commit)
    for i, oid in enumerate(commits):
        commit = repo[oid].peel(pygit2.Commit)
        ancestor = commit.parents[0].tree if commit.parents else None
        index = repo.merge_trees(ancestor, head.tree, commit.tree)  # type: ignore[arg-type]
        if index.conflicts is not None:
            files = {e.path for entries in index.conflicts for e in entries if e is not None}
            raise Conflict(i, sorted(files))
        tree_id = index.write_tree(repo)
        new = repo.create_commit(None, commit.author, committer, commit.message, tree_id, [head.id])
        head = repo[new].peel(pygit2.Commit)
    return str(head.id)


def replay_one(tree: EvalTree, commit: str, onto: str, ref: str) -> tuple[str, str, DiffStat]:
    """A lane's candidate `commit` (one commit on an older incumbent) replayed onto `onto`, copied
    into the user's repository and pinned under `ref`: the new commit, its patch and its diff
    stat. Raises Conflict when it no longer applies (nothing is written then)."""
    tip = replay(tree, onto, [commit])
    user, repo = tree.open()
    copy_commits(repo, user, tip, onto)
    set_own_ref(user, ref, tip)
    patch, stat = diff_patch(user, onto, tip)
    return tip, patch, stat


def applies(tree: EvalTree, commit: str, onto: str) -> bool:
    """Whether `commit` would replay onto `onto` without a conflict (nothing is pinned)."""
    try:
        replay(tree, onto, [commit])
    except Conflict:
        return False
    return True


def create_branch(tree: EvalTree, name: str, tip: str, base: str) -> None:
    """Copy the replayed commits into the user's repository and create branch `name` at `tip`."""
    user, repo = tree.open()
    copy_commits(repo, user, tip, base)
    user.references.create(f"refs/heads/{name}", pygit2.Oid(hex=tip))
