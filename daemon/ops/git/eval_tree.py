"""The trees measurements run in: checked out by expd at exactly the commit being measured.

The run's measurement tree sits beside the agent's (`.expd/eval/<program>-<stamp>/`); `validate`
and `finalize` use a temporary one. The agent's tree never reaches a measurement: what is measured
comes out of the commit alone, so files the agent left untracked or ignored are not there. Ignored
files that expd's own build step made stay between measurements (a build cache); untracked ones go
whenever a measurement series starts.
"""

from __future__ import annotations

import contextlib
import functools
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import pygit2

from daemon.ops.git.dotgit import write_dotgit
from daemon.ops.git.store import Opened, TreeError, checkout, open_tree


@dataclass
class EvalTree:
    repo: Path
    """The user's repository (its root)."""
    path: Path
    """The tree measurements run in."""
    gitdir: Path
    """expd's git dir for it."""

    opened: Opened = field(default_factory=Opened, repr=False, compare=False)
    """The user's repository and the git dir, kept open between this tree's operations."""

    def open(self) -> tuple[pygit2.Repository, pygit2.Repository]:
        return open_tree(self.repo, self.gitdir, self.path, self.opened)

    def checkout_sync(self, commit: str, *, clean: bool = True) -> None:
        """Tracked files exactly `commit`'s (a deleted or replaced tree is made again); untracked
        files removed when `clean`; a fresh `.git` detached at `commit` for programs that ask git."""
        try:
            user, repo = self.open()
            checkout(repo, self.path, commit, clean=clean)
            write_dotgit(self.path, repo, user, commit, None)
        except (pygit2.GitError, OSError, KeyError) as exc:
            self.opened.forget()  # opened afresh next time
            raise TreeError(f"cannot check {commit[:10]} out for measuring: {exc}") from None

    async def checkout(self, commit: str, *, clean: bool = True) -> None:
        await anyio.to_thread.run_sync(functools.partial(self.checkout_sync, commit, clean=clean))

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
        shutil.rmtree(self.gitdir, ignore_errors=True)
        self.opened.forget()


@contextlib.contextmanager
def scratch_tree(repo: Path, commit: str) -> Iterator[EvalTree]:
    """A temporary measurement tree at `commit`, removed on any exit (error, Ctrl-C, SIGTERM)."""
    parent = Path(tempfile.mkdtemp(prefix="expd-tree-"))
    tree = EvalTree(repo=repo, path=parent / "tree", gitdir=parent / "git")
    try:
        tree.checkout_sync(commit)
        yield tree
    finally:
        shutil.rmtree(parent, ignore_errors=True)
