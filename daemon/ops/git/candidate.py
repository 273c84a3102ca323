"""The agent's change as expd holds it before and after publishing: the candidate (a commit only
in expd's private store until its check passes), what a capture returns, and the subject of the
agent's own last commit, read without trusting its `.git`.
"""

from __future__ import annotations

import os
import stat
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pygit2
from pygit2.enums import DeltaStatus

from daemon.ops.git.user_writes import new_objects
from shared.schema import DiffStat

HEX = frozenset("0123456789abcdef")


@dataclass
class Change:
    path: str
    status: str
    """"added", "modified", "deleted" or "typechange" (e.g. a file became a symlink)."""
    mode: int
    """The new file mode (0 when deleted): 0o120000 is a symlink."""


@dataclass
class Candidate:
    """The agent's change, known before anything is written into the user's repository: its commit
    exists only in expd's private object store until it is published."""

    commit: str
    parent: str
    message: str
    changes: list[Change]
    repo: pygit2.Repository

    @property
    def paths(self) -> list[str]:
        return [c.path for c in self.changes]

    def read(self, path: str, *, before: bool = False) -> bytes | None:
        """The candidate's content of `path` (a symlink's target), None when it deletes it; with
        `before`, the incumbent's (None when the change adds it)."""
        try:
            entry = self.repo[self.parent if before else self.commit].peel(pygit2.Tree)[path]
        except KeyError:
            return None
        return self.repo[entry.id].read_raw()

    def forget(self) -> None:
        """Take a refused candidate back out of expd's private store: the index at the incumbent
        again, and the loose objects it wrote there (its commit, new trees and blobs) removed, so
        what it held is kept nowhere. The user's objects (reached through alternates) are not
        touched: a refused candidate never got there."""
        parent = self.repo[self.parent].peel(pygit2.Commit)
        self.repo.index.read_tree(parent.tree)
        self.repo.index.write()
        objects = Path(self.repo.path) / "objects"
        tree = self.repo[self.commit].peel(pygit2.Tree)
        for oid in [self.commit, *new_objects(self.repo, tree, parent.tree)]:
            name = str(oid)
            (objects / name[:2] / name[2:]).unlink(missing_ok=True)


@dataclass
class Capture:
    commit: str = ""
    """The candidate (pinned in the user's repository), or the incumbent when nothing changed."""
    patch: str = ""
    stat: DiffStat = field(default_factory=DiffStat)
    subject: str = ""
    problem: str = ""
    """Why nothing could be captured (the tree was deleted, a nested repository, …): a crash."""
    refused: str = ""
    """Why the check refused the change (e.g. a secret it adds): a crash; nothing was written
    into the user's repository and the candidate was taken out of expd's private store."""


Check = Callable[[Candidate], str]
"""Looks at a candidate before it is published; a non-empty answer refuses it (the reason)."""


def agent_subject(tree: Path, incumbent: str) -> str:
    """The subject of the agent's own last commit, read without trusting its `.git` and without
    libgit2: HEAD and a loose ref, then the loose commit object, each a small regular file opened
    without following a final symlink or blocking on a FIFO; any doubt (a pack, an odd file) is ""."""
    dotgit = tree / ".git"
    try:
        if not stat.S_ISDIR(os.lstat(dotgit).st_mode):
            return ""
        head = _small(dotgit / "HEAD").decode().strip()
        if head.startswith("ref: "):
            name = head[5:].strip()
            if not name.startswith("refs/") or ".." in name.split("/"):
                return ""
            head = _small(dotgit / name).decode().strip()
        if len(head) != 40 or head == incumbent or not all(c in HEX for c in head):
            return ""
        data = _small(dotgit / "objects" / head[:2] / head[2:])
        raw = zlib.decompressobj().decompress(data, 1 << 16)
    except (OSError, ValueError, zlib.error):
        return ""
    header, _, body = raw.partition(b"\0")
    if not header.startswith(b"commit "):
        return ""
    lines = body.partition(b"\n\n")[2].decode(errors="replace").strip().splitlines()
    return lines[0].strip()[:200] if lines else ""


def _small(path: Path, limit: int = 1 << 20) -> bytes:
    """A regular file's first `limit` bytes; OSError for anything else."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(f"{path} is not a regular file")
        return os.read(fd, limit)
    finally:
        os.close(fd)


def changes(repo: pygit2.Repository, old: pygit2.Tree, new: pygit2.Tree) -> list[Change]:
    """The paths `new` changes from `old`, for the check: no rename detection, so a rename is a
    deletion plus an addition and a protected path moved away is still seen."""
    names = {
        DeltaStatus.ADDED: "added",
        DeltaStatus.DELETED: "deleted",
        DeltaStatus.TYPECHANGE: "typechange",
    }
    out = []
    for delta in repo.diff(old, new).deltas:
        deleted = delta.status == DeltaStatus.DELETED
        path = delta.old_file.path if deleted else delta.new_file.path
        status = names.get(delta.status, "modified")
        out.append(Change(path, status, 0 if deleted else delta.new_file.mode))
    return out
