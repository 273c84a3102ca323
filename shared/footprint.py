"""What a run leaves on disk, found by name, and how much space it takes.

A program run's trees are `.expd/worktrees/<program>-<stamp>` (lane k: `…-L<k>`) and
`.expd/eval/<program>-<stamp>` (slot k: `…-S<k>`); a bakeoff run's slot trees are
`<bakeoff>-<stamp>-<k>` in both folders. Sizes come from an `os.scandir` walk (file lengths, hard links once), never following a symlink and never starting git, so
`expd list` stays fast on the read path.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

TREE_FOLDERS = ("worktrees", "eval")
"""The folders of `.expd/` that hold runs' trees."""


def tree_pattern(owner: str, stamp: str, kind: str = "program") -> re.Pattern[str]:
    """The names of one run's trees: the stamp always has the form `YYYYMMDD-HHMMSS[-n]`, so a
    longer program name can never match another program's run."""
    base = re.escape(f"{owner}-{stamp}")
    return re.compile(rf"{base}-\d+" if kind == "bakeoff" else rf"{base}(?:-[LS]\d+)?")


def tree_names(repo: Path) -> dict[str, list[str]]:
    """Every entry of `.expd/worktrees/` and `.expd/eval/` (folder → names): one listing each,
    shared by every run of a listing."""
    out: dict[str, list[str]] = {}
    for folder in TREE_FOLDERS:
        try:
            with os.scandir(repo / ".expd" / folder) as entries:
                out[folder] = [e.name for e in entries]
        except OSError:
            out[folder] = []
    return out


def run_trees(
    repo: Path,
    owner: str,
    stamp: str,
    kind: str = "program",
    names: dict[str, list[str]] | None = None,
) -> list[Path]:
    """The trees of one run that exist now (agent, lanes, measurement slots), sorted."""
    pattern = tree_pattern(owner, stamp, kind)
    listed = tree_names(repo) if names is None else names
    found = [
        repo / ".expd" / folder / name
        for folder in TREE_FOLDERS
        for name in listed.get(folder, [])
        if pattern.fullmatch(name)
    ]
    return sorted(found)


def disk_bytes(
    path: Path, seen: set[tuple[int, int]] | None = None, *, allocated: bool = False
) -> int:
    """The size of the files under `path` (their lengths, as `du --apparent-size -b` counts
    them, folders not counted: the same on every filesystem), walked without following symlinks;
    a file with several links counts once per `seen`. A missing path is 0. With `allocated`, the
    blocks the files take instead (what removing them gives back; it varies by filesystem)."""
    seen = set() if seen is None else seen
    try:
        top = os.lstat(path)
    except OSError:
        return 0
    if not os.path.isdir(path) or os.path.islink(path):
        return top.st_blocks * 512 if allocated else top.st_size
    total = 0
    stack = [os.fspath(path)]
    while stack:
        try:
            entries = os.scandir(stack.pop())
        except OSError:
            continue
        with entries:
            for entry in entries:
                try:
                    info = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                    continue
                if info.st_nlink > 1:
                    key = (info.st_dev, info.st_ino)
                    if key in seen:
                        continue
                    seen.add(key)
                total += info.st_blocks * 512 if allocated else info.st_size
    return total


def run_disk_bytes(
    run_dir: Path,
    repo: Path,
    owner: str,
    stamp: str,
    kind: str = "program",
    names: dict[str, list[str]] | None = None,
) -> int:
    """A run's disk use: its run directory and every tree it has now."""
    seen: set[tuple[int, int]] = set()
    total = disk_bytes(run_dir, seen)
    for tree in run_trees(repo, owner, stamp, kind, names):
        total += disk_bytes(tree, seen)
    return total
