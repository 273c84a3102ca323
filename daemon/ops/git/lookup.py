"""Questions about the user's repository and who commits, answered in-process (no git processes):
its HEAD, whether a file is committed, which files a commit has and which paths two commits differ
in, branch names, commits, and the identity of expd's commits."""

from __future__ import annotations

import os
from pathlib import Path

import pygit2
from pygit2.enums import DeltaStatus, DiffOption

from daemon.ops.git.store import TreeError, open_user_repo
from shared.errors import UserError
from shared.protect import PathChange

FALLBACK_NAME, FALLBACK_EMAIL = "expd", "expd@localhost"


def _config(user: pygit2.Repository, key: str) -> str:
    try:
        return str(user.config[key])
    except (KeyError, pygit2.GitError):
        return ""


def signature(user: pygit2.Repository, role: str = "COMMITTER") -> pygit2.Signature:
    """Who commits (`role` AUTHOR or COMMITTER): git's variables, else the user's config, else expd."""
    name = os.environ.get(f"GIT_{role}_NAME") or _config(user, "user.name") or FALLBACK_NAME
    email = os.environ.get(f"GIT_{role}_EMAIL") or _config(user, "user.email") or FALLBACK_EMAIL
    return pygit2.Signature(name, email)


def identity_env(root: Path) -> dict[str, str]:
    """Identity variables for children (the agent's own commits) when the user has none configured."""
    if _config(open_user_repo(root), "user.email"):
        return {}
    fallback = {
        "GIT_AUTHOR_NAME": FALLBACK_NAME,
        "GIT_AUTHOR_EMAIL": FALLBACK_EMAIL,
        "GIT_COMMITTER_NAME": FALLBACK_NAME,
        "GIT_COMMITTER_EMAIL": FALLBACK_EMAIL,
    }
    return {k: v for k, v in fallback.items() if k not in os.environ}


# --- questions about the user's repository ------------------------------------------------------------


def repo_head(root: Path) -> str:
    try:
        return str(open_user_repo(root).head.target)
    except (pygit2.GitError, TreeError):
        raise UserError(
            f"{root}: the repository has no commits yet (commit something first)"
        ) from None


def is_tracked(root: Path, name: str) -> bool:
    """Whether `name` is committed, so a new tree of the repository will have it."""
    try:
        user = open_user_repo(root)
        user.head.peel(pygit2.Tree)[os.path.normpath(name)]
    except (KeyError, pygit2.GitError, TreeError):
        return False
    return True


def tracked_files(root: Path, commit: str) -> list[str]:
    """The files committed at `commit` (symlinks and submodules included), relative to the root."""
    out: list[str] = []
    stack = [("", open_user_repo(root)[commit].peel(pygit2.Tree))]
    while stack:
        prefix, tree = stack.pop()
        for entry in tree:
            name = f"{prefix}{entry.name}"
            if entry.type_str == "tree":
                stack.append((f"{name}/", tree[entry.name]))  # type: ignore[arg-type]
            else:
                out.append(name)
    return sorted(out)


LETTERS = {
    DeltaStatus.ADDED: "A",
    DeltaStatus.DELETED: "D",
    DeltaStatus.TYPECHANGE: "T",
}


def changed_paths(root: Path, base: str, head: str) -> list[PathChange]:
    """Every path that differs between two commits: no rename detection (a rename is a deletion
    plus an addition), a file that became a symlink a type change, each with both modes."""
    user = open_user_repo(root)
    diff = user.diff(
        user[base].peel(pygit2.Tree),
        user[head].peel(pygit2.Tree),
        flags=DiffOption.INCLUDE_TYPECHANGE,
    )
    changes = []
    for delta in diff.deltas:
        deleted = delta.status == DeltaStatus.DELETED
        changes.append(
            PathChange(
                delta.old_file.path if deleted else delta.new_file.path,
                LETTERS.get(delta.status, "M"),
                old_mode=f"{delta.old_file.mode:06o}",
                new_mode=f"{delta.new_file.mode:06o}",
            )
        )
    return changes


def valid_branch_name(name: str) -> bool:
    return not name.startswith("-") and pygit2.reference_is_valid_name(f"refs/heads/{name}")


def branch_exists(root: Path, name: str) -> bool:
    return f"refs/heads/{name}" in open_user_repo(root).references


def resolve_commit(root: Path, rev: str) -> str | None:
    """The commit `rev` names, or None when the repository does not have it."""
    try:
        return str(open_user_repo(root).revparse_single(rev).peel(pygit2.Commit).id)
    except (KeyError, ValueError, pygit2.GitError, TreeError):
        return None
