"""The user's repository and expd's private git dirs, in-process through libgit2 (pygit2).

In-process, because libgit2 runs no hooks, no fsmonitor and no external filter drivers, never signs,
and costs no process start-ups (they were most of expd's own time per experiment). Private git dirs,
because a tree the agent or a measured program can write is never read as a repository: each tree
expd works in is the work directory of a git dir of expd's own in the run directory (its own config,
index, HEAD and objects; the user's objects through alternates), and every checkout first removes
the symlinks and hard links that would make it write outside that tree.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pygit2
from pygit2.enums import CheckoutStrategy, RepositoryOpenFlag

from daemon.ops.git.tree_sync import FallBack, sync_tree


class TreeError(Exception):
    """A tree or repository expd works in is missing, moved or unusable; the message says which."""


def open_user_repo(root: Path) -> pygit2.Repository:
    """The user's repository, opened at exactly `root` (no search upwards, no environment)."""
    try:
        return pygit2.Repository(str(root), RepositoryOpenFlag.NO_SEARCH)
    except pygit2.GitError as exc:
        raise TreeError(f"{root}: cannot open the repository ({exc})") from None


def common_dir(repo: pygit2.Repository) -> Path:
    """The git dir that holds the objects and shared refs (a linked worktree's main git dir)."""
    gitdir = Path(repo.path)
    link = gitdir / "commondir"
    if link.is_file():
        return (gitdir / link.read_text().strip()).resolve()
    return gitdir


def remove_path(path: Path) -> None:
    """Remove whatever is at `path` (a directory tree, a file or a symlink; never its target)."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)


def ensure_tree(path: Path) -> None:
    """Make `path` a real directory where it is: a symlink or file put there is removed, and a path
    whose parent leads elsewhere (a symlink on the way) is refused, never followed."""
    parent = path.parent
    if not parent.is_dir():
        parent.mkdir(parents=True, exist_ok=True)
    if os.path.realpath(parent) != os.path.abspath(parent):
        raise TreeError(f"{parent} leads elsewhere (a symlink on the way): refusing to use it")
    if is_real_dir(path):
        return
    if path.is_symlink() or path.exists():
        path.unlink()
    path.mkdir()


def tree_problem(path: Path) -> str:
    """Why `path` is not the tree expd made (deleted, replaced, moved), or "" when it is."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return f"the agent's tree {path} was deleted"
    if not stat.S_ISDIR(mode):
        return f"the agent's tree {path} was replaced by a {'symlink' if stat.S_ISLNK(mode) else 'file'}"
    if os.path.realpath(path) != os.path.abspath(path):
        return f"the agent's tree {path} was moved (a symlink on the way)"
    return ""


def private_repo(gitdir: Path, workdir: Path, user: pygit2.Repository) -> pygit2.Repository:
    """expd's git dir for `workdir`, created when missing: its own config, index, HEAD and objects,
    the user's objects through alternates, the user's exclude patterns plus `.expd/`. The work
    directory is made when missing (libgit2 will not open a git dir whose work tree is gone)."""
    ensure_tree(workdir)
    if not (gitdir / "HEAD").is_file():
        remove_path(gitdir)
        repo = pygit2.init_repository(str(gitdir), bare=True)
        repo.config["core.bare"] = False
        repo.config["core.worktree"] = str(workdir)
        repo.config["gc.auto"] = 0
        (gitdir / "objects" / "info" / "alternates").write_text(f"{common_dir(user) / 'objects'}\n")
        (gitdir / "info").mkdir(exist_ok=True)
        (gitdir / "info" / "exclude").write_text(_user_excludes(user) + "/.expd/\n")
    # Only this process writes here (the run's daemon, or the CLI before it starts): a lock is stale.
    for lock in ("index.lock", "HEAD.lock", "config.lock"):
        with contextlib.suppress(FileNotFoundError):
            (gitdir / lock).unlink()
    try:
        repo = pygit2.Repository(str(gitdir), RepositoryOpenFlag.NO_SEARCH)
    except pygit2.GitError as exc:
        raise TreeError(f"{gitdir}: cannot open expd's git dir ({exc})") from None
    if repo.workdir is None or Path(repo.workdir) != workdir:
        raise TreeError(f"{gitdir} is not the git dir of {workdir}")
    return repo


@dataclass
class Opened:
    """A tree's two repositories kept open between its operations (opening them is most of a small
    operation's cost). Each tree's operations run one at a time, so the pair is never used by two
    threads at once; it is opened again when either git dir was replaced (another inode)."""

    stamp: tuple[int, ...] = ()
    pair: tuple[pygit2.Repository, pygit2.Repository] | None = None

    def forget(self) -> None:
        self.stamp, self.pair = (), None

    def __getstate__(self) -> dict[str, object]:
        return {}  # repositories do not travel

    def __setstate__(self, state: dict[str, object]) -> None:
        self.forget()


def open_tree(
    root: Path, gitdir: Path, workdir: Path, opened: Opened | None = None
) -> tuple[pygit2.Repository, pygit2.Repository]:
    """The user's repository at `root` and expd's git dir `gitdir` for one of its trees; with
    `opened`, the pair kept there when both git dirs are still the ones it was opened on."""
    if opened is not None and opened.pair is not None:
        ensure_tree(workdir)
        if _stamp(opened.pair[0], gitdir) == opened.stamp:
            return opened.pair
        opened.forget()
    user = open_user_repo(root)
    pair = user, private_repo(gitdir, workdir, user)
    if opened is not None:
        opened.stamp, opened.pair = _stamp(user, gitdir), pair
    return pair


def _stamp(user: pygit2.Repository, gitdir: Path) -> tuple[int, ...]:
    try:
        a, b = os.stat(user.path), os.stat(gitdir)
    except OSError:
        return ()
    return a.st_dev, a.st_ino, b.st_dev, b.st_ino


def _user_excludes(user: pygit2.Repository) -> str:
    try:
        text = (common_dir(user) / "info" / "exclude").read_text()
    except (OSError, UnicodeDecodeError):
        return ""
    return text if not text or text.endswith("\n") else text + "\n"


def defuse(workdir: Path, paths: Iterable[str]) -> bool:
    """Remove what would make a checkout of `paths` write outside `workdir`: a symlink on the way
    to a path, and a symlink or a hard link at the path itself (libgit2 writes through both).
    True when something was removed."""
    root = Path(workdir)
    removed = False
    for name in paths:
        parts = name.rstrip("/").split("/")
        here = root
        for i, part in enumerate(parts):
            here = here / part
            try:
                info = os.lstat(here)
            except OSError:
                break
            last = i == len(parts) - 1
            if stat.S_ISLNK(info.st_mode) or (
                last and info.st_nlink > 1 and not stat.S_ISDIR(info.st_mode)
            ):
                here.unlink()
                removed = True
                break
            if not stat.S_ISDIR(info.st_mode):
                break
    return removed


def checkout(repo: pygit2.Repository, workdir: Path, commit: str, *, clean: bool) -> bool:
    """Make `workdir`'s tracked files exactly `commit`'s, with the index and a detached HEAD to
    match; untracked files are removed when `clean`, ignored ones stay. True when the tree was
    also verified to show no change against `commit` (the fast path's check)."""
    ensure_tree(workdir)
    target = repo[commit].peel(pygit2.Commit)
    try:
        sync_tree(repo, workdir, target, clean=clean)
        return True
    except FallBack:
        repo.index.read(True)  # whatever the fast path left: the full checkout below restores it
    status = repo.status(untracked_files="all")
    if clean:
        for name in status:
            if name.endswith("/"):  # a nested repository: libgit2 leaves those alone
                remove_path(workdir / name.rstrip("/"))
    touched = set(status)
    for delta in repo.index.diff_to_tree(target.tree).deltas:
        touched.update((delta.old_file.path, delta.new_file.path))
    defused = defuse(workdir, touched)
    strategy = CheckoutStrategy.FORCE
    if clean:
        strategy |= CheckoutStrategy.REMOVE_UNTRACKED
    repo.checkout_tree(target.tree, strategy=strategy)
    repo.set_head(target.id)
    if defused:
        # libgit2 leaves a file whose link was removed above missing when the link was tracked
        # (a type change over a missing file): once HEAD is the target, it recreates it.
        repo.checkout_tree(target.tree, strategy=strategy | CheckoutStrategy.RECREATE_MISSING)
    return False


def is_real_dir(path: Path) -> bool:
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except FileNotFoundError:
        return False
