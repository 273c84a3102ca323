"""The agent's tree: a standalone repository expd makes, and the capture of what the agent changed.

The agent may do anything in its tree, its `.git` included (commit, switch branches, install hooks,
set config, delete it all). expd never reads that `.git` as a repository: it reads the tree's
files through a git dir of its own in the run directory (whose work directory the tree is), builds
the candidate commit from them against the incumbent, and only then copies it into the user's
repository. After every capture and reset the tree's `.git` is written afresh: on the run's branch
at the commit the files are at, with a clean index.
"""

from __future__ import annotations

import functools
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import pygit2
from pygit2.enums import FileStatus

from daemon.ops.git.candidate import Candidate, Capture, Check, agent_subject, changes
from daemon.ops.git.diff import diff_patch
from daemon.ops.git.dotgit import write_dotgit
from daemon.ops.git.lookup import signature
from daemon.ops.git.store import (
    Opened,
    TreeError,
    checkout,
    ensure_tree,
    open_tree,
    open_user_repo,
    tree_problem,
)
from daemon.ops.git.user_writes import copy_commits, set_own_ref

_ADD = FileStatus.WT_NEW | FileStatus.WT_MODIFIED | FileStatus.WT_TYPECHANGE | FileStatus.WT_RENAMED


@dataclass
class AgentTree:
    repo: Path
    """The user's repository (its root)."""
    path: Path
    """The agent's tree."""
    gitdir: Path
    """expd's git dir for it, in the run directory."""
    branch: str | None
    """The run's branch in the user's repository; None: no branch there, the tree's `.git` is
    detached at its commit (a bakeoff's attempts, each pinned under its own ref)."""

    opened: Opened = field(default_factory=Opened, repr=False, compare=False)
    """The user's repository and the git dir, kept open between this tree's operations."""

    def open(self) -> tuple[pygit2.Repository, pygit2.Repository]:
        return open_tree(self.repo, self.gitdir, self.path, self.opened)

    # --- blocking ------------------------------------------------------------------------------

    def reset_sync(self, commit: str) -> None:
        """Put the tree back at `commit` (on the run's branch, if any): tracked files restored,
        untracked ones removed (ignored ones stay), `.git` afresh; a deleted tree is made again. Raises
        TreeError when the result is not exactly that."""
        try:
            self._reset(commit)
        except (pygit2.GitError, OSError, KeyError) as exc:
            self.opened.forget()  # opened afresh next time
            raise TreeError(f"cannot reset the agent's tree to {commit[:10]}: {exc}") from None

    def _reset(self, commit: str) -> None:
        ensure_tree(self.path)
        user, repo = self.open()
        try:
            verified = checkout(repo, self.path, commit, clean=True)
        except (pygit2.GitError, OSError):
            # Whatever the agent left defeats a checkout: start the tree afresh.
            ensure_tree(self.path)
            _empty(self.path)
            repo.index.clear()
            repo.index.write()
            verified = checkout(repo, self.path, commit, clean=True)
        left = {} if verified else repo.status(untracked_files="all")
        if left or str(repo.head.target) != commit:
            raise TreeError(
                f"the agent's tree is not clean after a reset to {commit[:10]}: {sorted(left)[:3]}"
            )
        self._point_branch(user, commit)
        write_dotgit(self.path, repo, user, commit, self.branch)

    def keep_sync(self, commit: str) -> None:
        """The run's branch in the user's repository follows the incumbent: move it to a keep."""
        self._point_branch(open_user_repo(self.repo), commit)

    def _point_branch(self, user: pygit2.Repository, commit: str) -> None:
        if self.branch is None:
            return
        ref = user.references.get(f"refs/heads/{self.branch}")
        if ref is None or str(ref.target) != commit:
            set_own_ref(user, f"refs/heads/{self.branch}", commit)

    def stage_sync(self, incumbent: str, message: Callable[[], str]) -> Candidate | str | None:
        """The agent's change as a candidate in expd's private store, None when the files are the
        incumbent's, or why it cannot be captured. Nothing is written into the user's repository."""
        if problem := tree_problem(self.path):
            return problem
        try:
            _, repo = self.open()
            status = repo.status(untracked_files="all")
            nested = sorted(p for p in status if p.endswith("/"))
            if nested:
                return f"nested git repository at {nested[0]} (a directory with its own .git)"
            index = repo.index
            for name, flags in status.items():
                if flags & FileStatus.WT_DELETED:
                    index.remove(name)
                elif flags & _ADD:
                    index.add(name)
            tree = index.write_tree()
            parent = repo[incumbent].peel(pygit2.Commit)
            if tree == parent.tree_id:
                index.write()
                return None
            changed = changes(repo, parent.tree, repo[tree])  # type: ignore[arg-type]
            if nested := [c.path for c in changed if _inside_repository(self.path, c.path)]:
                return f"nested git repository around {nested[0]} (a directory with its own .git)"
            text = message()
            commit = repo.create_commit(
                None, signature(repo, "AUTHOR"), signature(repo), text + "\n", tree, [parent.id]
            )
            index.write()
        except (pygit2.GitError, OSError, KeyError) as exc:
            return f"cannot capture the agent's change: {exc}"
        return Candidate(str(commit), incumbent, text, changed, repo)

    def publish_sync(self, candidate: Candidate, ref: str) -> Capture:
        """Copy the candidate into the user's repository, pin it under `ref`, put the tree's `.git`
        on it (the run's branch moves only when it is kept)."""
        user, repo = self.open()
        copy_commits(repo, user, candidate.commit, candidate.parent)
        set_own_ref(user, ref, candidate.commit)
        write_dotgit(self.path, repo, user, candidate.commit, self.branch)
        patch, stat = diff_patch(user, candidate.parent, candidate.commit)
        subject = (candidate.message.splitlines() or [""])[0]
        return Capture(commit=candidate.commit, patch=patch, stat=stat, subject=subject)

    def capture_sync(
        self,
        incumbent: str,
        *,
        description: str,
        fallback: str,
        ref: str,
        check: Check | None = None,
        after_commit: Callable[[], None] = lambda: None,
    ) -> Capture:
        """What the agent left, as one pinned commit on the incumbent. The message is the agent's
        `description`, else its own last commit's subject, else `fallback`."""
        staged = self.stage_sync(
            incumbent, lambda: description or agent_subject(self.path, incumbent) or fallback
        )
        if isinstance(staged, str):
            return Capture(problem=staged)
        if staged is None:
            return Capture(commit=incumbent)
        after_commit()
        if check is not None and (refused := check(staged)):
            staged.forget()
            return Capture(refused=refused)
        return self.publish_sync(staged, ref)

    # --- async wrappers for the loop (one worker-thread hop each) ------------------------------

    async def capture(
        self,
        incumbent: str,
        *,
        description: str,
        fallback: str,
        ref: str,
        check: Check | None = None,
        after_commit: Callable[[], None] = lambda: None,
    ) -> Capture:
        return await anyio.to_thread.run_sync(
            functools.partial(
                self.capture_sync,
                incumbent,
                description=description,
                fallback=fallback,
                ref=ref,
                check=check,
                after_commit=after_commit,
            )
        )

    async def reset(self, commit: str) -> None:
        await anyio.to_thread.run_sync(self.reset_sync, commit)

    async def keep(self, commit: str) -> None:
        await anyio.to_thread.run_sync(self.keep_sync, commit)


def _inside_repository(tree: Path, path: str) -> bool:
    """Whether a directory on the way to `path` (below the tree's root) has its own `.git`."""
    parts = path.split("/")[:-1]
    here = tree
    for part in parts:
        here = here / part
        if (here / ".git").exists() or (here / ".git").is_symlink():
            return True
    return False


def _empty(path: Path) -> None:
    """Remove everything in `path` but its `.git` (rewritten after the checkout anyway), even
    what the agent made read-only."""
    for root, dirs, _ in os.walk(path):
        dirs[:] = [d for d in dirs if d != ".git" or root != str(path)]
        os.chmod(root, 0o700)
    for entry in path.iterdir():
        if entry.name == ".git":
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
