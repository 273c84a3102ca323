"""Removing a run's trees (agent, lanes, measurement slots) and expd's git dirs for them.

Used by the daemon when a run ends (`[loop] keep_tree`), by `expd clean` and by `expd delete`. A
tree is the agent's to fill: it may hold symlinks (never followed: a symlink is unlinked, not its
target), read-only folders (made writable, then removed) and a `.expd/` of its own. Nothing outside
the repository's `.expd/` is removed, and a folder reached through a symlink on the way is refused.
"""

from __future__ import annotations

import os
import shutil
import stat
import sys
from pathlib import Path

from shared.footprint import disk_bytes, run_trees


def _inside(path: Path, root: Path) -> bool:
    """`path` is really inside `root` (its parent is `root` or below it, no symlink on the way)."""
    parent = os.path.realpath(path.parent)
    top = os.path.realpath(root)
    return parent == os.path.abspath(path.parent) and (
        parent == top or parent.startswith(top + os.sep)
    )


def _writable_then_retry(func, name, _exc) -> None:  # type: ignore[no-untyped-def]
    """rmtree's error hook: a read-only folder the agent left is made writable, then retried."""
    parent = os.path.dirname(name)
    try:
        os.chmod(parent, stat.S_IRWXU)
        if os.path.isdir(name) and not os.path.islink(name):
            os.chmod(name, stat.S_IRWXU)
        func(name)
    except FileNotFoundError:
        pass
    except OSError:
        if os.path.isdir(name) and not os.path.islink(name):
            shutil.rmtree(name, ignore_errors=True)


def remove_path(path: Path, root: Path) -> None:
    """Remove `path` (a tree, a file or a symlink) if it is inside `root`; a missing one is done."""
    if not _inside(path, root):
        raise OSError(f"{path} is not inside {root} (a symlink on the way): refusing to remove it")
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(info.st_mode):
        if sys.version_info >= (3, 12):
            shutil.rmtree(path, onexc=_writable_then_retry)
        else:
            shutil.rmtree(path, onerror=_writable_then_retry)
    else:
        path.unlink(missing_ok=True)


def run_leftovers(repo: Path, owner: str, stamp: str, kind: str, run_dir: Path) -> list[Path]:
    """What a run keeps only for its trees: the trees, and expd's git dirs in the run directory."""
    trees = run_trees(repo, owner, stamp, kind)
    git_dirs = run_dir / "git"
    return [*trees, git_dirs] if os.path.lexists(git_dirs) else trees


def remove_leftovers(repo: Path, run_dir: Path, paths: list[Path]) -> int:
    """Remove `paths` (trees under the repository's `.expd/`, git dirs under `run_dir`); the
    disk space they took (allocated blocks)."""
    expd = repo / ".expd"
    freed = 0
    seen: set[tuple[int, int]] = set()
    for path in paths:
        freed += disk_bytes(path, seen, allocated=True)
        remove_path(path, run_dir if path.is_relative_to(run_dir) else expd)
    return freed
